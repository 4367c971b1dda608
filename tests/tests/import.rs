//! Interoperable import, tasks and multiple stores, over real HTTP: stage + glance-direct,
//! web-download from a server the test runs (and the targets it must refuse), copy-image to
//! a second store, the failure paths, python-glanceclient's `image-create-via-import`, and
//! import workers in two `glance-api` processes over RabbitMQ, one of them killed mid-import.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glance_tests::{digests, spawn_app_with, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// A small HTTP server for web-download.

/// What the test server serves at each path.
#[derive(Clone)]
enum Route {
    /// 200 with the bytes and a Content-Length.
    Data(Arc<Vec<u8>>),
    /// 200 with the bytes and no length: the body ends when the connection closes.
    Unsized(Arc<Vec<u8>>),
    /// 200, the bytes in `chunks` pieces with `pause` between them.
    Slow {
        data: Arc<Vec<u8>>,
        chunks: usize,
        pause: Duration,
    },
    /// 302 to the URL.
    Redirect(String),
    /// 200 promising more bytes than it sends, then silence with the connection open.
    Stall,
}

struct Origin {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

type Mutex<T> = std::sync::Mutex<T>;

impl Origin {
    async fn start(routes: HashMap<&'static str, Route>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<HashMap<String, Route>> =
            Arc::new(routes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let routes = routes.clone();
                let hits = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let _ = match routes.get(&path) {
                        None => {
                            socket
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                                .await
                        }
                        Some(Route::Data(data)) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                data.len()
                            );
                            socket.write_all(head.as_bytes()).await.unwrap();
                            socket.write_all(data).await
                        }
                        Some(Route::Unsized(data)) => {
                            socket
                                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                                .await
                                .unwrap();
                            socket.write_all(data).await
                        }
                        Some(Route::Slow {
                            data,
                            chunks,
                            pause,
                        }) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                data.len()
                            );
                            socket.write_all(head.as_bytes()).await.unwrap();
                            let size = data.len().div_ceil(*chunks);
                            for piece in data.chunks(size) {
                                if socket.write_all(piece).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(*pause).await;
                            }
                            Ok(())
                        }
                        Some(Route::Stall) => {
                            socket
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nsome bytes")
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            Ok(())
                        }
                        Some(Route::Redirect(to)) => {
                            let head = format!(
                                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            socket.write_all(head.as_bytes()).await
                        }
                    };
                    let _ = socket.shutdown().await;
                });
            }
        });
        Origin { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// A few MiB of bytes that are not all alike.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn new_image(app: &TestApp) -> String {
    let img = app
        .create_image(json!({"name": "imp", "disk_format": "raw", "container_format": "bare"}))
        .await;
    img["id"].as_str().unwrap().to_owned()
}

async fn stage(app: &TestApp, id: &str, data: Vec<u8>) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/v2/images/{id}/stage")))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
}

