//! Callers of several projects for the sharing and identity tests: their headers, and
//! requests as one of them.

use glance_tests::TestApp;
use reqwest::header::HeaderMap;
use reqwest::RequestBuilder;
use serde_json::Value;

pub const TRUSTED: (&str, &str, &str) = ("DEFAULT", "auth_strategy", "trusted-headers");

pub fn caller(project: &str, roles: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-identity-status", "Confirmed".parse().unwrap());
    h.insert("x-project-id", project.parse().unwrap());
    h.insert("x-user-id", format!("user-{project}").parse().unwrap());
    h.insert("x-roles", roles.parse().unwrap());
    h
}

pub fn a() -> HeaderMap {
    caller("project-a", "member,reader")
}

pub fn b() -> HeaderMap {
    caller("project-b", "member,reader")
}

pub fn admin() -> HeaderMap {
    caller("admin-project", "admin,member,reader")
}

pub async fn send(req: RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn create(app: &TestApp, who: HeaderMap, body: Value) -> String {
    let (status, img) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(who)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{img}");
    img["id"].as_str().unwrap().to_owned()
}

pub async fn upload(app: &TestApp, who: HeaderMap, id: &str, data: Vec<u8>) -> (u16, Value) {
    send(
        app.client
            .put(app.url(&format!("/v2/images/{id}/file")))
            .headers(who)
            .header("content-type", "application/octet-stream")
            .body(data),
    )
    .await
}

pub async fn listed(app: &TestApp, who: HeaderMap, query: &str, id: &str) -> bool {
    let (status, body) = send(
        app.client
            .get(app.url(&format!("/v2/images{query}")))
            .headers(who),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id)
}

pub fn patch(app: &TestApp, who: HeaderMap, id: &str, ops: Value) -> RequestBuilder {
    app.client
        .patch(app.url(&format!("/v2/images/{id}")))
        .headers(who)
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .json(&ops)
}

pub async fn image_as(app: &TestApp, who: HeaderMap, id: &str) -> Value {
    let (status, img) = send(
        app.client
            .get(app.url(&format!("/v2/images/{id}")))
            .headers(who),
    )
    .await;
    assert_eq!(status, 200, "{img}");
    img
}
