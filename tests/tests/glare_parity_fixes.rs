//! Differences from Glare 5.0.1 that the side-by-side run (`tests/parity/glare.py`) found and
//! we fixed, each checked here on our side alone, so a regression shows without the reference.

mod common;

use common::glare::{spawn_glare, Who, JSON};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn answers_are_labelled_and_other_methods_answered_as_glares() {
    let g = spawn_glare().await;
    let (status, h, _) = g
        .raw(Who::MemberA, Method::GET, "/artifacts/images", None, vec![])
        .await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "application/json; charset=UTF-8");
    let (_, h, _) = g
        .raw(Who::MemberA, Method::GET, "/schemas/images", None, vec![])
        .await;
    assert_eq!(h["content-type"], "application/schema+json; charset=UTF-8");
    // The version document: any method, and labelled without a charset.
    for method in [Method::GET, Method::DELETE, Method::POST] {
        let (status, h, _) = g
            .raw(Who::Anonymous, method.clone(), "/versions", None, vec![])
            .await;
        assert_eq!(
            (status, &h["content-type"]),
            (300, &"application/json".parse().unwrap()),
            "{method}"
        );
    }
    // OPTIONS anywhere: 200, nothing in the body.
    for path in ["/", "/artifacts/images", "/nope"] {
        let (status, _, body) = g
            .raw(Who::MemberA, Method::OPTIONS, path, None, vec![])
            .await;
        assert_eq!((status, body.len()), (200, 0), "{path}");
    }
}

#[tokio::test]
async fn numbers_given_for_strings_become_their_text() {
    let g = spawn_glare().await;
    let (status, doc) = g
        .call(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some(json!({"name": 5, "metadata": {"k": 1}})),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(
        (&doc["name"], &doc["metadata"]),
        (&json!("5"), &json!({"k": "1"}))
    );
}

#[tokio::test]
async fn a_replaced_blob_keeps_its_content_type_and_an_external_one_redirects_with_checksums() {
    let g = spawn_glare().await;
    let id = g.create(Who::MemberA, json!({"name": "b"})).await;
    let blob = format!("/artifacts/images/{id}/image");
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::PUT,
            &blob,
            Some("application/x-first"),
            b"one".to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = g
        .raw(
            Who::MemberA,
            Method::PUT,
            &blob,
            Some("text/plain"),
            b"two".to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["image"]["content_type"], "application/x-first");

    let ext = g.create(Who::MemberA, json!({"name": "e"})).await;
    let blob = format!("/artifacts/images/{ext}/image");
    let location = json!({"url": "http://127.0.0.1:1/disk", "md5": "0".repeat(32),
                          "sha1": "1".repeat(40), "sha256": "2".repeat(64)});
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::PUT,
            &blob,
            Some("application/vnd+openstack.glare-custom-location+json"),
            location.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("{}{blob}", g.url))
        .headers(common::glare::headers(Who::MemberA))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(res.headers()["location"], "http://127.0.0.1:1/disk");
    assert_eq!(
        res.headers()["x-openstack-glare-content-sha1"],
        "1".repeat(40).as_str()
    );
    assert_eq!(
        res.headers()["x-openstack-glare-content-sha256"],
        "2".repeat(64).as_str()
    );
}

#[tokio::test]
async fn a_quota_update_checks_its_body_before_the_callers_role() {
    let g = spawn_glare().await;
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::PUT,
            "/quotas",
            Some(JSON),
            b"{".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    let good = json!([{"project_id": "p", "project_quotas": [{"quota_name": "max_artifacts", "quota_value": 5}]}]);
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::PUT,
            "/quotas",
            Some(JSON),
            good.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, h, _) = g
        .raw(Who::MemberA, Method::DELETE, "/quotas", None, vec![])
        .await;
    assert_eq!((status, &h["allow"]), (405, &"PUT, GET".parse().unwrap()));
}

#[tokio::test]
async fn a_murano_package_activates_without_its_archive() {
    let g = spawn_glare().await;
    // Every field the schema requires on activation, set; its one blob, `package`, is not.
    let (_, schema) = g
        .call(Who::MemberA, Method::GET, "/schemas/murano_packages", None)
        .await;
    let props = schema["schemas"]["murano_packages"]["properties"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(props["package"]["required_on_activate"], false);
    let mut body = json!({"name": "m"});
    for (name, p) in &props {
        let settable = p["readOnly"] != true && p["required_on_activate"] != false;
        let value = match p["glareType"].as_str() {
            Some("String") if p.get("enum").is_none() => json!("x"),
            Some("StringList") => json!(["x"]),
            Some("StringDict") => json!({"k": "x"}),
            _ => continue,
        };
        if settable && name != "name" && name != "version" {
            body[name] = value;
        }
    }
    let (status, doc) = g
        .call(
            Who::MemberA,
            Method::POST,
            "/artifacts/murano_packages",
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{doc}");
    let id = doc["id"].as_str().unwrap();
    let (status, doc) = g
        .call(
            Who::MemberA,
            Method::PATCH,
            &format!("/artifacts/murano_packages/{id}"),
            Some(json!([{"op": "replace", "path": "/status", "value": "active"}])),
        )
        .await;
    assert_eq!((status, &doc["status"]), (200, &json!("active")), "{doc}");
}
