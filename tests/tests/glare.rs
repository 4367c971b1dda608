//! The artifact API (Glare v1, `glance-glare`) over HTTP against the all-in-one with
//! trusted headers, per persona: every route, the lifecycle and its policies, blobs,
//! listing. On PostgreSQL with `GLANCE_TEST_DATABASE=postgres`.
//!
//! Status codes and messages were compared with the reference Glare 5.0.1
//! (`../shared/reference-glare`) answering the same requests.

use std::net::TcpListener;

use glance_config::RawConfig;
use md5::Digest;
use reqwest::header::HeaderMap;
use reqwest::{Client, Method};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Admin,
    MemberA,
    MemberB,
    Anonymous,
}

fn headers(who: Who) -> HeaderMap {
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

struct Glare {
    url: String,
    client: Client,
    data_dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Glare {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn spawn_glare() -> Glare {
    let data_dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::defaults();
    raw.set("DEFAULT", "workers", "2");
    raw.set("DEFAULT", "auth_strategy", "trusted-headers");
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

const JSON: &str = "application/json";
const PATCH: &str = "application/json-patch+json";

impl Glare {
    /// One call: status, headers and the body (JSON, or `null`).
    async fn raw(
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

    async fn call(
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

    async fn expect(
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

    async fn create(&self, who: Who, body: Value) -> String {
        let doc = self
            .expect(who, Method::POST, "/artifacts/images", Some(body), 201)
            .await;
        doc["id"].as_str().unwrap().to_owned()
    }

    async fn patch(&self, who: Who, id: &str, ops: Value, want: u16) -> Value {
        self.expect(
            who,
            Method::PATCH,
            &format!("/artifacts/images/{id}"),
            Some(ops),
            want,
        )
        .await
    }

    async fn upload(&self, who: Who, path: &str, data: Vec<u8>) -> (u16, Value) {
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
    async fn active_image(&self, name: &str, version: &str, extra: Value) -> String {
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

fn status_op(value: &str) -> Value {
    json!([{"op": "replace", "path": "/status", "value": value}])
}

#[tokio::test]
async fn versions_are_served_without_identity_and_microversions_are_negotiated() {
    let g = spawn_glare().await;
    for path in ["/", "/versions"] {
        let (status, doc) = g.call(Who::Anonymous, Method::GET, path, None).await;
        assert_eq!(status, 300);
        assert_eq!(doc["versions"][1]["version"], "1.1");
    }
    let get = |v: &'static str| {
        g.client
            .get(format!("{}/schemas/images", g.url))
            .headers(headers(Who::MemberA))
            .header("OpenStack-API-Version", v)
            .send()
    };
    let res = get("artifact 1.1").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["openstack-api-version"], "artifact 1.1");
    assert_eq!(res.headers()["vary"], "openstack-api-version");
    assert_eq!(res.headers()["content-type"], "application/schema+json");
    assert_eq!(
        get("artifact latest").await.unwrap().headers()["openstack-api-version"],
        "artifact 1.1"
    );
    assert_eq!(get("artifact 1.2").await.unwrap().status(), 406);
    assert_eq!(get("artifact abc").await.unwrap().status(), 400);
    let (_, h, _) = g
        .raw(Who::MemberA, Method::GET, "/schemas", None, vec![])
        .await;
    assert_eq!(h["openstack-api-version"], "artifact 1.0");
}

#[tokio::test]
async fn anonymous_callers_are_refused_and_schemas_describe_every_type() {
    let g = spawn_glare().await;
    for path in ["/artifacts/images", "/schemas", "/artifacts/images/x"] {
        let (status, doc) = g.call(Who::Anonymous, Method::GET, path, None).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(doc["error"]["type"], "Unauthorized");
    }
    let doc = g
        .expect(Who::MemberB, Method::GET, "/schemas", None, 200)
        .await;
    let mut types: Vec<&String> = doc["schemas"].as_object().unwrap().keys().collect();
    types.sort();
    assert_eq!(
        types,
        [
            "all",
            "heat_environments",
            "heat_templates",
            "images",
            "murano_packages",
            "tosca_templates"
        ]
    );
    let doc = g
        .expect(Who::MemberB, Method::GET, "/schemas/images", None, 200)
        .await;
    assert_eq!(
        doc["schemas"]["images"]["properties"]["image"]["glareType"],
        "Blob"
    );
    let doc = g
        .expect(Who::MemberB, Method::GET, "/schemas/nosuch", None, 404)
        .await;
    assert_eq!(doc["error"]["type"], "TypeNotFound");
    let (status, h, _) = g
        .raw(Who::MemberA, Method::PUT, "/schemas", Some(JSON), vec![])
        .await;
    assert_eq!((status, &h["allow"]), (405, &"GET".parse().unwrap()));
}

#[tokio::test]
async fn creation_follows_glares_rules_and_name_and_version_are_unique_per_scope() {
    let g = spawn_glare().await;
    let doc = g
        .expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some(json!({"name": "a", "version": "1.0", "tags": ["t"], "metadata": {"k": "v"}})),
            201,
        )
        .await;
    assert_eq!(
        (
            &doc["status"],
            &doc["visibility"],
            &doc["version"],
            &doc["owner"],
            &doc["image"]
        ),
        (
            &json!("drafted"),
            &json!("private"),
            &json!("1.0.0"),
            &json!("project-a"),
            &Value::Null
        )
    );
    assert_eq!(doc["display_type_name"], "Images");
    g.expect(
        Who::MemberA,
        Method::POST,
        "/artifacts/images",
        Some(json!({"name": "a", "version": "1.0.0"})),
        409,
    )
    .await;
    // Another project's private scope is its own.
    g.expect(
        Who::MemberB,
        Method::POST,
        "/artifacts/images",
        Some(json!({"name": "a", "version": "1.0.0"})),
        201,
    )
    .await;
    for (body, want) in [
        (json!({"name": "b", "visibility": "public"}), 400),
        (json!({"name": "b", "status": "active"}), 400),
        (json!({"name": "b", "nosuch": 1}), 400),
        (json!({"name": "b", "image": {}}), 400),
        (json!({"name": "b", "version": "bad"}), 400),
        (json!({"name": "b", "min_ram": -1}), 400),
        (json!({"name": "b", "disk_format": "floppy"}), 400),
        (json!({"name": "b", "tags": ["a,b"]}), 400),
        (json!({"version": "1"}), 400),
        (
            json!({"name": "b", "id": "7b9d4d6e-0000-0000-0000-000000000000"}),
            403,
        ),
        (json!({"name": "b", "owner": "x"}), 403),
    ] {
        g.expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some(body.clone()),
            want,
        )
        .await;
    }
    let doc = g
        .expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some(json!({"name": "b", "min_ram": "5"})),
            201,
        )
        .await;
    assert_eq!(doc["min_ram"], 5);
    g.expect(
        Who::MemberA,
        Method::POST,
        "/artifacts/all",
        Some(json!({"name": "c"})),
        403,
    )
    .await;
    g.expect(
        Who::MemberA,
        Method::POST,
        "/artifacts/nosuch",
        Some(json!({"name": "c"})),
        404,
    )
    .await;
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 415);
    for t in [
        "heat_templates",
        "heat_environments",
        "murano_packages",
        "tosca_templates",
    ] {
        g.expect(
            Who::MemberB,
            Method::POST,
            &format!("/artifacts/{t}"),
            Some(json!({"name": "n"})),
            201,
        )
        .await;
    }
}

#[tokio::test]
async fn the_lifecycle_needs_the_right_fields_and_the_right_persona() {
    let g = spawn_glare().await;
    let id = g
        .create(Who::MemberA, json!({"name": "img", "version": "1.0"}))
        .await;
    let path = format!("/artifacts/images/{id}");
    g.expect(Who::MemberB, Method::GET, &path, None, 404).await;
    g.expect(Who::Admin, Method::GET, &path, None, 200).await;
    let doc = g.patch(Who::MemberA, &id, status_op("active"), 403).await;
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("container_format"),
        "{doc}"
    );
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::PATCH,
            &path,
            Some(JSON),
            b"[]".to_vec(),
        )
        .await;
    assert_eq!(status, 415);
    let doc = g
        .patch(
            Who::MemberA,
            &id,
            json!([
            {"op": "replace", "path": "/disk_format", "value": "qcow2"},
            {"op": "replace", "path": "/container_format", "value": "bare"},
            {"op": "add", "path": "/tags/-", "value": "patched"},
            {"op": "add", "path": "/metadata/stage", "value": "patched"},
            {"op": "replace", "path": "/description", "value": "made here"}]),
            200,
        )
        .await;
    assert_eq!(
        (&doc["disk_format"], &doc["tags"], &doc["metadata"]["stage"]),
        (&json!("qcow2"), &json!(["patched"]), &json!("patched"))
    );
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "remove", "path": "/description"}]),
        400,
    )
    .await;
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "replace", "path": "/owner", "value": "x"}]),
        403,
    )
    .await;
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "replace", "path": "/nosuch", "value": "x"}]),
        400,
    )
    .await;
    g.patch(
        Who::MemberB,
        &id,
        json!([{"op": "add", "path": "/tags/-", "value": "x"}]),
        404,
    )
    .await;
    let doc = g.patch(Who::MemberA, &id, status_op("active"), 200).await;
    assert!(doc["activated_at"].is_string());
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        403,
    )
    .await;
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "add", "path": "/tags/-", "value": "active"}]),
        200,
    )
    .await;
    let publish = json!([{"op": "replace", "path": "/visibility", "value": "public"}]);
    let doc = g.patch(Who::MemberA, &id, publish.clone(), 403).await;
    assert_eq!(doc["error"]["type"], "PolicyException");
    g.patch(Who::Admin, &id, publish, 200).await;
    g.expect(Who::MemberB, Method::GET, &path, None, 200).await;
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "add", "path": "/tags/-", "value": "x"}]),
        403,
    )
    .await;
    g.patch(
        Who::MemberA,
        &id,
        json!([{"op": "replace", "path": "/visibility", "value": "private"}]),
        403,
    )
    .await;
    g.patch(Who::MemberA, &id, status_op("deactivated"), 403)
        .await;
    g.patch(Who::Admin, &id, status_op("deactivated"), 200)
        .await;
    g.patch(Who::Admin, &id, status_op("drafted"), 400).await;
    g.patch(Who::Admin, &id, status_op("deleted"), 403).await;
    g.patch(Who::Admin, &id, status_op("active"), 200).await;
    g.expect(Who::MemberA, Method::DELETE, &path, None, 403)
        .await;
    g.expect(Who::MemberB, Method::DELETE, &path, None, 403)
        .await;
    g.expect(Who::Admin, Method::DELETE, &path, None, 204).await;
    g.expect(Who::Admin, Method::GET, &path, None, 404).await;
    let drafted = g
        .create(Who::MemberA, json!({"name": "img", "version": "2.0"}))
        .await;
    g.expect(
        Who::MemberB,
        Method::DELETE,
        &format!("/artifacts/images/{drafted}"),
        None,
        404,
    )
    .await;
    g.expect(
        Who::MemberA,
        Method::DELETE,
        &format!("/artifacts/images/{drafted}"),
        None,
        204,
    )
    .await;
}

