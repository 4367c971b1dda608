//! A full image store is an ordinary error: Glance's 413 "Image storage media is full", the
//! partial data removed before the image goes back to `queued`, and a retry once there is
//! room succeeds. The store lives on a real 8 MiB tmpfs mounted for the test, so it needs
//! the right to mount: without it the test fails, saying so (`scripts/test.sh` leaves this
//! binary out, and says it did, when it does not run as root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use glance_tests::files_in;
use serde_json::{json, Value};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn small_disk() -> SmallDisk {
    SmallDisk::mount("8m").unwrap_or_else(|why| {
        panic!("this test mounts an 8 MiB tmpfs and cannot here (run it as root): {why}")
    })
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 17 % 253) as u8).collect()
}

/// PUTs `body` to `path` of image `id`; returns the status and the JSON error message.
async fn put(app: &glance_tests::TestApp, id: &str, path: &str, body: Vec<u8>) -> (u16, String) {
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/{path}")))
        .header("content-type", "application/octet-stream")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, message)
}

const FULL: &str =
    "Image storage media is full: There is not enough disk space on the image storage media.";

#[tokio::test(flavor = "multi_thread")]
async fn uploading_more_than_the_store_holds_is_413_and_leaves_nothing_behind() {
    let disk = small_disk();
    let store = disk.path().join("images");
    let staging = disk.path().join("staging");
    let app = glance_tests::spawn_app_with(&[
        (
            "glance_store",
            "filesystem_store_datadir",
            store.to_str().unwrap(),
        ),
        (
            "os_glance_staging_store",
            "filesystem_store_datadir",
            staging.to_str().unwrap(),
        ),
    ])
    .await;
    let image = json!({"name": "big", "disk_format": "raw", "container_format": "bare"});
    let id = app.create_image(image.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // PUT /file of 12 MiB into 8 MiB.
    let (status, message) = put(&app, &id, "file", data(12 << 20)).await;
    assert_eq!((status, message.as_str()), (413, FULL));
    assert_eq!(app.image(&id).await["status"], "queued");
    assert_eq!(files_in(&store.join(".incoming")), Vec::<PathBuf>::new());
    assert_eq!(files_in(&store), Vec::<PathBuf>::new());

    // PUT /stage likewise.
    let staged = app.create_image(image).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, message) = put(&app, &staged, "stage", data(12 << 20)).await;
    assert_eq!((status, message.as_str()), (413, FULL));
    assert_eq!(app.image(&staged).await["status"], "queued");
    assert_eq!(files_in(&staging.join(".incoming")), Vec::<PathBuf>::new());
    assert_eq!(files_in(&staging), Vec::<PathBuf>::new());

    // What fits goes in, on the first try after the failures.
    let (status, message) = put(&app, &id, "file", data(3 << 20)).await;
    assert_eq!(status, 204, "{message}");
    let shown = app.image(&id).await;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["size"], 3 << 20);
    let (status, message) = put(&app, &staged, "stage", data(3 << 20)).await;
    assert_eq!(status, 204, "{message}");
}

/// Prints the service's log if the test fails.
struct ShowLogOnPanic(PathBuf);

impl Drop for ShowLogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- log ---\n{}",
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

/// Fills the file system holding `dir` with one file, `dir/filler`, until it is full.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    path
}

/// The database on a full file system: an upload cannot start (503, saying why, the image
/// untouched), an upload that was running cannot finish (503), and once there is room again
/// the lease of the one left `saving` runs out, it returns to `queued` and a retry succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_database_volume_is_503_and_never_leaves_an_image_stuck() {
    let disk = small_disk();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("images");
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let _show_log = ShowLogOnPanic(dir.path().join("log"));
    let mut child = Command::new(common::bin("glance-all-in-one"))
        .arg("--data-dir")
        .arg(disk.path())
        .args(["--bind", &addr, "--auth-strategy", "noauth"])
        .env("GLANCE__GLANCE_STORE__FILESYSTEM_STORE_DATADIR", &store)
        .env("GLANCE__GLANCE_UPLOAD__LEASE_SECONDS", "2")
        .env("GLANCE__GLANCE_UPLOAD__SWEEP_INTERVAL", "0.5")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let api = format!("http://{addr}");
    common::wait_until(
        "glance-all-in-one",
        std::time::Duration::from_secs(30),
        || {
            let api = api.clone();
            async move { reqwest::get(format!("{api}/versions")).await.is_ok() }
        },
    )
    .await;
    let http = reqwest::Client::new();
    let image = json!({"name": "db", "disk_format": "raw", "container_format": "bare"});
    let first = common::create_image(&http, &api, image.clone()).await;
    let second = common::create_image(&http, &api, image).await;

    // An upload that is running when the database's volume fills up.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let running = http
        .put(format!("{api}/v2/images/{second}/file"))
        .header("content-type", "application/octet-stream")
        .header("accept", "application/json")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let running = tokio::spawn(running);
    tx.send(Ok(bytes::Bytes::from(data(1 << 20))))
        .await
        .unwrap();
    common::wait_until(
        "the upload to start",
        std::time::Duration::from_secs(30),
        || {
            let (http, api, id) = (http.clone(), api.clone(), second.clone());
            async move {
                let shown: Value = http
                    .get(format!("{api}/v2/images/{id}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                shown["status"] == "saving"
            }
        },
    )
    .await;

    let filler = fill(disk.path());
    let res = http
        .put(format!("{api}/v2/images/{first}/file"))
        .header("content-type", "application/octet-stream")
        .header("accept", "application/json")
        .body(data(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let message: Value = res.json().await.unwrap();
    assert!(
        message["message"]
            .as_str()
            .unwrap()
            .contains("database storage is full"),
        "{message}"
    );
    let shown: Value = http
        .get(format!("{api}/v2/images/{first}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "queued");

    // The running upload ends: it cannot be recorded.
    drop(tx);
    let finished = running.await.unwrap().unwrap();
    assert_eq!(finished.status(), 503);
    assert_eq!(
        files_in(&store),
        Vec::<PathBuf>::new(),
        "unrecorded data kept"
    );

    // Room again: the image left saving comes back, and both uploads succeed.
    std::fs::remove_file(filler).unwrap();
    common::wait_until(
        "the image to be queued",
        std::time::Duration::from_secs(30),
        || {
            let (http, api, id) = (http.clone(), api.clone(), second.clone());
            async move {
                let shown: Value = http
                    .get(format!("{api}/v2/images/{id}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                shown["status"] == "queued"
            }
        },
    )
    .await;
    assert_eq!(files_in(&store.join(".incoming")), Vec::<PathBuf>::new());
    for id in [&first, &second] {
        common::upload_data(&http, &api, id, None, data(1000)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