async fn import(base: &str, id: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v2/images/{id}/import"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn image_at(base: &str, id: &str) -> Value {
    let res = reqwest::get(format!("{base}/v2/images/{id}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The image's import tasks, newest first.
async fn tasks_at(base: &str, id: &str) -> Vec<Value> {
    let res = reqwest::get(format!("{base}/v2/images/{id}/tasks"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    doc["tasks"].as_array().unwrap().clone()
}

/// Polls until the image's latest import task has finished, and returns it with the image.
async fn finished(base: &str, id: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = tasks_at(base, id).await;
        if let Some(task) = tasks.first() {
            if matches!(task["status"].as_str(), Some("success" | "failure")) {
                return (task.clone(), image_at(base, id).await);
            }
        }
        assert!(
            Instant::now() < deadline,
            "import of {id} did not finish: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn download(base: &str, id: &str) -> Vec<u8> {
    let res = reqwest::get(format!("{base}/v2/images/{id}/file"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().to_vec()
}

fn assert_active_with(image: &Value, data: &[u8]) {
    let (md5, sha512) = digests(data);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], sha512.as_str());
    assert_eq!(image["size"], data.len());
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
}

/// Web-download may reach the test server on its random port.
const ANY_PORT: (&str, &str, &str) = ("import_filtering_opts", "allowed_ports", "");

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

// ---------------------------------------------------------------------------------------
// python-glanceclient.

/// The glance CLI in the test venv; missing, the test fails rather than passing untested.
fn glance_cli() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/glance");
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test.sh (it makes the venv)",
        path.display()
    );
    path
}

fn run_glance(cli: &Path, base: &str, args: &[&str]) -> String {
    // With stdin open (even on /dev/null) the client takes it for image data; a closed
    // stdin is what a terminal user without a pipe looks like to it.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" <&-")
        .arg(cli)
        .args(args)
        .env("OS_IMAGE_URL", base)
        .env("OS_AUTH_TOKEN", "unused")
        .env_remove("OS_AUTH_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "glance {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The id in `glance image-create-via-import`'s table.
fn id_in(table: &str) -> String {
    table
        .lines()
        .find(|l| l.split('|').nth(1).is_some_and(|c| c.trim() == "id"))
        .and_then(|l| l.split('|').nth(2))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| panic!("no id in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn glanceclient_creates_images_via_import() {
    let cli = glance_cli();
    let data = Arc::new(payload(500_000));
    let origin = Origin::start(HashMap::from([("/cirros.img", Route::Data(data.clone()))])).await;
    let app = spawn_app_with(&[ANY_PORT]).await;
    let file = app.data_dir.path().join("upload.img");
    std::fs::write(&file, &*data).unwrap();

    let base = app.address.clone();
    let file_arg = file.to_str().unwrap().to_owned();
    let cli2 = cli.clone();
    let table = tokio::task::spawn_blocking(move || {
        run_glance(
            &cli2,
            &base,
            &[
                "image-create-via-import",
                "--name",
                "direct",
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                "--import-method",
                "glance-direct",
                "--file",
                &file_arg,
            ],
        )
    })
    .await
    .unwrap();
    let id = id_in(&table);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);

    let base = app.address.clone();
    let uri = origin.url("/cirros.img");
    let table = tokio::task::spawn_blocking(move || {
        run_glance(
            &cli,
            &base,
            &[
                "image-create-via-import",
                "--name",
                "web",
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                "--import-method",
                "web-download",
                "--uri",
                &uri,
            ],
        )
    })
    .await
    .unwrap();
    let id = id_in(&table);
    let (task, image) = finished(&app.address, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
    assert_eq!(origin.hits("/cirros.img"), 1);
}

// ---------------------------------------------------------------------------------------
// Import workers in two glance-api processes over RabbitMQ.

async fn api_with(mesh: &common::Mesh, tag: &str, env: &[(&str, &str)]) -> (common::Proc, String) {
    mesh.api_configured(tag, |cmd| {
        cmd.env("GLANCE__IMPORT_FILTERING_OPTS__ALLOWED_PORTS", "")
            .envs(env.iter().copied());
    })
    .await
}

async fn new_image_at(base: &str) -> String {
    common::create_image(
        &reqwest::Client::new(),
        base,
        json!({"name": "mesh-import", "disk_format": "raw", "container_format": "bare"}),
    )
    .await
}

/// The two cross-process cases run in one test, one after the other: they share the
/// broker's one import queue, so running them side by side would mix their work.
#[tokio::test(flavor = "multi_thread")]
async fn import_workers_in_two_api_processes() {
    two_api_processes_share_the_imports().await;
    an_import_survives_its_worker_being_killed().await;
    a_frozen_worker_s_import_is_failed_and_the_image_recovered().await;
    a_shutdown_lets_the_imports_in_hand_finish().await;
}

async fn two_api_processes_share_the_imports() {
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry");
    let one = [("GLANCE__IMPORT_WORKER__CONCURRENCY", "1")];
    let (_a, api_a) = api_with(&mesh, "api-a", &one).await;
    let (_b, api_b) = api_with(&mesh, "api-b", &one).await;
    // Each download takes a while, so one worker cannot take every import.
    let data = Arc::new(payload(256 * 1024));
    let origin = Origin::start(HashMap::from([(
        "/slow.img",
        Route::Slow {
            data: data.clone(),
            chunks: 8,
            pause: Duration::from_millis(100),
        },
    )]))
    .await;

    let mut ids = Vec::new();
    for i in 0..4 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let id = new_image_at(api).await;
        let res = import(
            api,
            &id,
            json!({"method": {"name": "web-download", "uri": origin.url("/slow.img")}}),
        )
        .await;
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
        ids.push(id);
    }
    // Staged on one node, imported by whichever worker takes it (staging is shared).
    let id = new_image_at(&api_a).await;
    let res = reqwest::Client::new()
        .put(format!("{api_a}/v2/images/{id}/stage"))
        .header("content-type", "application/octet-stream")
        .body((*data).clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = import(&api_b, &id, json!({"method": {"name": "glance-direct"}})).await;
    assert_eq!(res.status(), 202);
    ids.push(id);

    for id in &ids {
        let (task, image) = finished(&api_a, id).await;
        assert_eq!(task["status"], "success", "{task}");
        assert_active_with(&image, &data);
    }
    let imported = |tag: &str| mesh.log(tag).matches("image imported").count();
    let (by_a, by_b) = (imported("api-a"), imported("api-b"));
    assert_eq!(by_a + by_b, ids.len());
    assert!(
        by_a > 0 && by_b > 0,
        "one worker did everything: a={by_a} b={by_b}"
    );
}

async fn an_import_survives_its_worker_being_killed() {
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry");
    let data = Arc::new(payload(512 * 1024));
    let SlowImport {
        node: mut victim,
        id,
        origin,
    } = slow_import_under_way(&mesh, "api-victim", data.clone()).await;

    // The only worker is downloading: start a second and kill the first.
    let one = [("GLANCE__IMPORT_WORKER__CONCURRENCY", "1")];
    let (_b, api_b) = api_with(&mesh, "api-survivor", &one).await;
    assert_eq!(image_at(&api_b, &id).await["status"], "importing");
    victim.kill9();

    // The broker hands the unacknowledged import to the survivor, which runs it again.
    let (task, image) = finished(&api_b, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
    assert_eq!(download(&api_b, &id).await, *data);
    assert!(
        origin.hits("/slow.img") >= 2,
        "the survivor downloaded again"
    );
    assert!(mesh.log("api-survivor").contains("image imported"));
    assert!(!mesh.log("api-victim").contains("image imported"));
}

/// A worker that hangs with its broker connection open keeps its message, so no other
/// worker gets it; its heartbeat stops, and another worker's sweep fails the import and
/// puts the image back, so it can be imported again.
async fn a_frozen_worker_s_import_is_failed_and_the_image_recovered() {
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry");
    let data = Arc::new(payload(256 * 1024));
    let origin = Origin::start(HashMap::from([
        (
            "/slow.img",
            Route::Slow {
                data: data.clone(),
                chunks: 40,
                pause: Duration::from_millis(150),
            },
        ),
        ("/disk.img", Route::Data(data.clone())),
    ]))
    .await;
    let quick = [
        ("GLANCE__IMPORT_WORKER__CONCURRENCY", "1"),
        ("GLANCE__IMPORT_WORKER__STALE_AFTER", "2"),
    ];
    let SlowImport {
        node: mut frozen,
        id,
        origin,
    } = import_under_way(&mesh, "api-frozen", origin, &quick).await;
    let pid = frozen.child.id().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let (_b, api_b) = api_with(&mesh, "api-sweeper", &quick).await;

    let (task, image) = finished(&api_b, &id).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("stopped making progress"),
        "{task}"
    );
    assert_eq!(image["status"], "queued");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    frozen.kill9();

    // The image is usable again.
    let res = import(
        &api_b,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/disk.img")}}),
    )
    .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let (task, image) = finished(&api_b, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
}

/// `glance-control api shutdown` stops the node taking imports, and the process exits only
/// once the import it was running has finished (nobody else is there to take it over).
async fn a_shutdown_lets_the_imports_in_hand_finish() {
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry");
    let data = Arc::new(payload(256 * 1024));
    let SlowImport {
        node: mut draining,
        id,
        origin,
    } = slow_import_under_way(&mesh, "api-draining", data.clone()).await;

    let instance = mesh
        .instance_of("api", draining.child.id())
        .expect("the API answers glance-control status");
    mesh.control(&["api", "shutdown", "--instance", &instance]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = draining.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the API did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "exited with {exit}");
    assert!(
        mesh.log("api-draining").contains("image imported"),
        "the import finished before the process exited"
    );

    // Another node finds it done: nothing was left for it to do.
    let one = [("GLANCE__IMPORT_WORKER__CONCURRENCY", "1")];
    let (_other, other) = api_with(&mesh, "api-after", &one).await;
    let (task, image) = finished(&other, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_active_with(&image, &data);
    assert_eq!(origin.hits("/slow.img"), 1, "downloaded once");
}

/// One API node of the mesh importing by web-download from `origin`'s `/slow.img`.
struct SlowImport {
    node: common::Proc,
    id: String,
    origin: Origin,
}

/// An origin whose `/slow.img` takes three seconds to send `data`.
async fn slow_origin(data: Arc<Vec<u8>>) -> Origin {
    Origin::start(HashMap::from([(
        "/slow.img",
        Route::Slow {
            data,
            chunks: 20,
            pause: Duration::from_millis(150),
        },
    )]))
    .await
}

/// Starts that import on a new node `tag`, running one import at a time, with `data` from
/// [`slow_origin`]; returns once its worker is downloading.
async fn slow_import_under_way(mesh: &common::Mesh, tag: &str, data: Arc<Vec<u8>>) -> SlowImport {
    let one = [("GLANCE__IMPORT_WORKER__CONCURRENCY", "1")];
    import_under_way(mesh, tag, slow_origin(data).await, &one).await
}

/// Starts the import of `origin`'s `/slow.img` on a new node `tag` configured with `env`;
/// returns once its worker is downloading.
async fn import_under_way(
    mesh: &common::Mesh,
    tag: &str,
    origin: Origin,
    env: &[(&str, &str)],
) -> SlowImport {
    let (node, api) = api_with(mesh, tag, env).await;
    let id = new_image_at(&api).await;
    let res = import(
        &api,
        &id,
        json!({"method": {"name": "web-download", "uri": origin.url("/slow.img")}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while origin.hits("/slow.img") == 0 {
        assert!(Instant::now() < deadline, "the import never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    SlowImport { node, id, origin }
}
