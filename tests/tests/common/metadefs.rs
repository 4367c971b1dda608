//! The metadefs tests' harness: the all-in-one with trusted headers, its personas, and
//! calls that check the status.

use glance_tests::{spawn_app_with, TestApp};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Persona {
    Admin,
    MemberA,
    ReaderA,
    MemberB,
    /// Project A without the reader role.
    NoRole,
    Anonymous,
}

pub const PERSONAS: [Persona; 6] = [
    Persona::Admin,
    Persona::MemberA,
    Persona::ReaderA,
    Persona::MemberB,
    Persona::NoRole,
    Persona::Anonymous,
];

pub fn headers(persona: Persona) -> HeaderMap {
    let mut h = HeaderMap::new();
    let (project, roles) = match persona {
        Persona::Admin => ("admin-project", "admin,member,reader"),
        Persona::MemberA => ("project-a", "member,reader"),
        Persona::ReaderA => ("project-a", "reader"),
        Persona::MemberB => ("project-b", "member,reader"),
        Persona::NoRole => ("project-a", "foo"),
        Persona::Anonymous => return h,
    };
    h.insert("x-identity-status", "Confirmed".parse().unwrap());
    h.insert("x-project-id", project.parse().unwrap());
    h.insert("x-user-id", format!("{persona:?}").parse().unwrap());
    h.insert("x-roles", roles.parse().unwrap());
    h
}

pub async fn trusted_app() -> TestApp {
    spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await
}

/// One call as `who`: the status and the body (JSON, or `null`).
pub async fn call(
    app: &TestApp,
    who: Persona,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .headers(headers(who))
        .header("accept", "application/json");
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(app, Persona::Admin, method, path, body).await
}

/// Calls as admin and checks the status; returns the body.
pub async fn expect(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let (status, doc) = admin(app, method.clone(), path, body).await;
    assert_eq!(status, want, "{method} {path}: {doc}");
    doc
}

pub const NS: &str = "/v2/metadefs/namespaces";
