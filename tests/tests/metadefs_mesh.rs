//! The metadefs catalog in the distributed mode: `glance-manage` loads definition files into
//! PostgreSQL, a `glance-api` asks a `glance-registry` for them over RabbitMQ (both started
//! by `scripts/test.sh`), and writes through the API are seen by every registry.
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use common::mesh;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_loaded_by_glance_manage_is_served_over_the_bus() {
    let mesh = mesh().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mesh.json"),
        json!({
            "namespace": "Mesh::Test", "display_name": "Mesh", "visibility": "public",
            "protected": false,
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "m_"}],
            "properties": {"p": {"title": "P", "type": "string"}},
            "objects": [{"name": "O", "properties": {}}],
            "tags": [{"name": "t"}]
        })
        .to_string(),
    )
    .unwrap();
    let out = mesh
        .command("glance-manage")
        .args(["db", "load_metadefs", "--path"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let _r1 = mesh.registry("registry-1");
    let _r2 = mesh.registry("registry-2");
    let (_a1, api) = mesh.api("api-1").await;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let res = http.get(path).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, shown) = get(format!("{api}/v2/metadefs/namespaces/Mesh::Test")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["properties"]["p"]["title"], "P");
    assert_eq!(shown["objects"][0]["name"], "O");
    assert_eq!(shown["tags"], json!([{"name": "t"}]));

    // Writes through the API, read back (by whichever registry takes the request).
    let res = http
        .post(format!(
            "{api}/v2/metadefs/namespaces/Mesh::Test/properties"
        ))
        .json(&json!({"name": "q", "title": "Q", "type": "integer", "minimum": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for _ in 0..4 {
        let (status, props) = get(format!(
            "{api}/v2/metadefs/namespaces/Mesh::Test/properties"
        ))
        .await;
        assert_eq!(status, 200);
        assert_eq!(props["properties"]["q"]["minimum"], 0);
    }
    let (_, list) = get(format!(
        "{api}/v2/metadefs/namespaces?resource_types=OS::Glance::Image"
    ))
    .await;
    assert_eq!(list["namespaces"][0]["namespace"], "Mesh::Test");
    let res = http
        .delete(format!("{api}/v2/metadefs/namespaces/Mesh::Test"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (status, _) = get(format!("{api}/v2/metadefs/namespaces/Mesh::Test")).await;
    assert_eq!(status, 404);
}
