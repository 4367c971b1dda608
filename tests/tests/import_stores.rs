//! Import with multiple stores (`enabled_backends`) over real HTTP: copy-image to a second
//! store, removing data from one store, store details, concurrent copies, glance-direct to
//! every store, a copy that does not match, and a failed store when not all must succeed.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::import::*;
use glance_tests::{spawn_app_with, TestApp};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Multiple stores and copy-image.

async fn multi_store_app(extra: &[(&str, &str, &str)]) -> (TestApp, tempfile::TempDir) {
    let stores = tempfile::tempdir().unwrap();
    let fast = stores.path().join("fast");
    let cheap = stores.path().join("cheap");
    let (fast, cheap) = (fast.to_str().unwrap(), cheap.to_str().unwrap());
    let mut overrides = vec![
        ("DEFAULT", "enabled_backends", "fast:file, cheap:file"),
        ("glance_store", "default_backend", "fast"),
        ("fast", "filesystem_store_datadir", fast),
        ("cheap", "filesystem_store_datadir", cheap),
        ("cheap", "store_description", "Slow and large"),
    ];
    overrides.extend_from_slice(extra);
    (spawn_app_with(&overrides).await, stores)
}

async fn upload_to(
    app: &TestApp,
    id: &str,
    store: Option<&str>,
    data: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .header("content-type", "application/octet-stream");
    if let Some(store) = store {
        req = req.header("x-image-meta-store", store);
    }
    req.body(data).send().await.unwrap()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Copies image `id` to the `cheap` store (accepted, 202) and waits for the copy to finish:
/// its task and the image then.
async fn copy_to_cheap(app: &TestApp, id: &str) -> (Value, Value) {
    let body = json!({"method": {"name": "copy-image"}, "stores": ["cheap"]});
    let res = import(&app.address, id, body).await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    finished(&app.address, id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_image_puts_the_data_in_a_second_store() {
    let (app, dirs) = multi_store_app(&[]).await;
    let stores: Value = reqwest::get(app.url("/v2/info/stores"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stores,
        json!({"stores": [
            {"id": "fast", "default": "true"},
            {"id": "cheap", "description": "Slow and large"},
        ]})
    );

    let id = new_image(&app).await;
    let data = payload(1 << 20);
    assert_eq!(
        upload_to(&app, &id, Some("nowhere"), data.clone())
            .await
            .status(),
        400
    );
    assert_eq!(app.image(&id).await["status"], "queued");
    let res = upload_to(&app, &id, Some("fast"), data.clone()).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let image = app.image(&id).await;
    assert_eq!(image["stores"], "fast");
    assert_eq!(files_in(&dirs.path().join("fast")).len(), 1);

    // Copying to where it already is is refused; to an unknown store is a conflict.
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["fast"]}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["elsewhere"]}),
    )
    .await;
    assert_eq!(res.status(), 409);

    let (task, image) = copy_to_cheap(&app, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["stores"], "fast,cheap");
    assert_active_with(&image, &data);
    assert_eq!(image["os_glance_importing_to_stores"], "");
    assert_eq!(image["os_glance_failed_import"], "");
    let copies = files_in(&dirs.path().join("cheap"));
    assert_eq!(copies.len(), 1);
    assert_eq!(std::fs::read(&copies[0]).unwrap(), data);

    // all_stores: nothing left to copy to.
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "copy-image"}, "all_stores": true}),
    )
    .await;
    assert_eq!(res.status(), 202);
}

