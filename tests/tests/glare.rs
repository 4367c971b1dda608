//! The artifact API (Glare v1, `glance-glare`) over HTTP against the all-in-one with
//! trusted headers, per persona: versions, schemas, creation rules, the lifecycle and its
//! policies. Blobs, listing and quotas are in `glare_data.rs`. On PostgreSQL with
//! `GLANCE_TEST_DATABASE=postgres`.
//!
//! Status codes and messages were compared with the reference Glare 5.0.1
//! (`../shared/reference-glare`) answering the same requests.

mod common;

use common::glare::{headers, spawn_glare, status_op, Who, JSON};
use reqwest::Method;
use serde_json::{json, Value};

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
    assert_eq!(
        res.headers()["content-type"],
        "application/schema+json; charset=UTF-8"
    );
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
