//! Several stores (`[DEFAULT] enabled_backends = fast:file, cheap:file`): an image written
//! to the non-default store is prefetched into the cache and scrubbed after a delayed
//! delete, by `glance-cache-worker` and `glance-scrubber` as separate processes over
//! RabbitMQ and PostgreSQL, and by the all-in-one's in-process worker and scrubber.
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{cached, create_image, delete_image, mesh, upload_data, wait_until, Mesh, Proc};
use serde_json::{json, Value};

/// Two store directories, `fast` (the default) and `cheap`.
struct TwoStores {
    root: tempfile::TempDir,
}

impl TwoStores {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for id in ["fast", "cheap"] {
            std::fs::create_dir(root.path().join(id)).unwrap();
        }
        Self { root }
    }

    /// Canonical, as the store's locations are.
    fn dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id).canonicalize().unwrap()
    }

    fn options(&self) -> Vec<(&'static str, &'static str, String)> {
        vec![
            (
                "DEFAULT",
                "enabled_backends",
                "fast:file, cheap:file".into(),
            ),
            (
                "fast",
                "filesystem_store_datadir",
                self.dir("fast").display().to_string(),
            ),
            (
                "cheap",
                "filesystem_store_datadir",
                self.dir("cheap").display().to_string(),
            ),
        ]
    }

    fn configure(&self, cmd: &mut Command) {
        for (section, option, value) in self.options() {
            cmd.env(
                format!(
                    "GLANCE__{}__{}",
                    section.to_uppercase(),
                    option.to_uppercase()
                ),
                value,
            );
        }
    }
}

/// Creates an image and uploads `data` into the store `store`; returns its id.
async fn upload_to(http: &reqwest::Client, api: &str, store: &str, data: Vec<u8>) -> String {
    let id = create_image(
        http,
        api,
        json!({"name": "cheap", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    upload_data(http, api, &id, Some(store), data).await;
    let res = http
        .get(format!("{api}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["stores"], store, "{shown}");
    id
}

async fn prefetch(http: &reqwest::Client, api: &str, id: &str) {
    let res = http
        .put(format!("{api}/v2/cache/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

fn data() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 241) as u8).collect()
}

fn assert_only_in_cheap(stores: &TwoStores, id: &str) {
    assert!(stores.dir("cheap").join(id).exists(), "not in cheap");
    assert!(
        !stores.dir("fast").join(id).exists(),
        "in the default store"
    );
}

async fn api(mesh: &Mesh, stores: &TwoStores, cache_dir: &Path, node: &str) -> (Proc, String) {
    mesh.api_configured("api", |cmd| {
        stores.configure(cmd);
        cmd.env("GLANCE__DEFAULT__DELAYED_DELETE", "true")
            .env("GLANCE__DEFAULT__IMAGE_CACHE_DIR", cache_dir)
            .env("GLANCE__GLANCE_CACHE__NODE_ID", node);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_worker_and_the_scrubber_reach_a_non_default_store() {
    let mesh = mesh().await;
    let stores = TwoStores::new();
    let cache_dir = tempfile::tempdir().unwrap();
    let node = format!("n{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let _registry = mesh.registry("registry");
    let (_api, url) = api(&mesh, &stores, cache_dir.path(), &node).await;
    let http = reqwest::Client::new();
    let data = data();
    let id = upload_to(&http, &url, "cheap", data.clone()).await;
    assert_only_in_cheap(&stores, &id);

    // glance-cache-worker reads the image out of the `cheap` store into the node's cache.
    let mut worker = mesh.command("glance-cache-worker");
    stores.configure(&mut worker);
    worker
        .env("GLANCE__DEFAULT__IMAGE_CACHE_DIR", cache_dir.path())
        .env("GLANCE__GLANCE_CACHE__NODE_ID", &node);
    let _worker = mesh.spawn("glance-cache-worker", "cache-worker", worker);
    prefetch(&http, &url, &id).await;
    wait_until(
        "the worker to cache the image",
        Duration::from_secs(60),
        || async { cached(&http, &url).await.contains(&id) },
    )
    .await;
    assert_eq!(std::fs::read(cache_dir.path().join(&id)).unwrap(), data);

    // A one-shot glance-scrubber removes the data of the pending_delete image from `cheap`.
    delete_image(&http, &url, &id).await;
    assert!(
        stores.dir("cheap").join(&id).exists(),
        "delayed delete kept no data"
    );
    let mut scrubber = mesh.command("glance-scrubber");
    stores.configure(&mut scrubber);
    let out = scrubber
        .env("GLANCE__DEFAULT__SCRUB_TIME", "0")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("scrubbed 1 of 1 due image(s)"), "{said}");
    assert!(
        !stores.dir("cheap").join(&id).exists(),
        "data left in cheap"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_all_in_one_prefetches_and_scrubs_a_non_default_store() {
    let stores = TwoStores::new();
    let options = stores.options();
    let mut overrides: Vec<(&str, &str, &str)> = options
        .iter()
        .map(|(s, o, v)| (*s, *o, v.as_str()))
        .collect();
    overrides.extend([
        ("DEFAULT", "delayed_delete", "true"),
        ("DEFAULT", "wakeup_time", "1"),
    ]);
    let app = glance_tests::spawn_app_with(&overrides).await;
    let data = data();
    let id = upload_to(&app.client, &app.address, "cheap", data.clone()).await;
    assert_only_in_cheap(&stores, &id);

    prefetch(&app.client, &app.address, &id).await;
    wait_until(
        "the embedded worker to cache the image",
        Duration::from_secs(30),
        || async { cached(&app.client, &app.address).await.contains(&id) },
    )
    .await;
    let in_cache = std::fs::read(app.data_dir.path().join("cache").join(&id)).unwrap();
    assert_eq!(in_cache, data);

    delete_image(&app.client, &app.address, &id).await;
    let file = stores.dir("cheap").join(&id);
    wait_until(
        "the embedded scrubber to remove the data",
        Duration::from_secs(30),
        || {
            let file = file.clone();
            async move { !file.exists() }
        },
    )
    .await;
}
