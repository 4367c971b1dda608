//! Delayed delete and `glance-scrubber` across real processes: `glance-registry`,
//! `glance-api` with `delayed_delete`, and scrubber daemons sharing the scrub queue on
//! RabbitMQ, with PostgreSQL behind the registry. The binaries must be built first.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{create_image, delete_image, mesh, upload_data, wait_until, Mesh, Proc};
use glance_bus::{Amqp, Bus};
use glance_domain::{ImageId, ImageStatus, RequestContext};
use glance_proto::registry::{GetImage, RegistryError};
use serde_json::{json, Value};

/// A scrubber daemon waking every second, for images deleted at least `scrub_time` ago.
fn scrubber(mesh: &Mesh, tag: &str, scrub_time: &str, delete_delay_ms: &str) -> Proc {
    let mut cmd = mesh.command("glance-scrubber");
    cmd.arg("--daemon")
        .env("GLANCE__DEFAULT__SCRUB_TIME", scrub_time)
        .env("GLANCE__DEFAULT__WAKEUP_TIME", "1")
        .env("GLANCE__DEFAULT__SCRUB_POOL_SIZE", "2")
        .env("GLANCE__SCRUBBER__TEST_DELETE_DELAY_MS", delete_delay_ms);
    mesh.spawn("glance-scrubber", tag, cmd)
}

struct Registry(Bus);

impl Registry {
    async fn connect(mesh: &Mesh) -> Self {
        let amqp = Amqp::connect(&mesh.amqp, 16).await.unwrap();
        Self(Bus::new(Arc::new(amqp)))
    }

    /// The stored status of `id`, deleted or not (`None`: no such row).
    async fn status(&self, id: &str) -> Option<ImageStatus> {
        let req = GetImage {
            ctx: RequestContext::admin("req-scrubber-test"),
            id: id.parse::<ImageId>().unwrap(),
            include_deleted: true,
        };
        match self.0.call(None, &req).await.unwrap() {
            Ok(image) => Some(image.status),
            Err(RegistryError::NotFound(_)) => None,
            Err(e) => panic!("registry: {e}"),
        }
    }
}

struct Api {
    http: reqwest::Client,
    url: String,
    images: PathBuf,
}

impl Api {
    /// Creates and uploads an image; returns its id.
    async fn image(&self, name: &str, data: &[u8]) -> String {
        let id = create_image(
            &self.http,
            &self.url,
            json!({"name": name, "disk_format": "raw", "container_format": "bare",
                      "tags": ["keep"], "os_distro": "debian"}),
        )
        .await;
        upload_data(&self.http, &self.url, &id, None, data.to_vec()).await;
        assert!(self.file(&id).exists());
        id
    }

    async fn delete(&self, id: &str) {
        delete_image(&self.http, &self.url, id).await;
    }

    async fn get(&self, id: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/v2/images/{id}", self.url))
            .send()
            .await
            .unwrap()
    }

