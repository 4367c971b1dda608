//! Shared by the cross-process tests: starting the real binaries against the test broker
//! and a fresh PostgreSQL database.
#![allow(dead_code)]

pub mod glare;
pub mod import;
pub mod metadefs;
pub mod regions;
pub mod sharing;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde_json::Value;

pub struct Proc {
    pub child: Child,
    name: String,
    log: PathBuf,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` before this test (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Mesh {
    pub amqp: String,
    pub db: String,
    pub images: tempfile::TempDir,
    pub logs: tempfile::TempDir,
}

impl Mesh {
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(bin(name));
        cmd.arg("--config-file")
            .arg(self.logs.path().join("glance-api.conf"));
        cmd.env("GLANCE__DEFAULT__TRANSPORT_URL", &self.amqp)
            .env("GLANCE__DATABASE__CONNECTION", &self.db)
            .env(
                "GLANCE__GLANCE_STORE__FILESYSTEM_STORE_DATADIR",
                self.images.path(),
            )
            .env("GLANCE__DEFAULT__AUTH_STRATEGY", "noauth")
            .env("GLANCE__DEFAULT__WORKERS", "2")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    pub fn spawn(&self, name: &str, tag: &str, mut cmd: Command) -> Proc {
        let log = self.logs.path().join(format!("{tag}.log"));
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdout(file.try_clone().unwrap()).stderr(file);
        Proc {
            child: cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}")),
            name: tag.to_owned(),
            log,
        }
    }

    pub fn registry(&self, tag: &str) -> Proc {
        self.spawn("glance-registry", tag, self.command("glance-registry"))
    }

    pub async fn api(&self, tag: &str) -> (Proc, String) {
        self.api_configured(tag, |_| {}).await
    }

    /// A `glance-api` with these extra environment variables.
    pub async fn api_with(&self, tag: &str, env: &[(&str, &str)]) -> (Proc, String) {
        self.api_configured(tag, |cmd| {
            cmd.envs(env.iter().copied());
        })
        .await
    }

    /// A `glance-api` on a free loopback port, its command `configure`d further, once it
    /// answers `GET /versions` (within 30 s); returns it with its base URL.
    pub async fn api_configured(
        &self,
        tag: &str,
        configure: impl FnOnce(&mut Command),
    ) -> (Proc, String) {
        let port = free_port();
        let mut cmd = self.command("glance-api");
        configure(&mut cmd);
        cmd.env("GLANCE__DEFAULT__BIND_HOST", "127.0.0.1")
            .env("GLANCE__DEFAULT__BIND_PORT", port.to_string());
        let proc = self.spawn("glance-api", tag, cmd);
        let url = format!("http://127.0.0.1:{port}");
        wait_until(&format!("{tag} to start"), Duration::from_secs(30), || {
            reqwest::get(format!("{url}/versions")).map(|r| r.is_ok())
        })
        .await;
        (proc, url)
    }

    /// What the process spawned as `tag` has logged so far.
    pub fn log(&self, tag: &str) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{tag}.log"))).unwrap_or_default()
    }

    /// How often `needle` occurs in the logs of the processes spawned as `tags`.
    pub fn count_in_logs(&self, tags: &[&str], needle: &str) -> usize {
        tags.iter()
            .map(|t| self.log(t).matches(needle).count())
            .sum()
    }

    /// Runs `glance-control` against this mesh's broker: (success, stdout + stderr).
    pub fn control_status(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(bin("glance-control"))
            .args(args)
            .env("GLANCE__DEFAULT__TRANSPORT_URL", &self.amqp)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The instance id `glance-control SERVICE status` shows for process `pid`.
    pub fn instance_of(&self, service: &str, pid: u32) -> Option<String> {
        let (_, out) = self.control_status(&[service, "status", "--timeout", "0.5"]);
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.len() > 3 && cols[0] == service && cols[3] == pid.to_string())
            .map(|cols| cols[1].to_owned())
    }

    /// Runs `glance-control`, which must succeed; returns its output.
    pub fn control(&self, args: &[&str]) -> String {
        let (ok, text) = self.control_status(args);
        assert!(ok, "glance-control {args:?} failed:\n{text}");
        text
    }
}

/// Polls `check` every 100 ms until it holds; fails the test after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an image from `body` through the API at `api`; returns its id.
pub async fn create_image(http: &reqwest::Client, api: &str, body: Value) -> String {
    let img: Value = http
        .post(format!("{api}/v2/images"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    img["id"].as_str().unwrap().to_owned()
}

/// Uploads `data` as image `id`'s data (into `store` if given), which must answer 204.
pub async fn upload_data(
    http: &reqwest::Client,
    api: &str,
    id: &str,
    store: Option<&str>,
    data: Vec<u8>,
) {
    let mut req = http
        .put(format!("{api}/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream");
    if let Some(store) = store {
        req = req.header("x-image-meta-store", store);
    }
    let res = req.body(data).send().await.unwrap();
    assert_eq!(res.status(), 204);
}

/// Deletes image `id`, which must answer 204.
pub async fn delete_image(http: &reqwest::Client, api: &str, id: &str) {
    let res = http
        .delete(format!("{api}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

/// The ids of the images in the cache of the node behind `api` (`GET /v2/cache`).
pub async fn cached(http: &reqwest::Client, api: &str) -> Vec<String> {
    let state: Value = http
        .get(format!("{api}/v2/cache"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    glance_tests::cached_ids(&state)
}

/// A fresh database on the test PostgreSQL and the test broker's URL. A test that needs them
/// and finds them unconfigured fails, saying how to get them: it never passes untested.
pub async fn mesh() -> Mesh {
    let (Ok(amqp), Ok(pg)) = (
        std::env::var("GLANCE_TEST_AMQP_URL"),
        std::env::var("GLANCE_TEST_POSTGRES_URL"),
    ) else {
        panic!(
            "this test needs RabbitMQ and PostgreSQL (GLANCE_TEST_AMQP_URL, \
             GLANCE_TEST_POSTGRES_URL): run ./scripts/test.sh, or start them with \
             `./scripts/test.sh --services FILE` and source FILE"
        );
    };
    let name = format!("glance_mesh_{}", uuid::Uuid::new_v4().simple());
    let db = glance_db::Database::create_postgres_database(&pg, &name)
        .await
        .unwrap();
    let mesh = Mesh {
        amqp,
        db,
        images: tempfile::tempdir().unwrap(),
        logs: tempfile::tempdir().unwrap(),
    };
    std::fs::write(mesh.logs.path().join("glance-api.conf"), "[DEFAULT]\n").unwrap();
    let status = mesh
        .command("glance-manage")
        .args(["db", "sync"])
        .status()
        .unwrap();
    assert!(status.success(), "glance-manage db sync failed");
    mesh
}
