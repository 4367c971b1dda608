//! The artifact API's test harness: the all-in-one with the artifact API on a free port
//! (trusted headers; PostgreSQL with `GLANCE_TEST_DATABASE=postgres`) and calls per persona.

use std::net::TcpListener;

use glance_config::RawConfig;
use reqwest::header::HeaderMap;
use reqwest::{Client, Method};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Who {
    Admin,
    MemberA,
    MemberB,
    Anonymous,
}

pub fn headers(who: Who) -> HeaderMap {
    let mut h = HeaderMap::new();
    let (project, roles) = match who {
        Who::Admin => ("admin-project", "admin,member,reader"),
        Who::MemberA => ("project-a", "member,reader"),
        Who::MemberB => ("project-b", "member,reader"),
        Who::Anonymous => return h,
    };
    h.insert("x-identity-status", "Confirmed".parse().unwrap());
    h.insert("x-project-id", project.parse().unwrap());
    h.insert("x-user-id", format!("{who:?}").parse().unwrap());
    h.insert("x-roles", roles.parse().unwrap());
    h
}

pub struct Glare {
    pub url: String,
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Glare {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub async fn spawn_glare() -> Glare {
    spawn_glare_with(&[]).await
}

/// The same with config overrides, as `(section, option, value)`.
pub async fn spawn_glare_with(overrides: &[(&str, &str, &str)]) -> Glare {
    let data_dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::defaults();
    raw.set("DEFAULT", "workers", "2");
    raw.set("DEFAULT", "auth_strategy", "trusted-headers");
    for (section, option, value) in overrides {
        raw.set(section, option, value);
    }
    if let Some(url) = glance_tests::fresh_database_url().await {
        raw.set("database", "connection", &url);
    }
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let glare = TcpListener::bind("127.0.0.1:0").unwrap();
    let all = glance_all_in_one::build_all(&raw, data_dir.path(), api, Some(glare))
        .await
        .expect("the all-in-one builds");
    let glare = all.glare.expect("the artifact API is built");
    let url = format!("http://127.0.0.1:{}", glare.port());
    let tasks = vec![
        tokio::spawn(async move {
            let _ = all.api.run_until_stopped().await;
        }),
        tokio::spawn(async move {
            let _ = glare.run_until_stopped().await;
        }),
    ];
    Glare {
        url,
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
        data_dir,
        tasks,
    }
}

pub const JSON: &str = "application/json";
pub const PATCH: &str = "application/json-patch+json";

impl Glare {
    /// One call: status, headers and the body (JSON, or `null`).
    pub async fn raw(
        &self,
        who: Who,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, HeaderMap, Vec<u8>) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .headers(headers(who));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct).body(body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let h = res.headers().clone();
        (status, h, res.bytes().await.unwrap().to_vec())
    }

    pub async fn call(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let ct = match (&method, &body) {
            (_, None) => None,
            (&Method::PATCH, _) => Some(PATCH),
            _ => Some(JSON),
        };
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, _, body) = self.raw(who, method, path, ct, bytes).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn expect(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (status, doc) = self.call(who, method.clone(), path, body).await;
        assert_eq!(status, want, "{who:?} {method} {path}: {doc}");
        doc
    }

    pub async fn create(&self, who: Who, body: Value) -> String {
        let doc = self
            .expect(who, Method::POST, "/artifacts/images", Some(body), 201)
            .await;
        doc["id"].as_str().unwrap().to_owned()
    }

    pub async fn patch(&self, who: Who, id: &str, ops: Value, want: u16) -> Value {
        self.expect(
            who,
            Method::PATCH,
            &format!("/artifacts/images/{id}"),
            Some(ops),
            want,
        )
        .await
    }

    pub async fn upload(&self, who: Who, path: &str, data: Vec<u8>) -> (u16, Value) {
        let (status, _, body) = self
            .raw(
                who,
                Method::PUT,
                path,
                Some("application/octet-stream"),
                data,
            )
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// An images artifact of project A with `extra` fields, active, with a blob.
    pub async fn active_image(&self, name: &str, version: &str, extra: Value) -> String {
        let mut body = json!({"name": name, "version": version,
            "disk_format": "raw", "container_format": "bare"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let id = self.create(Who::MemberA, body).await;
        let (status, _) = self
            .upload(
                Who::MemberA,
                &format!("/artifacts/images/{id}/image"),
                b"bytes".to_vec(),
            )
            .await;
        assert_eq!(status, 200);
        self.patch(
            Who::MemberA,
            &id,
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            200,
        )
        .await;
        id
    }
}

pub fn status_op(value: &str) -> Value {
    json!([{"op": "replace", "path": "/status", "value": value}])
}

pub fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    files_under(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}
