//! The artifact API's data over HTTP, per persona: blobs and blob dicts (checksums,
//! downloads, external locations, size limits, removal with the artifact), Glare's listing
//! syntax, quotas. On PostgreSQL with `GLANCE_TEST_DATABASE=postgres`.

mod common;

use common::glare::{files_under, spawn_glare, status_op, Who};
use md5::Digest;
use reqwest::Method;
use serde_json::{json, Value};

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

/// A name filter is applied by the registry in SQL; results are the same as Glare's
/// whatever else the query holds (or-ed filters, `neq`, `latest`).
#[tokio::test]
async fn name_filters_mix_with_every_other_filter() {
    let g = spawn_glare().await;
    for (name, version) in [
        ("alpha", "1.0.0"),
        ("alpha", "2.0.0"),
        ("beta", "1.0.0"),
        ("gamma", "1.0.0"),
    ] {
        g.create(Who::MemberA, json!({"name": name, "version": version}))
            .await;
    }
    let count = |q: &'static str| {
        let g = &g;
        async move {
            let doc = g
                .expect(
                    Who::MemberA,
                    Method::GET,
                    &format!("/artifacts/images?{q}"),
                    None,
                    200,
                )
                .await;
            let mut names: Vec<String> = doc["artifacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{}-{}", a["name"].as_str().unwrap(), a["version"]))
                .collect();
            names.sort();
            assert_eq!(doc["total_count"], names.len(), "{q}: {doc}");
            names
        }
    };
    assert_eq!(count("name=in:alpha,beta").await.len(), 3);
    assert_eq!(count("name=eq:beta").await, ["beta-\"1.0.0\""]);
    assert_eq!(
        count("name=alpha&version=latest").await,
        ["alpha-\"2.0.0\""]
    );
    assert_eq!(count("name=neq:alpha").await.len(), 2);
    assert_eq!(count("name=or:alpha&name=or:gamma").await.len(), 3);
    assert_eq!(
        count("name=in:alpha,gamma&version=or:1.0.0").await,
        ["alpha-\"1.0.0\"", "gamma-\"1.0.0\""]
    );
    assert!(count("name=delta").await.is_empty());
}

#[tokio::test]
async fn quotas_are_set_by_admins_shown_per_project_and_enforced() {
    let g = spawn_glare().await;
    let doc = g
        .expect(Who::MemberA, Method::GET, "/quotas", None, 403)
        .await;
    assert_eq!(doc["error"]["type"], "PolicyException");
    let doc = g
        .expect(Who::Admin, Method::GET, "/quotas", None, 200)
        .await;
    assert_eq!(
        doc,
        json!({"quotas": [], "global_quotas": {"max_artifact_number": -1, "max_uploaded_data": -1}})
    );
    let quotas = json!([{"project_id": "project-a", "project_quotas": [
        {"quota_name": "max_artifact_number", "quota_value": 2},
        {"quota_name": "max_uploaded_data:images", "quota_value": 10}]}]);
    g.expect(
        Who::MemberA,
        Method::PUT,
        "/quotas",
        Some(quotas.clone()),
        403,
    )
    .await;
    g.expect(
        Who::Admin,
        Method::PUT,
        "/quotas",
        Some(json!([{"project_id": "p"}])),
        400,
    )
    .await;
    let doc = g
        .expect(Who::Admin, Method::PUT, "/quotas", Some(quotas), 200)
        .await;
    assert_eq!(doc, Value::Null);
    let doc = g
        .expect(Who::MemberA, Method::GET, "/project-quotas", None, 200)
        .await;
    assert_eq!(
        doc,
        json!([{"project_id": "project-a", "project_quotas": [
            {"quota_name": "max_artifact_number", "quota_value": 2},
            {"quota_name": "max_uploaded_data", "quota_value": -1},
            {"quota_name": "max_uploaded_data:images", "quota_value": 10}]}])
    );
    g.expect(
        Who::MemberB,
        Method::GET,
        "/project-quotas/project-a",
        None,
        403,
    )
    .await;
    let doc = g
        .expect(
            Who::Admin,
            Method::GET,
            "/project-quotas/project-b",
            None,
            200,
        )
        .await;
    assert_eq!(doc[0]["project_quotas"].as_array().unwrap().len(), 2);
    // Two artifacts for project A, no more; 10 bytes of images.
    let id = g.create(Who::MemberA, json!({"name": "q1"})).await;
    g.create(Who::MemberA, json!({"name": "q2"})).await;
    let doc = g
        .expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some(json!({"name": "q3"})),
            403,
        )
        .await;
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("global quota"),
        "{doc}"
    );
    g.create(Who::MemberB, json!({"name": "q3"})).await;
    let blob = format!("/artifacts/images/{id}/image");
    let (status, _) = g.upload(Who::MemberA, &blob, vec![1; 11]).await;
    assert_eq!(status, 413);
    let (status, _) = g.upload(Who::MemberA, &blob, vec![1; 10]).await;
    assert_eq!(status, 200);
}

/// Peak resident memory of this process, in KiB (nextest runs each test in its own).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_blob_of_hundreds_of_megabytes_streams_through_in_bounded_memory() {
    use futures::StreamExt;
    let g = spawn_glare().await;
    let id = g
        .create(
            Who::MemberA,
            json!({"name": "big", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let before = peak_rss_kib();
    const CHUNKS: usize = 256;
    let body =
        futures::stream::iter(0..CHUNKS).map(|i| Ok::<_, std::io::Error>(vec![i as u8; 1 << 20]));
    let res = g
        .client
        .put(format!("{}/artifacts/images/{id}/image", g.url))
        .headers(common::glare::headers(Who::MemberA))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["image"]["size"], json!(CHUNKS << 20));
    let res = g
        .client
        .get(format!("{}/artifacts/images/{id}/image", g.url))
        .headers(common::glare::headers(Who::MemberA))
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, CHUNKS << 20);
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 96,
        "256 MiB up and down grew the peak by {grown_mib} MiB"
    );
}