fn files_under(dir: &std::path::Path) -> usize {
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

#[tokio::test]
async fn blobs_are_stored_with_their_checksums_served_back_and_removed_with_the_artifact() {
    let g = spawn_glare().await;
    let id = g
        .create(
            Who::MemberA,
            json!({"name": "blob", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let blob = format!("/artifacts/images/{id}/image");
    let (status, doc) = g.call(Who::MemberA, Method::GET, &blob, None).await;
    assert_eq!(status, 404, "{doc}");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let md5 = hex::encode(md5::Md5::digest(&data));
    let sha256 = hex::encode(sha2::Sha256::digest(&data));
    let (status, _) = g
        .upload(
            Who::MemberA,
            &format!("/artifacts/images/{id}/name"),
            data.clone(),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = g.upload(Who::MemberB, &blob, data.clone()).await;
    assert_eq!(status, 404);
    let (status, doc) = g.upload(Who::MemberA, &blob, data.clone()).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        (
            &doc["image"]["size"],
            &doc["image"]["md5"],
            &doc["image"]["sha256"],
            &doc["image"]["status"]
        ),
        (
            &json!(300_000),
            &json!(md5),
            &json!(sha256),
            &json!("active")
        )
    );
    assert_eq!(doc["image"]["url"], json!(blob));
    let (status, h, body) = g.raw(Who::MemberA, Method::GET, &blob, None, vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(body, data);
    assert_eq!(h["content-md5"].to_str().unwrap(), md5);
    assert_eq!(
        h["x-openstack-glare-content-sha256"].to_str().unwrap(),
        sha256
    );
    // Replaced while drafted: the old data goes.
    let (status, _) = g.upload(Who::MemberA, &blob, b"second".to_vec()).await;
    assert_eq!(status, 200);
    let images = g.data_dir.path().join("images");
    assert_eq!(files_under(&images), 1);
    g.patch(Who::MemberA, &id, status_op("active"), 200).await;
    let (status, _) = g.upload(Who::MemberA, &blob, b"third".to_vec()).await;
    assert_eq!(status, 403);
    // Owner and admins download; other projects do not, even once public (Glare's policy).
    g.patch(
        Who::Admin,
        &id,
        json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        200,
    )
    .await;
    let (status, _, _) = g.raw(Who::MemberB, Method::GET, &blob, None, vec![]).await;
    assert_eq!(status, 403);
    g.patch(Who::Admin, &id, status_op("deactivated"), 200)
        .await;
    let (status, _, _) = g.raw(Who::MemberA, Method::GET, &blob, None, vec![]).await;
    assert_eq!(status, 403);
    let (status, _, body) = g.raw(Who::Admin, Method::GET, &blob, None, vec![]).await;
    assert_eq!((status, body.as_slice()), (200, b"second".as_slice()));
    g.expect(
        Who::Admin,
        Method::DELETE,
        &format!("/artifacts/images/{id}"),
        None,
        204,
    )
    .await;
    assert_eq!(
        files_under(&images),
        0,
        "the blob's data is removed with the artifact"
    );
}

#[tokio::test]
async fn blob_dicts_external_locations_and_size_limits() {
    let g = spawn_glare().await;
    let doc = g
        .expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/heat_templates",
            Some(json!({"name": "stack"})),
            201,
        )
        .await;
    let id = doc["id"].as_str().unwrap();
    let base = format!("/artifacts/heat_templates/{id}");
    let (status, doc) = g
        .upload(
            Who::MemberA,
            &format!("{base}/nested_templates/n1"),
            b"n1: body".to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["nested_templates"]["n1"]["size"], 8);
    let (status, _, body) = g
        .raw(
            Who::MemberA,
            Method::GET,
            &format!("{base}/nested_templates/n1"),
            None,
            vec![],
        )
        .await;
    assert_eq!((status, body.as_slice()), (200, b"n1: body".as_slice()));
    let (status, _) = g
        .upload(Who::MemberA, &format!("{base}/template/x"), b"x".to_vec())
        .await;
    assert_eq!(status, 400, "template is a blob, not a blob dict");
    // Activation needs the template.
    g.expect(
        Who::MemberA,
        Method::PATCH,
        &base,
        Some(status_op("active")),
        403,
    )
    .await;
    let location = json!({"url": "https://example.com/t.yaml", "md5": "abc"}).to_string();
    let (status, _, body) = g
        .raw(
            Who::MemberA,
            Method::PUT,
            &format!("{base}/template"),
            Some("application/vnd+openstack.glare-custom-location+json"),
            location.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, h, _) = g
        .raw(
            Who::MemberA,
            Method::GET,
            &format!("{base}/template"),
            None,
            vec![],
        )
        .await;
    assert_eq!(
        (status, h["location"].to_str().unwrap()),
        (301, "https://example.com/t.yaml")
    );
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::DELETE,
            &format!("{base}/nested_templates/n1"),
            None,
            vec![],
        )
        .await;
    assert_eq!(status, 403, "internal blobs are not deleted alone");
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::DELETE,
            &format!("{base}/template"),
            None,
            vec![],
        )
        .await;
    assert_eq!(status, 200);
    // 10 MiB is a Heat environment's limit.
    let doc = g
        .expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/heat_environments",
            Some(json!({"name": "env"})),
            201,
        )
        .await;
    let path = format!(
        "/artifacts/heat_environments/{}/environment",
        doc["id"].as_str().unwrap()
    );
    let (status, _) = g
        .upload(Who::MemberA, &path, vec![0; 10 * 1024 * 1024 + 1])
        .await;
    assert_eq!(status, 413);
    let (status, doc) = g.upload(Who::MemberA, &path, vec![0; 1024]).await;
    assert_eq!(
        (status, &doc["environment"]["status"]),
        (200, &json!("active"))
    );
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_as_glare() {
    let g = spawn_glare().await;
    let one = g
        .active_image(
            "lst",
            "1.0.0",
            json!({"tags": ["smoke"], "metadata": {"stage": "patched"}}),
        )
        .await;
    // Metadata is fixed once active; tags are not.
    g.patch(
        Who::MemberA,
        &one,
        json!([{"op": "add", "path": "/metadata/k", "value": "v"}]),
        403,
    )
    .await;
    g.patch(
        Who::MemberA,
        &one,
        json!([{"op": "add", "path": "/tags/-", "value": "more"}]),
        200,
    )
    .await;
    let beta = g
        .create(
            Who::MemberA,
            json!({"name": "lst", "version": "2.0.0-beta"}),
        )
        .await;
    g.create(Who::MemberA, json!({"name": "lst", "version": "10.0.0"}))
        .await;
    g.create(Who::MemberB, json!({"name": "lst", "version": "3.0.0"}))
        .await;
    let list = |q: &str| format!("/artifacts/images?{q}");
    let doc = g
        .expect(Who::MemberA, Method::GET, &list("name=lst"), None, 200)
        .await;
    assert_eq!(
        doc["total_count"], 3,
        "project B's private one is not listed"
    );
    let doc = g
        .expect(Who::Admin, Method::GET, &list("name=lst"), None, 200)
        .await;
    assert_eq!(doc["total_count"], 4);
    let versions = |doc: &Value| -> Vec<String> {
        doc["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["version"].as_str().unwrap().to_owned())
            .collect()
    };
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("name=lst&sort=version:asc"),
            None,
            200,
        )
        .await;
    assert_eq!(versions(&doc), ["1.0.0", "2.0.0-beta", "10.0.0"]);
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("name=lst&sort=version:asc&limit=1"),
            None,
            200,
        )
        .await;
    assert_eq!(versions(&doc), ["1.0.0"]);
    let next = doc["next"].as_str().unwrap().to_owned();
    assert_eq!(
        next,
        format!("/artifacts/images?name=lst&sort=version%3Aasc&limit=1&marker={one}")
    );
    let doc = g.expect(Who::MemberA, Method::GET, &next, None, 200).await;
    assert_eq!(versions(&doc), ["2.0.0-beta"]);
    assert_eq!(doc["artifacts"][0]["id"], json!(beta));
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("name=lst&version=latest"),
            None,
            200,
        )
        .await;
    assert_eq!(versions(&doc), ["10.0.0"]);
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("version=gt:1.0.0&version=lt:10.0.0"),
            None,
            200,
        )
        .await;
    assert_eq!(versions(&doc), ["2.0.0-beta"]);
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("name=lst&status=active&tags=smoke&metadata.stage=eq:patched"),
            None,
            200,
        )
        .await;
    assert_eq!(doc["total_count"], 1);
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("tags-any=nope,smoke"),
            None,
            200,
        )
        .await;
    assert_eq!(doc["total_count"], 1);
    let doc = g
        .expect(Who::MemberA, Method::GET, &list("name=like:ls%"), None, 200)
        .await;
    assert_eq!(doc["total_count"], 3);
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &list("status=in:drafted,deactivated"),
            None,
            200,
        )
        .await;
    assert_eq!(doc["total_count"], 2);
    for bad in [
        "sort=description",
        "sort=name:up",
        "limit=x",
        "limit=-1",
        "nosuch=1",
        "name=gt:x",
        "tags=eq:x",
    ] {
        g.expect(Who::MemberA, Method::GET, &list(bad), None, 400)
            .await;
    }
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            "/artifacts/all?name=lst",
            None,
            200,
        )
        .await;
    assert_eq!(doc["total_count"], 3);
    assert!(doc["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["type_name"] == "images"));
    let doc = g
        .expect(
            Who::MemberA,
            Method::GET,
            &format!("/artifacts/all/{one}"),
            None,
            200,
        )
        .await;
    assert_eq!(doc["type_name"], "images");
    g.expect(
        Who::Admin,
        Method::DELETE,
        &format!("/artifacts/all/{one}"),
        None,
        403,
    )
    .await;
}