/// `DELETE /v2/stores/{store}/{image}`: the inverse of copy-image, with Glance's refusals.
#[tokio::test(flavor = "multi_thread")]
async fn data_is_removed_from_one_store_and_kept_in_the_others() {
    let cold = tempfile::tempdir().unwrap();
    let (app, dirs) = multi_store_app(&[
        (
            "DEFAULT",
            "enabled_backends",
            "fast:file, cheap:file, cold:file",
        ),
        (
            "cold",
            "filesystem_store_datadir",
            cold.path().to_str().unwrap(),
        ),
    ])
    .await;
    let remove = |store: &str, id: &str| {
        app.client
            .delete(app.url(&format!("/v2/stores/{store}/{id}")))
            .send()
    };
    let id = new_image(&app).await;
    assert_eq!(
        remove("fast", &id).await.unwrap().status(),
        409,
        "queued: no data to remove"
    );
    let data = payload(1 << 20);
    assert_eq!(
        upload_to(&app, &id, Some("fast"), data.clone())
            .await
            .status(),
        204
    );
    let res = remove("fast", &id).await.unwrap();
    assert_eq!(res.status(), 403, "the only copy stays");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("only store containing it"));
    let (task, image) = copy_to_cheap(&app, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["stores"], "fast,cheap");

    assert_eq!(
        remove("nowhere", &id).await.unwrap().status(),
        409,
        "unknown store"
    );
    let res = remove("cold", &id).await.unwrap();
    assert_eq!(res.status(), 404, "not in that store");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("is not stored in store cold"));
    let missing = uuid::Uuid::new_v4();
    assert_eq!(
        remove("cheap", &missing.to_string())
            .await
            .unwrap()
            .status(),
        404
    );

    assert_eq!(remove("fast", &id).await.unwrap().status(), 204);
    let image = app.image(&id).await;
    assert_eq!(image["stores"], "cheap");
    assert_active_with(&image, &data);
    assert!(
        files_in(&dirs.path().join("fast")).is_empty(),
        "fast's copy is gone"
    );
    assert_eq!(files_in(&dirs.path().join("cheap")).len(), 1);
    assert_eq!(
        download(&app.address, &id).await,
        data,
        "served from the copy left"
    );
    assert_eq!(remove("cheap", &id).await.unwrap().status(), 403);
}

