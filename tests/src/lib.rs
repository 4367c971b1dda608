//! `spawn_app()`: the real all-in-one service on port 0 with a fresh data dir, for tests
//! that talk HTTP to it exactly as clients do.

use std::net::TcpListener;

use glance_config::{RawConfig, Settings};
use reqwest::{Client, Response};
use serde_json::Value;

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub data_dir: tempfile::TempDir,
    handle: actix_web_handle::Handle,
}

mod actix_web_handle {
    /// Stops the server when the test ends so ports and threads are released.
    pub struct Handle(pub Option<tokio::task::JoinHandle<()>>);
    impl Drop for Handle {
        fn drop(&mut self) {
            if let Some(h) = self.0.take() {
                h.abort();
            }
        }
    }
}

/// Options a test can set, as `(section, option, value)` config overrides.
pub async fn spawn_app_with(overrides: &[(&str, &str, &str)]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut raw = RawConfig::defaults();
    raw.set("DEFAULT", "workers", "2");
    for (section, option, value) in overrides {
        raw.set(section, option, value);
    }
    if let Some(url) = fresh_database_url().await {
        raw.set("database", "connection", &url);
    }
    Settings::from_raw(&raw).expect("valid test settings");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().unwrap().port();
    let app = glance_all_in_one::build_from_raw(&raw, data_dir.path(), listener)
        .await
        .expect("service builds");
    let join = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // Idle connections go before the server's keep-alive (5 s) closes them, so a
            // request after a pause never races the close (hyper's IncompleteMessage).
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
        data_dir,
        handle: actix_web_handle::Handle(Some(join)),
    }
}

/// With `GLANCE_TEST_DATABASE=postgres`, every app gets a fresh PostgreSQL database on the
/// server at `GLANCE_TEST_POSTGRES_URL` (the test script runs the suite once per database).
pub async fn fresh_database_url() -> Option<String> {
    if std::env::var("GLANCE_TEST_DATABASE").as_deref() != Ok("postgres") {
        return None;
    }
    let server = std::env::var("GLANCE_TEST_POSTGRES_URL")
        .expect("GLANCE_TEST_DATABASE=postgres needs GLANCE_TEST_POSTGRES_URL");
    let name = format!("glance_test_{}", uuid::Uuid::new_v4().simple());
    Some(
        glance_db::Database::create_postgres_database(&server, &name)
            .await
            .expect("create a test database"),
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    /// A test app around a server the test built itself (on a database of its choosing),
    /// running on `join`, which is stopped when the app is dropped.
    pub fn attach(address: String, join: tokio::task::JoinHandle<()>) -> TestApp {
        TestApp {
            address,
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            data_dir: tempfile::tempdir().expect("temp dir"),
            handle: actix_web_handle::Handle(Some(join)),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn create_image(&self, body: Value) -> Value {
        let res = self
            .client
            .post(self.url("/v2/images"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            201,
            "create failed: {}",
            res.text().await.unwrap()
        );
        res.json().await.unwrap()
    }

    pub async fn get_image(&self, id: &str) -> Response {
        self.client
            .get(self.url(&format!("/v2/images/{id}")))
            .send()
            .await
            .unwrap()
    }

    pub async fn image(&self, id: &str) -> Value {
        let res = self.get_image(id).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn upload(&self, id: &str, data: Vec<u8>) -> Response {
        self.client
            .put(self.url(&format!("/v2/images/{id}/file")))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, id: &str, ops: Value) -> Response {
        self.client
            .patch(self.url(&format!("/v2/images/{id}")))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .json(&ops)
            .send()
            .await
            .unwrap()
    }

    pub async fn list(&self, query: &str) -> Value {
        let res = self
            .client
            .get(self.url(&format!("/v2/images{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    /// Creates a raw/bare image named `name` and uploads `data` (which must answer 204);
    /// returns its id.
    pub async fn active_image(&self, name: &str, data: Vec<u8>) -> String {
        let img = self
            .create_image(
                serde_json::json!({"name": name, "disk_format": "raw", "container_format": "bare"}),
            )
            .await;
        let id = img["id"].as_str().unwrap().to_owned();
        assert_eq!(self.upload(&id, data).await.status(), 204);
        id
    }

    /// `GET /v2/cache`, which must answer 200.
    pub async fn cache_state(&self) -> Value {
        let res = self.client.get(self.url("/v2/cache")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Stops the server now (rather than at drop).
    pub fn stop(mut self) {
        if let Some(h) = self.handle.0.take() {
            h.abort();
        }
    }
}

/// md5 and sha512 hex digests of `data`.
pub fn digests(data: &[u8]) -> (String, String) {
    use md5::Digest;
    (
        hex::encode(md5::Md5::digest(data)),
        hex::encode(sha2::Sha512::digest(data)),
    )
}

/// The image ids in a `GET /v2/cache` answer's `cached_images`.
pub fn cached_ids(state: &Value) -> Vec<String> {
    state["cached_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The regular files directly in `dir` (none if it does not exist).
pub fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}
