//! Shared by the cross-process tests: starting the real binaries against the test broker
//! and a fresh PostgreSQL database.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let port = free_port();
        let mut cmd = self.command("glance-api");
        cmd.env("GLANCE__DEFAULT__BIND_HOST", "127.0.0.1")
            .env("GLANCE__DEFAULT__BIND_PORT", port.to_string());
        let proc = self.spawn("glance-api", tag, cmd);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(format!("{url}/versions")).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "{tag} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (proc, url)
    }
}

pub async fn mesh() -> Option<Mesh> {
    let (Ok(amqp), Ok(pg)) = (
        std::env::var("GLANCE_TEST_AMQP_URL"),
        std::env::var("GLANCE_TEST_POSTGRES_URL"),
    ) else {
        if std::env::var("GLANCE_REQUIRE_RABBITMQ").as_deref() == Ok("1") {
            panic!("GLANCE_REQUIRE_RABBITMQ=1 but GLANCE_TEST_AMQP_URL/GLANCE_TEST_POSTGRES_URL are unset");
        }
        eprintln!(
            "RabbitMQ/PostgreSQL not configured: mesh test not run (scripts/test.sh sets them)"
        );
        return None;
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
    Some(mesh)
}
