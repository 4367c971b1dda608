//! The artifact API in the distributed mode: a `glance-glare` asks two `glance-registry`
//! processes for its records over RabbitMQ, on PostgreSQL (both started by
//! `scripts/test.sh`), keeps blobs in the shared image store, and answers
//! `glance-control glare status|reload|shutdown`.
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::time::Duration;

use common::glare::files_under;
use common::{free_port, mesh, wait_until};
use futures::FutureExt;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_travel_over_the_bus_and_glance_control_reaches_glare() {
    let Some(mesh) = mesh().await else { return };
    let _r1 = mesh.registry("registry-1");
    let _r2 = mesh.registry("registry-2");
    let port = free_port();
    let mut cmd = mesh.command("glance-glare");
    cmd.env("GLANCE__GLARE__BIND_PORT", port.to_string());
    let mut glare = mesh.spawn("glance-glare", "glare-1", cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_until("glance-glare to start", Duration::from_secs(30), || {
        reqwest::get(format!("{url}/versions")).map(|r| r.is_ok())
    })
    .await;

    // noauth: the project comes from X-Project-Id.
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String| {
        http.request(method, format!("{url}{path}"))
            .header("x-project-id", "mesh-project")
    };
    let res = call(reqwest::Method::POST, "/artifacts/images".into())
        .json(
            &json!({"name": "mesh", "version": "1.0", "disk_format": "raw",
                      "container_format": "bare"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(
        reqwest::Method::PUT,
        format!("/artifacts/images/{id}/image"),
    )
    .header("content-type", "application/octet-stream")
    .body(vec![7u8; 100_000])
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["image"]["size"], 100_000);
    let res = call(reqwest::Method::PATCH, format!("/artifacts/images/{id}"))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op": "replace", "path": "/status", "value": "active"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Whichever registry answers, the record is the same.
    for _ in 0..4 {
        let doc: Value = call(reqwest::Method::GET, "/artifacts/images?name=mesh".into())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["total_count"], 1);
        assert_eq!(doc["artifacts"][0]["status"], "active");
    }
    let body = call(
        reqwest::Method::GET,
        format!("/artifacts/images/{id}/image"),
    )
    .send()
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(body.len(), 100_000);
    assert_eq!(
        files_under(mesh.images.path()),
        1,
        "the blob is in the shared store"
    );
    let res = call(reqwest::Method::DELETE, format!("/artifacts/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        files_under(mesh.images.path()),
        0,
        "the blob's data is removed with the artifact"
    );

    let status = mesh.control(&["glare", "status"]);
    assert!(status.contains("glare"), "{status}");
    let reload = mesh.control(&["glare", "reload"]);
    assert!(reload.contains("reloaded"), "{reload}");
    mesh.control(&["glare", "shutdown"]);
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(glare.child.try_wait(), Ok(Some(_)))
    });
    assert!(
        exited,
        "glance-glare stops on glance-control glare shutdown"
    );
}
