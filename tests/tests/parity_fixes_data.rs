//! More differences from Glance 33 that the parity harness (`tests/parity/`) found and we
//! fixed, in image data, the cache and import (`parity_fixes.rs` has the API's edges), each
//! checked here on our side alone so a regression shows without the reference.

use std::time::{Duration, Instant};

use glance_tests::{cached_ids, digests, spawn_app, spawn_app_with, TestApp};
use serde_json::{json, Value};

/// Polls `/v2/cache` until `pred` holds (the cache fills in the background).
async fn wait_for_cache(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = app.cache_state().await;
        if pred(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(app: &TestApp, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    if let Some(range) = range {
        req = req.header("range", range);
    }
    req.send().await.unwrap()
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn action(app: &TestApp, id: &str, what: &str) -> reqwest::Response {
    let path = format!("/v2/images/{id}/actions/{what}");
    app.client.post(app.url(&path)).send().await.unwrap()
}

fn entry<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["cached_images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["image_id"] == id)
        .unwrap_or_else(|| panic!("{id} not cached: {state}"))
}

/// Glance sets `virtual_size` only when the inspector finds a size that is not 0.
#[tokio::test]
async fn an_empty_upload_has_no_virtual_size() {
    let app = spawn_app().await;
    let id = app.active_image("empty", Vec::new()).await;
    let image = app.image(&id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], 0);
    assert_eq!(image["virtual_size"], Value::Null, "{image}");
    let id = app.active_image("one byte", vec![7]).await;
    assert_eq!(app.image(&id).await["virtual_size"], 1);
}

/// Glance's cache middleware: an admin's whole download of a deactivated image fills the
/// cache, though nothing is served from there while the image is deactivated; a hit is a
/// whole image served from the cache (we serve ranges from it too, without counting them);
/// an entry names the MD5 it was verified against.
#[tokio::test]
async fn the_cache_fills_as_glances_and_counts_whole_reads_as_hits() {
    let app = spawn_app().await;
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let (md5, _) = digests(&data);
    let id = app.active_image("d", data.clone()).await;
    let file = format!("/v2/images/{id}/file");

    let res = action(&app, &id, "deactivate").await;
    assert_eq!(res.status(), 204);
    let res = get(&app, &file, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
    let state = wait_for_cache(&app, "the deactivated image's tee", |s| {
        cached_ids(s) == vec![id.clone()]
    })
    .await;
    assert_eq!(entry(&state, &id)["checksum"], md5.as_str());
    assert_eq!(entry(&state, &id)["hits"], 0);
    // Deactivated: served from the store, so no hit.
    let res = get(&app, &file, None).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);

    let res = action(&app, &id, "reactivate").await;
    assert_eq!(res.status(), 204);
    let state = app.cache_state().await;
    if cached_ids(&state).is_empty() {
        // Reactivation may evict the entry; a whole download brings it back.
        get(&app, &file, None).await.bytes().await.unwrap();
        wait_for_cache(&app, "the entry again", |s| {
            cached_ids(s) == vec![id.clone()]
        })
        .await;
    }
    assert_eq!(entry(&app.cache_state().await, &id)["hits"], 0);

    let res = get(&app, &file, Some("bytes=10-19")).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[10..20]);
    let res = get(&app, &file, None).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
    wait_for_cache(&app, "the whole read's hit", |s| entry(s, &id)["hits"] != 0).await;
    // One more round trip, so a range counted as a hit would show by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(entry(&app.cache_state().await, &id)["hits"], 1);
}

/// `GET /v2/images/{id}/tasks` shows Glance's task rows: `deleted` and `deleted_at`, no
/// `self` or `schema`, and a finished import's last progress message.
#[tokio::test(flavor = "multi_thread")]
async fn an_images_tasks_are_shown_as_glances_rows() {
    let app = spawn_app_with(&[]).await;
    let image = app
        .create_image(json!({"name": "i", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = image["id"].as_str().unwrap();
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/stage")))
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = post(
        &app,
        &format!("/v2/images/{id}/import"),
        json!({"method": {"name": "glance-direct"}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let task = loop {
        let doc: Value = get(&app, &format!("/v2/images/{id}/tasks"), None)
            .await
            .json()
            .await
            .unwrap();
        let task = doc["tasks"][0].clone();
        if task["status"] == "success" {
            assert!(doc.get("schema").is_none(), "{doc}");
            break task;
        }
        assert!(Instant::now() < deadline, "import did not finish: {doc}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(task["deleted"], false, "{task}");
    assert_eq!(task["deleted_at"], Value::Null);
    assert!(
        task.get("self").is_none() && task.get("schema").is_none(),
        "{task}"
    );
    assert_eq!(task["message"], "Copied 3 MiB");
    assert_eq!(task["result"], json!({"image_id": id}));
    // oslo's timestamps: no zone, microseconds.
    let created = task["created_at"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(),
        "{created}"
    );
}

/// Glance checks the image's state before the shape of `stores`: an image with nothing
/// staged is a conflict, whatever `stores` holds.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_checks_the_images_state_before_its_stores() {
    let stores = tempfile::tempdir().unwrap();
    let dir = stores.path().join("fs");
    let app = spawn_app_with(&[
        ("DEFAULT", "enabled_backends", "fs:file"),
        ("glance_store", "default_backend", "fs"),
        ("fs", "filesystem_store_datadir", dir.to_str().unwrap()),
    ])
    .await;
    let image = app
        .create_image(json!({"name": "i", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let path = format!("/v2/images/{}/import", image["id"].as_str().unwrap());
    let body = json!({"method": {"name": "glance-direct"}, "stores": "fs"});
    assert_eq!(post(&app, &path, body.clone()).await.status(), 409);
    // Once staged, the malformed list is what is wrong.
    let res = app
        .client
        .put(app.url(&path.replace("/import", "/stage")))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(post(&app, &path, body).await.status(), 400);
}