    fn file(&self, id: &str) -> PathBuf {
        self.images.join(id)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delayed_delete_is_scrubbed_restored_and_retried_across_processes() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (_api, url) = mesh
        .api_with("api", &[("GLANCE__DEFAULT__DELAYED_DELETE", "true")])
        .await;
    let api = Api {
        http: reqwest::Client::new(),
        url,
        images: mesh.images.path().canonicalize().unwrap(),
    };
    let registry = Registry::connect(&mesh).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();

    // Deleting under delayed delete: pending_delete, gone for users, data kept.
    let a = api.image("a", &data).await;
    api.delete(&a).await;
    assert_eq!(api.get(&a).await.status(), 404);
    let listed: Value = api
        .http
        .get(format!("{}/v2/images", api.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!listed.to_string().contains(&a), "{listed}");
    assert_eq!(registry.status(&a).await, Some(ImageStatus::PendingDelete));
    assert!(api.file(&a).exists());

    // --restore (no scrubber running): active again with its data, properties and tags.
    let out = mesh
        .command("glance-scrubber")
        .args(["--restore", &a])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = api.get(&a).await.json().await.unwrap();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["os_distro"], "debian");
    assert_eq!(shown["tags"], json!(["keep"]));
    let got = api
        .http
        .get(format!("{}/v2/images/{a}/file", api.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);
    // Restoring what is not pending_delete fails, as in Glance.
    let out = mesh
        .command("glance-scrubber")
        .args(["--restore", &a])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A one-shot run (no --daemon) scrubs what is due, here, and exits.
    let g = api.image("g", &data).await;
    api.delete(&g).await;
    let out = mesh
        .command("glance-scrubber")
        .env("GLANCE__DEFAULT__SCRUB_TIME", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("scrubbed 1 of 1 due image(s)"), "{text}");
    assert_eq!(registry.status(&g).await, Some(ImageStatus::Deleted));
    assert!(!api.file(&g).exists());

    // Two scrubbers share the jobs; every pending image ends deleted with its data gone.
    let mut s1 = scrubber(&mesh, "scrubber-1", "1", "0");
    let mut s2 = scrubber(&mesh, "scrubber-2", "1", "0");
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = api.image(&format!("b{i}"), &data).await;
        api.delete(&id).await;
        ids.push(id);
    }
    for id in &ids {
        wait_until("scrubbed", Duration::from_secs(60), || async {
            registry.status(id).await == Some(ImageStatus::Deleted)
        })
        .await;
        assert!(!api.file(id).exists(), "data of {id} left behind");
    }
    assert!(api.file(&a).exists(), "the restored image lost its data");
    wait_until(
        "both scrubbers report an empty backlog",
        Duration::from_secs(30),
        || async {
            let status = mesh.control(&["scrubber", "status"]);
            status.matches("\nscrubber ").count() == 2
                && status.matches("backlog_images=0 ").count() == 2
        },
    )
    .await;

    // A store failure leaves the image pending_delete and is retried until it passes:
    // a directory where the file was cannot be removed as a file, even by root.
    let e = api.image("e", &data).await;
    api.delete(&e).await;
    std::fs::remove_file(api.file(&e)).unwrap();
    std::fs::create_dir(api.file(&e)).unwrap();
    wait_until(
        "a scrubber meets the store error",
        Duration::from_secs(30),
        || async {
            let logs = mesh.log("scrubber-1") + &mesh.log("scrubber-2");
            logs.lines()
                .any(|l| l.contains(&e) && l.contains("store delete of"))
        },
    )
    .await;
    assert_eq!(registry.status(&e).await, Some(ImageStatus::PendingDelete));
    std::fs::remove_dir(api.file(&e)).unwrap();
    wait_until(
        "the retried scrub succeeds",
        Duration::from_secs(60),
        || async { registry.status(&e).await == Some(ImageStatus::Deleted) },
    )
    .await;

    // A scrubber killed in the middle of a job loses nothing: the unacknowledged job goes
    // to the next scrubber. That one's own wakeups cannot find the image (its scrub_time
    // is an hour), so only the redelivered job can scrub it.
    s1.kill9();
    s2.kill9();
    let mut slow = scrubber(&mesh, "scrubber-slow", "0", "600000");
    let f = api.image("f", &data).await;
    api.delete(&f).await;
    wait_until(
        "the slow scrubber takes the job",
        Duration::from_secs(30),
        || async {
            mesh.log("scrubber-slow")
                .lines()
                .any(|l| l.contains(&f) && l.contains("scrubbing image"))
        },
    )
    .await;
    slow.kill9();
    assert_eq!(registry.status(&f).await, Some(ImageStatus::PendingDelete));
    assert!(api.file(&f).exists());
    // Once a scrubber has started on an image, a restore is refused (its data may be
    // partly gone), rather than bringing back an image without data.
    let out = mesh
        .command("glance-scrubber")
        .args(["--restore", &f])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a scrubber has started"), "{err}");
    let _s3 = scrubber(&mesh, "scrubber-3", "3600", "0");
    wait_until(
        "the redelivered job is scrubbed",
        Duration::from_secs(60),
        || async { registry.status(&f).await == Some(ImageStatus::Deleted) },
    )
    .await;
    assert!(!api.file(&f).exists());
}

/// The embedded mode needs no other process: its in-process scrubber takes the job.
#[tokio::test(flavor = "multi_thread")]
async fn the_all_in_one_scrubs_delayed_deletes_in_process() {
    let app = glance_tests::spawn_app_with(&[
        ("DEFAULT", "delayed_delete", "true"),
        ("DEFAULT", "wakeup_time", "1"),
    ])
    .await;
    let id = create_image(
        &app.client,
        &app.address,
        json!({"name": "embedded", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    upload_data(&app.client, &app.address, &id, None, vec![1u8; 10_000]).await;
    let file = app.data_dir.path().join("images").join(&id);
    assert!(file.exists());
    delete_image(&app.client, &app.address, &id).await;
    let res = app
        .client
        .get(format!("{}/v2/images/{id}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    wait_until(
        "the embedded scrubber removes the data",
        Duration::from_secs(30),
        || {
            let file = file.clone();
            async move { !file.exists() }
        },
    )
    .await;
}

/// Without delayed delete the API removes data at once; what the store refuses becomes a
/// scrub job that a scrubber retries until the data is gone, instead of an orphan file.
#[tokio::test(flavor = "multi_thread")]
async fn data_an_immediate_delete_could_not_remove_is_retried_by_a_scrubber() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (_api, url) = mesh.api_with("api", &[]).await;
    let api = Api {
        http: reqwest::Client::new(),
        url,
        images: mesh.images.path().canonicalize().unwrap(),
    };
    let registry = Registry::connect(&mesh).await;
    let _s = scrubber(&mesh, "scrubber", "0", "0");
    wait_until("the scrubber is up", Duration::from_secs(30), || async {
        mesh.log("scrubber").contains("scrubber consuming")
    })
    .await;

    let h = api.image("h", &[5u8; 1000]).await;
    // A directory in the file's place: the store cannot remove it as a file.
    std::fs::remove_file(api.file(&h)).unwrap();
    std::fs::create_dir(api.file(&h)).unwrap();
    api.delete(&h).await;
    assert_eq!(registry.status(&h).await, Some(ImageStatus::Deleted));
    wait_until(
        "the scrubber meets the store error",
        Duration::from_secs(30),
        || async {
            mesh.log("scrubber")
                .lines()
                .any(|l| l.contains(&h) && l.contains("store delete of"))
        },
    )
    .await;
    // The store recovers, with data still at the location: the retried job removes it.
    std::fs::remove_dir(api.file(&h)).unwrap();
    std::fs::write(api.file(&h), b"left behind").unwrap();
    wait_until(
        "the retried job removes the data",
        Duration::from_secs(30),
        || async { !api.file(&h).exists() },
    )
    .await;
}
