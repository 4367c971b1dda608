//! Interoperable import and its tasks over real HTTP: stage + glance-direct, the task list,
//! web-download from a server the test runs (and the targets it must refuse), and the
//! failure paths. Multiple stores are in `import_stores.rs`; python-glanceclient and import
//! workers in two processes in `import_mesh.rs`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::import::*;
use glance_tests::spawn_app_with;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Discovery.

#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_import_methods_and_has_no_stores_without_enabled_backends() {
    let app = spawn_app_with(&[]).await;
    let doc: Value = reqwest::get(app.url("/v2/info/import"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["import-methods"]["value"],
        json!(["glance-direct", "web-download", "copy-image"])
    );
    let res = reqwest::get(app.url("/v2/info/stores")).await.unwrap();
    assert_eq!(res.status(), 404);

    let app = spawn_app_with(&[("DEFAULT", "enabled_import_methods", "['glance-direct']")]).await;
    let doc: Value = reqwest::get(app.url("/v2/info/import"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["import-methods"]["value"], json!(["glance-direct"]));
    let id = new_image(&app).await;
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "web-download", "uri": "http://example.com/x"}}),
    )
    .await;
    assert_eq!(res.status(), 400);
}

// ---------------------------------------------------------------------------------------
// glance-direct.

#[tokio::test(flavor = "multi_thread")]
async fn glance_direct_stages_then_imports_and_records_the_task() {
    let app = spawn_app_with(&[]).await;
    let id = new_image(&app).await;
    let data = payload(3 << 20);

    // Importing before staging is a conflict.
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}}),
    )
    .await;
    assert_eq!(res.status(), 409);

    let res = stage(&app, &id, data.clone()).await;
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let staged = app.image(&id).await;
    assert_eq!(staged["status"], "uploading");
    assert_eq!(staged["size"], data.len());
    // Staging twice is refused: the image is no longer queued.
    assert_eq!(stage(&app, &id, b"again".to_vec()).await.status(), 409);

    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}}),
    )
    .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["result"], json!({"image_id": id}));
    assert_eq!(task["image_id"], id.as_str());
    assert_eq!(
        task["input"]["import_req"]["method"]["name"],
        "glance-direct"
    );
    assert!(task["expires_at"].is_string(), "{task}");
    assert_active_with(&image, &data);
    assert_eq!(download(&app.address, &id).await, data);
    assert!(
        image.get("stores").is_none(),
        "single store: no 'stores': {image}"
    );
    // The staged copy is gone.
    let staging = app.data_dir.path().join("staging");
    assert!(!staging.join(&id).exists());

    // The Tasks API shows the same task; listing leaves out input and result.
    let task_id = task["id"].as_str().unwrap();
    let shown: Value = reqwest::get(app.url(&format!("/v2/tasks/{task_id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "success");
    assert_eq!(shown["self"], format!("/v2/tasks/{task_id}"));
    let listed: Value = reqwest::get(app.url("/v2/tasks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &listed["tasks"][0];
    assert_eq!(first["id"], task_id);
    assert!(first.get("input").is_none());
    assert_eq!(listed["schema"], "/v2/schemas/tasks");
    let res = reqwest::get(app.url("/v2/tasks/00000000-0000-0000-0000-000000000000"))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // The registry's not-found says it was a task, whose message Glance gives.
    let said = res.text().await.unwrap();
    assert!(
        said.contains("Task with the given ID 00000000-0000-0000-0000-000000000000 not found"),
        "{said}"
    );

    // An active image cannot be imported into again.
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}}),
    )
    .await;
    assert_eq!(res.status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_over_the_size_cap_is_refused_and_the_image_stays_queued() {
    let app = spawn_app_with(&[("DEFAULT", "image_size_cap", "1000")]).await;
    let id = new_image(&app).await;
    let res = stage(&app, &id, payload(5000)).await;
    assert_eq!(res.status(), 413);
    let image = app.image(&id).await;
    assert_eq!(image["status"], "queued");
    assert!(!app.data_dir.path().join("staging").join(&id).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_task_list_sorts_by_glances_keys_and_pages_in_that_order() {
    let app = spawn_app_with(&[]).await;
    for _ in 0..3 {
        let id = new_image(&app).await;
        assert_eq!(stage(&app, &id, payload(1000)).await.status(), 204);
        let res = import(
            &app.address,
            &id,
            json!({"method": {"name": "glance-direct"}}),
        )
        .await;
        assert_eq!(res.status(), 202);
        finished(&app.address, &id).await;
    }
    let page = |query: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(app.url(&format!("/v2/tasks?{query}")))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    // python-glanceclient's `task-list` asks for sort_key=status.
    let (status, _) = page("sort_key=status&sort_dir=desc".into()).await;
    assert_eq!(status, 200);
    let (status, _) = page("sort_key=name".into()).await;
    assert_eq!(status, 400);
    // By id ascending, two at a time: the pages follow the ids.
    let (_, first) = page("sort_key=id&sort_dir=asc&limit=2".into()).await;
    let mut ids: Vec<String> = first["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let marker = ids.last().unwrap().clone();
    let (_, second) = page(format!("sort_key=id&sort_dir=asc&limit=2&marker={marker}")).await;
    ids.extend(
        second["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned()),
    );
    assert_eq!(ids.len(), 3, "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_staged_image_removes_its_staged_data() {
    let app = spawn_app_with(&[]).await;
    let id = new_image(&app).await;
    assert_eq!(stage(&app, &id, payload(5000)).await.status(), 204);
    let staged = app.data_dir.path().join("staging").join(&id);
    assert!(staged.exists(), "staged data at {}", staged.display());
    let res = app
        .client
        .delete(format!("{}/v2/images/{id}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!staged.exists(), "staged data left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tasks_disappear_from_the_tasks_api() {
    let app = spawn_app_with(&[("task", "task_time_to_live", "0")]).await;
    let id = new_image(&app).await;
    stage(&app, &id, payload(1000)).await;
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "glance-direct"}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    // Listing would purge the task as soon as it finishes, so wait on the image.
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.image(&id).await["status"] != "active" {
        assert!(Instant::now() < deadline, "import did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A time to live of 0 hours expires the task as it finishes (which is recorded just
    // after the image goes active); the next list then purges it (with the default of 48
    // hours it stays: see the glance-direct test).
    loop {
        let listed: Value = reqwest::get(app.url("/v2/tasks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed["tasks"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "task not purged: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tasks_at(&app.address, &id).await, Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------
// web-download.

#[tokio::test(flavor = "multi_thread")]
async fn web_download_fetches_from_a_permitted_server() {
    let data = Arc::new(payload(2 << 20));
    let origin = Origin::start(HashMap::from([("/disk.img", Route::Data(data.clone()))])).await;
    let app = spawn_app_with(&[ANY_PORT]).await;
    let id = new_image(&app).await;
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/disk.img")}}),
    )
    .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
    assert_eq!(download(&app.address, &id).await, *data);
}

#[tokio::test(flavor = "multi_thread")]
async fn web_download_refuses_forbidden_targets() {
    let data = Arc::new(payload(1000));
    let origin = Origin::start(HashMap::new()).await;
    let redirect_target = format!("http://localhost:{}/disk.img", origin.port);
    let origin = Origin::start(HashMap::from([
        ("/disk.img", Route::Data(data.clone())),
        ("/bounce", Route::Redirect(redirect_target)),
    ]))
    .await;

    // Glance's defaults: http and https on ports 80 and 443 only.
    let strict = spawn_app_with(&[]).await;
    let id = new_image(&strict).await;
    for uri in [
        origin.url("/disk.img"),
        "ftp://127.0.0.1/disk.img".to_owned(),
        "file:///etc/passwd".to_owned(),
    ] {
        let res = import(
            &strict.address,
            &id,
            json!({"method": {"name": "web-download", "uri": uri}}),
        )
        .await;
        assert_eq!(res.status(), 400, "{uri}");
        let body = res.text().await.unwrap();
        assert!(body.contains("does not pass filtering"), "{body}");
    }
    assert_eq!(strict.image(&id).await["status"], "queued");
    assert_eq!(origin.hits("/disk.img"), 0, "nothing was fetched");

    // Any port, but not localhost: a redirect from a permitted URL to localhost is
    // refused at that hop.
    let app = spawn_app_with(&[
        ANY_PORT,
        ("import_filtering_opts", "disallowed_hosts", "localhost"),
    ])
    .await;
    let id = new_image(&app).await;
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/bounce")}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "failure");
    let message = task["message"].as_str().unwrap();
    assert!(message.contains("does not pass filtering"), "{message}");
    assert_eq!(origin.hits("/bounce"), 1);
    assert_eq!(origin.hits("/disk.img"), 0, "the redirect was not followed");
    assert_eq!(image["status"], "queued");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
}

#[tokio::test(flavor = "multi_thread")]
async fn web_download_failures_put_the_image_back_to_queued() {
    let big = Arc::new(payload(64 * 1024));
    let origin = Origin::start(HashMap::from([
        ("/big", Route::Data(big.clone())),
        ("/big-unsized", Route::Unsized(big.clone())),
    ]))
    .await;
    let app = spawn_app_with(&[ANY_PORT, ("DEFAULT", "image_size_cap", "10000")]).await;

    for (path, expect) in [
        ("/missing", "404"),
        ("/big", "size cap"),
        // No Content-Length: the cap is enforced as the bytes arrive.
        ("/big-unsized", "size cap"),
    ] {
        let id = new_image(&app).await;
        let res = import(
            &app.address,
            &id,
            json!({"method": {"name": "web-download", "uri": origin.url(path)}}),
        )
        .await;
        assert_eq!(res.status(), 202);
        let (task, image) = finished(&app.address, &id).await;
        assert_eq!(task["status"], "failure", "{path}");
        let message = task["message"].as_str().unwrap();
        assert!(message.contains(expect), "{path}: {message}");
        assert_eq!(image["status"], "queued", "{path}");
        assert_eq!(image["size"], Value::Null);
        assert!(image.get("os_glance_import_task").is_none());
        // Nothing is left in staging or in the store.
        assert!(!app.data_dir.path().join("staging").join(&id).exists());
        assert!(!app.data_dir.path().join("images").join(&id).exists());

        // The image can be imported again once the cause is fixed.
        let res = stage(&app, &id, payload(100)).await;
        assert_eq!(res.status(), 204);
    }
    // A server that stops sending mid-body: the read timeout ends the import.
    let stalling = Origin::start(HashMap::from([("/stall", Route::Stall)])).await;
    let app = spawn_app_with(&[ANY_PORT, ("import_worker", "read_timeout", "1")]).await;
    let id = new_image(&app).await;
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "web-download", "uri": stalling.url("/stall")}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "failure");
    let message = task["message"].as_str().unwrap();
    assert!(message.contains("stalled"), "{message}");
    assert_eq!(image["status"], "queued");

    // A host that does not answer.
    let id = new_image(&app).await;
    let dead_port = common::free_port();
    let res = import(
        &app.address,
        &id,
        json!({"method": {"name": "web-download", "uri": format!("http://127.0.0.1:{dead_port}/x")}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "failure");
    assert_eq!(image["status"], "queued");
}