/// `GET /v2/info/stores/detail`: admins see each store's driver and data directory.
#[tokio::test(flavor = "multi_thread")]
async fn store_details_are_for_admins() {
    let (app, dirs) = multi_store_app(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let as_role = |role: &str| {
        app.client
            .get(app.url("/v2/info/stores/detail"))
            .header("x-identity-status", "Confirmed")
            .header("x-roles", role)
            .header("x-project-id", "p1")
            .send()
    };
    assert_eq!(as_role("member").await.unwrap().status(), 403);
    let res = as_role("admin").await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    let fast = dirs.path().join("fast").display().to_string();
    let cheap = dirs.path().join("cheap").display().to_string();
    assert_eq!(
        doc,
        json!({"stores": [
            {"id": "fast", "default": "true", "type": "file", "weight": 0,
             "properties": {"data_dir": fast, "chunk_size": 65536, "thin_provisioning": false}},
            {"id": "cheap", "description": "Slow and large", "type": "file", "weight": 0,
             "properties": {"data_dir": cheap, "chunk_size": 65536, "thin_provisioning": false}},
        ]})
    );
}

/// Without `enabled_backends` there are no stores to name: 404, as Glance.
#[tokio::test(flavor = "multi_thread")]
async fn removing_from_a_store_needs_multiple_stores() {
    let app = spawn_app_with(&[]).await;
    let id = new_image(&app).await;
    let res = app
        .client
        .delete(app.url(&format!("/v2/stores/file/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// Glance takes the copy lock with `set_property_atomic`: of concurrent copy-image calls on
/// one image exactly one is accepted, the others get 409, and the data is copied once.
#[tokio::test(flavor = "multi_thread")]
async fn of_concurrent_copies_of_one_image_exactly_one_is_accepted() {
    let (app, dirs) = multi_store_app(&[]).await;
    let id = new_image(&app).await;
    let data = payload(1 << 20);
    let res = upload_to(&app, &id, Some("fast"), data.clone()).await;
    assert_eq!(res.status(), 204);

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (base, id) = (app.address.clone(), id.clone());
            tokio::spawn(async move {
                let body = json!({"method": {"name": "copy-image"}, "stores": ["cheap"]});
                import(&base, &id, body).await.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses[0], 202, "{statuses:?}");
    // A call that reads the image after the winner locked it is refused before it makes a
    // task (Glance's `_enforce_import_lock`), and one that reads it after the copy finished
    // is told the image is already there; either way, only one is accepted.
    assert!(
        statuses[1..].iter().all(|s| matches!(s, 400 | 409)),
        "{statuses:?}"
    );

    // The calls that got as far as the lock made a task each; the losers failed at once,
    // the winner copies.
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks = loop {
        let tasks = tasks_at(&app.address, &id).await;
        let done = tasks
            .iter()
            .all(|t| matches!(t["status"].as_str(), Some("success" | "failure")));
        if !tasks.is_empty() && done {
            break tasks;
        }
        assert!(
            Instant::now() < deadline,
            "copies did not finish: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let succeeded = tasks.iter().filter(|t| t["status"] == "success").count();
    assert_eq!(succeeded, 1, "{tasks:#?}");
    let image = image_at(&app.address, &id).await;
    assert_eq!(image["stores"], "fast,cheap");
    assert_eq!(image["os_glance_import_task"], Value::Null);
    assert_eq!(files_in(&dirs.path().join("cheap")).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_direct_to_every_store() {
    let (app, dirs) = multi_store_app(&[]).await;
    let id = new_image(&app).await;
    let data = payload(300_000);
    assert_eq!(stage(&app, &id, data.clone()).await.status(), 204);
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}, "all_stores": true}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
    assert_eq!(image["stores"], "fast,cheap");
    for store in ["fast", "cheap"] {
        assert_eq!(files_in(&dirs.path().join(store)).len(), 1, "{store}");
    }
    // Staging is under the data dir and empty again.
    assert!(files_in(&app.data_dir.path().join("staging")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_does_not_match_the_checksum_is_not_kept() {
    let (app, dirs) = multi_store_app(&[]).await;
    let id = new_image(&app).await;
    let data = payload(200_000);
    assert_eq!(upload_to(&app, &id, None, data.clone()).await.status(), 204);
    // The bytes in the first store rot after upload.
    let stored = files_in(&dirs.path().join("fast"));
    let mut rotten = data.clone();
    rotten[1000] ^= 0xff;
    std::fs::write(&stored[0], &rotten).unwrap();

    let (task, image) = copy_to_cheap(&app, &id).await;
    assert_eq!(task["status"], "failure");
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("Checksum verification failed"),
        "{message}"
    );
    // The image is as it was, with the failed store recorded.
    assert_eq!(image["status"], "active");
    assert_eq!(image["stores"], "fast");
    assert_eq!(image["os_glance_failed_import"], "cheap");
    assert_eq!(image["os_glance_importing_to_stores"], "");
    assert!(image.get("os_glance_import_task").is_none());
    assert!(files_in(&dirs.path().join("cheap")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_store_does_not_fail_the_import_when_not_all_must_succeed() {
    // "cheap" is configured but its directory cannot take files.
    let (app, dirs) = multi_store_app(&[]).await;
    let cheap = dirs.path().join("cheap");
    std::fs::remove_dir_all(&cheap).unwrap();
    std::fs::write(&cheap, b"not a directory").unwrap();
    let id = new_image(&app).await;
    let data = payload(10_000);
    assert_eq!(stage(&app, &id, data.clone()).await.status(), 204);
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}, "stores": ["fast", "cheap"], "all_stores_must_succeed": false}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
    assert_eq!(image["stores"], "fast");
    assert_eq!(image["os_glance_failed_import"], "cheap");

    // With all_stores_must_succeed (the default), the same failure fails the import and
    // nothing is kept anywhere.
    let id = new_image(&app).await;
    assert_eq!(stage(&app, &id, data.clone()).await.status(), 204);
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}, "stores": ["fast", "cheap"]}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "failure");
    assert_eq!(image["status"], "queued");
    assert!(image.get("stores").is_none(), "{image}");
    assert_eq!(image["os_glance_failed_import"], "cheap,fast");
    assert_eq!(
        files_in(&dirs.path().join("fast")).len(),
        1,
        "only the first image's copy"
    );
}
