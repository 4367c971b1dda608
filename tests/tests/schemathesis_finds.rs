//! What schemathesis found against the served OpenAPI document
//! (`tests/openapi/schemathesis.sh`), each checked against the reference Glance 33 and kept
//! here so that it stays fixed.

use glance_tests::spawn_app;
use serde_json::{json, Value};

/// A namespace whose name holds control characters was created, then answered 500 because
/// its `Location` could not be a header. Glance answers 201 and leaves them out of the
/// `Location`.
#[tokio::test]
async fn a_namespace_named_with_control_characters_is_created_with_a_usable_location() {
    let app = spawn_app().await;
    let name = "ns\u{7f}with\u{3}controls";
    let res = app
        .client
        .post(app.url("/v2/metadefs/namespaces"))
        .json(&json!({"namespace": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.ends_with("/v2/metadefs/namespaces/nswithcontrols"),
        "{location}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["namespace"], name);
    let list: Value = app
        .client
        .get(app.url("/v2/metadefs/namespaces"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|ns| ns["namespace"].as_str())
        .collect();
    assert!(names.contains(&name), "{names:?}");
}
