//! The Images API v2 over HTTP against the all-in-one service. One file over 600 lines on
//! purpose: each test is one route's behaviour end to end, and they share no helpers worth
//! a module.

use glance_tests::{digests, spawn_app, spawn_app_with};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn the_root_answers_300_with_one_current_version() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 300);
    assert!(res.headers().contains_key("x-openstack-request-id"));
    let body: Value = res.json().await.unwrap();
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(
        versions.iter().filter(|v| v["status"] == "CURRENT").count(),
        1
    );
    assert!(versions[0]["links"][0]["href"]
        .as_str()
        .unwrap()
        .starts_with(&app.address));
    let res = app.client.get(app.url("/versions")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn schemas_are_served_for_the_clients() {
    let app = spawn_app().await;
    for name in [
        "image",
        "images",
        "member",
        "members",
        "task",
        "tasks",
        "metadefs/namespace",
    ] {
        let res = app
            .client
            .get(app.url(&format!("/v2/schemas/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
        let doc: Value = res.json().await.unwrap();
        assert!(doc["name"].is_string(), "{name}");
    }
    let res = app
        .client
        .get(app.url("/v2/schemas/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_created_image_is_queued_with_glances_fields() {
    let app = spawn_app().await;
    let img = app
        .create_image(json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare", "hw_disk_bus": "scsi", "tags": ["a", "b"]}))
        .await;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["hw_disk_bus"], "scsi");
    assert_eq!(img["tags"], json!(["a", "b"]));
    assert_eq!(img["size"], Value::Null);
    assert_eq!(img["checksum"], Value::Null);
    let id = img["id"].as_str().unwrap();
    assert_eq!(img["self"], format!("/v2/images/{id}"));
    assert_eq!(img["file"], format!("/v2/images/{id}/file"));
    assert_eq!(img["schema"], "/v2/schemas/image");
    let shown = app.image(id).await;
    assert_eq!(shown, img);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_may_choose_the_image_id_once() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4().to_string();
    let img = app.create_image(json!({"id": id, "name": "x"})).await;
    assert_eq!(img["id"], id.as_str());
    let res = app
        .client
        .post(app.url("/v2/images"))
        .json(&json!({"id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_reserved_attributes_are_refused_at_create() {
    let app = spawn_app().await;
    for body in [
        json!({"status": "active"}),
        json!({"checksum": "x"}),
        json!({"stores": "file"}),
        json!({"os_glance_foo": "x"}),
        json!({"deleted": "x"}),
    ] {
        let res = app
            .client
            .post(app.url("/v2/images"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{body}");
    }
    for body in [
        json!({"disk_format": "floppy"}),
        json!({"min_ram": -1}),
        json!({"foo": 1}),
        // Glance's schema refuses a non-string extra property before the reserved name.
        json!({"deleted": true}),
        json!({"name": "x".repeat(256)}),
    ] {
        let res = app
            .client
            .post(app.url("/v2/images"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
    }
    let res = app
        .client
        .post(app.url("/v2/images"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_malformed_ids_are_404() {
    let app = spawn_app().await;
    assert_eq!(
        app.get_image(&uuid::Uuid::new_v4().to_string())
            .await
            .status(),
        404
    );
    let res = app.get_image("not-a-uuid").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-openstack-request-id"));
    // Like Glance (webob), errors are HTML unless the client asks for JSON.
    assert!(res.text().await.unwrap().contains("<h1>404 Not Found</h1>"));
    let res = app
        .client
        .get(app.url("/v2/images/not-a-uuid"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "404 Not Found");
    assert_eq!(body["title"], "Not Found");
    assert!(body["message"].as_str().unwrap().contains("not-a-uuid"));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_methods_get_405_with_allow() {
    let app = spawn_app().await;
    let res = app.client.put(app.url("/v2/images")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, POST");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_then_download_returns_the_same_bytes_and_checksums() {
    let app = spawn_app().await;
    let img = app
        .create_image(json!({"name": "data", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let res = app.upload(id, data.clone()).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let img = app.image(id).await;
    let (md5, sha512) = digests(&data);
    assert_eq!(img["status"], "active");
    assert_eq!(img["size"], data.len());
    assert_eq!(img["virtual_size"], data.len());
    assert_eq!(img["checksum"], md5);
    assert_eq!(img["os_hash_algo"], "sha512");
    assert_eq!(img["os_hash_value"], sha512);

    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-md5"], md5.as_str());
    assert_eq!(
        res.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);

    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 10-19/{}", data.len()).as_str()
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[10..20]);

    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .header("range", format!("bytes={}-", data.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);

    // An active image takes no second upload.
    assert_eq!(app.upload(id, vec![1, 2, 3]).await.status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_upload_is_accepted() {
    let app = spawn_app().await;
    let img = app
        .create_image(json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..50).map(|i| Ok(vec![i as u8; 65536])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.image(id).await["size"], 50 * 65536);
}

#[tokio::test(flavor = "multi_thread")]
async fn downloading_an_image_without_data_is_204() {
    let app = spawn_app().await;
    let img = app.create_image(json!({})).await;
    let res = app
        .client
        .get(app.url(&format!("/v2/images/{}/file", img["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_size_cap_is_413_and_the_image_stays_queued() {
    let app = spawn_app_with(&[("DEFAULT", "image_size_cap", "1000")]).await;
    let img = app
        .create_image(json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap();
    assert_eq!(app.upload(id, vec![0; 1001]).await.status(), 413);
    // Chunked: the cap is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..4).map(|_| Ok(vec![0u8; 400])).collect();
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let img = app.image(id).await;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["size"], Value::Null);
    let stored: Vec<_> = std::fs::read_dir(app.data_dir.path().join("images"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().unwrap().is_file())
        .collect();
    assert!(stored.is_empty(), "no partial data kept: {stored:?}");
    // And the upload can be retried.
    assert_eq!(app.upload(id, vec![7; 1000]).await.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_needs_formats_and_octet_stream() {
    let app = spawn_app().await;
    let img = app.create_image(json!({"name": "noformat"})).await;
    let id = img["id"].as_str().unwrap();
    assert_eq!(app.upload(id, vec![1; 10]).await.status(), 400);
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_that_do_not_match_disk_format_are_415_and_nothing_is_kept() {
    let app = spawn_app().await;
    let img = app
        .create_image(json!({"disk_format": "qcow2", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap();
    let res = app.upload(id, vec![0; 1 << 20]).await;
    assert_eq!(res.status(), 415, "{}", res.text().await.unwrap());
    let img = app.image(id).await;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["checksum"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_adds_replaces_and_removes() {
    let app = spawn_app().await;
    let img = app.create_image(json!({"name": "a", "foo": "1"})).await;
    let id = img["id"].as_str().unwrap();
    let res = app
        .patch(
            id,
            json!([
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "add", "path": "/bar", "value": "2"},
                {"op": "remove", "path": "/foo"},
                {"op": "replace", "path": "/min_ram", "value": 512},
                {"op": "add", "path": "/tags", "value": ["x"]}
            ]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let img: Value = res.json().await.unwrap();
    assert_eq!(img["name"], "b");
    assert_eq!(img["bar"], "2");
    assert!(img.get("foo").is_none());
    assert_eq!(img["min_ram"], 512);
    assert_eq!(img["tags"], json!(["x"]));
    assert_eq!(app.image(id).await, img);

    let cases = [
        (
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
        ),
        (json!([{"op": "remove", "path": "/name"}]), 403),
        (json!([{"op": "remove", "path": "/nothere"}]), 409),
        (
            json!([{"op": "replace", "path": "/nothere", "value": "x"}]),
            409,
        ),
        (
            json!([{"op": "replace", "path": "/disk_format", "value": "bogus"}]),
            400,
        ),
        (json!([{"op": "move", "path": "/name", "from": "/x"}]), 400),
    ];
    for (ops, status) in cases {
        assert_eq!(app.patch(id, ops.clone()).await.status(), status, "{ops}");
    }
    let res = app
        .client
        .patch(app.url(&format!("/v2/images/{id}")))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn formats_can_only_change_while_queued() {
    let app = spawn_app().await;
    let img = app
        .create_image(json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap();
    assert_eq!(app.upload(id, vec![1; 100]).await.status(), 204);
    let res = app
        .patch(
            id,
            json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
        )
        .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_are_added_and_removed_by_path() {
    let app = spawn_app().await;
    let img = app.create_image(json!({})).await;
    let id = img["id"].as_str().unwrap();
    let put = app
        .client
        .put(app.url(&format!("/v2/images/{id}/tags/web")))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(app.image(id).await["tags"], json!(["web"]));
    let del = app
        .client
        .delete(app.url(&format!("/v2/images/{id}/tags/web")))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(app.image(id).await["tags"], json!([]));
    let del = app
        .client
        .delete(app.url(&format!("/v2/images/{id}/tags/web")))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_image_and_its_data() {
    let app = spawn_app().await;
    let img = app
        .create_image(json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap();
    assert_eq!(app.upload(id, vec![9; 4096]).await.status(), 204);
    assert!(app.data_dir.path().join("images").join(id).exists());
    let res = app
        .client
        .delete(app.url(&format!("/v2/images/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_image(id).await.status(), 404);
    assert!(!app.data_dir.path().join("images").join(id).exists());
    let res = app
        .client
        .delete(app.url(&format!("/v2/images/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_image_cannot_be_deleted() {
    let app = spawn_app().await;
    let img = app.create_image(json!({"protected": true})).await;
    let id = img["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/v2/images/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.get_image(id).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn walking_next_links_returns_every_image_once() {
    let app = spawn_app().await;
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..23 {
        let img = app
            .create_image(json!({"name": format!("img{}", i % 3)}))
            .await;
        ids.insert(img["id"].as_str().unwrap().to_owned());
    }
    for first in [
        "/v2/images?limit=5",
        "/v2/images?limit=4&sort=name:asc",
        "/v2/images?limit=7&sort_key=name&sort_dir=desc",
    ] {
        let mut seen = std::collections::BTreeSet::new();
        let mut next = Some(first.to_owned());
        let mut pages = 0;
        while let Some(path) = next {
            let res = app.client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let page: Value = res.json().await.unwrap();
            for img in page["images"].as_array().unwrap() {
                assert!(
                    seen.insert(img["id"].as_str().unwrap().to_owned()),
                    "duplicate in {first}"
                );
            }
            next = page["next"].as_str().map(str::to_owned);
            pages += 1;
            assert!(pages < 20);
        }
        assert_eq!(seen, ids, "{first}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_select_images() {
    let app = spawn_app().await;
    let a = app
        .create_image(json!({"name": "alpha", "disk_format": "raw", "container_format": "bare", "tags": ["t1", "t2"], "os_distro": "debian"}))
        .await;
    let b = app
        .create_image(json!({"name": "beta", "disk_format": "qcow2", "container_format": "bare", "tags": ["t1"], "protected": true}))
        .await;
    let _hidden = app
        .create_image(json!({"name": "gamma", "os_hidden": true}))
        .await;
    assert_eq!(
        app.upload(a["id"].as_str().unwrap(), vec![0; 100])
            .await
            .status(),
        204
    );

    let names = |v: Value| -> Vec<String> {
        let mut n: Vec<String> = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap_or("").to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(app.list("?name=alpha").await), ["alpha"]);
    assert_eq!(
        names(app.list("?name=in:alpha,beta").await),
        ["alpha", "beta"]
    );
    assert_eq!(names(app.list("?tag=t1&tag=t2").await), ["alpha"]);
    assert_eq!(names(app.list("?tag=t1").await), ["alpha", "beta"]);
    assert_eq!(names(app.list("?status=active").await), ["alpha"]);
    assert_eq!(names(app.list("?disk_format=qcow2").await), ["beta"]);
    assert_eq!(names(app.list("?protected=true").await), ["beta"]);
    assert_eq!(
        names(app.list("?size_min=50&size_max=150").await),
        ["alpha"]
    );
    assert_eq!(names(app.list("?os_distro=debian").await), ["alpha"]);
    assert_eq!(names(app.list("").await), ["alpha", "beta"]);
    assert_eq!(names(app.list("?os_hidden=true").await), ["gamma"]);
    assert_eq!(
        names(app.list("?created_at=gte:2000-01-01T00:00:00Z").await),
        ["alpha", "beta"]
    );
    assert_eq!(
        names(app.list("?created_at=lt:2000-01-01T00:00:00Z").await).len(),
        0
    );
    let _ = b;
    for bad in [
        "?sort_key=nope",
        "?size_min=x",
        "?limit=-2",
        "?created_at=gt:nope",
        "?marker=not-a-uuid",
    ] {
        let res = app
            .client
            .get(app.url(&format!("/v2/images{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_headers_require_a_confirmed_identity() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let res = app.client.get(app.url("/v2/images")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // The version document needs no identity.
    assert_eq!(
        app.client
            .get(app.url("/versions"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let as_project = |p: &str, roles: &str| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-identity-status", "Confirmed".parse().unwrap());
        h.insert("x-project-id", p.parse().unwrap());
        h.insert("x-user-id", "u".parse().unwrap());
        h.insert("x-roles", roles.parse().unwrap());
        h
    };
    let res = app
        .client
        .post(app.url("/v2/images"))
        .headers(as_project("p1", "member,reader"))
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let img: Value = res.json().await.unwrap();
    assert_eq!(img["owner"], "p1");
    let id = img["id"].as_str().unwrap();

    let other = app
        .client
        .get(app.url(&format!("/v2/images/{id}")))
        .headers(as_project("p2", "member"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "a shared image without membership is invisible"
    );
    let listed: Value = app
        .client
        .get(app.url("/v2/images"))
        .headers(as_project("p2", "member"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["images"].as_array().unwrap().len(), 0);

    let reader = app
        .client
        .delete(app.url(&format!("/v2/images/{id}")))
        .headers(as_project("p1", "reader"))
        .send()
        .await
        .unwrap();
    assert_eq!(reader.status(), 403);
    let publicize = app
        .client
        .post(app.url("/v2/images"))
        .headers(as_project("p1", "member"))
        .json(&json!({"visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(publicize.status(), 403);
}
