//! Uploads that survive their uploader's death: an image being written holds a lease its
//! upload renews while bytes flow; when the lease runs out (the process was killed, the
//! client stalled), a sweep removes the partial data and puts the image back to `queued`,
//! and a retry succeeds. Leases are 2 s and sweeps every half second here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use glance_tests::files_in;
use serde_json::{json, Value};

const LEASE: &[(&str, &str)] = &[
    ("GLANCE__GLANCE_UPLOAD__LEASE_SECONDS", "2"),
    ("GLANCE__GLANCE_UPLOAD__SWEEP_INTERVAL", "0.5"),
];

/// Far longer than a lease and a sweep; only reached when recovery is broken.
const RECOVERY: Duration = Duration::from_secs(30);

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// A PUT to `url` that sends `first` and then waits, its connection open, until the
/// returned sender is dropped (then the body ends). The request runs in a task.
fn stalled_put(
    http: &reqwest::Client,
    url: String,
    first: Vec<u8>,
) -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    tokio::task::JoinHandle<Option<reqwest::StatusCode>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let req = http
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body));
    let sender = tx.clone();
    tokio::spawn(async move {
        let _ = sender.send(Ok(Bytes::from(first))).await;
    });
    let handle = tokio::spawn(async move { req.send().await.ok().map(|r| r.status()) });
    (tx, handle)
}

/// Regular files directly in `dir` (none if it does not exist).
/// Bytes in the files of `dir`.
fn bytes_in(dir: &Path) -> u64 {
    files_in(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

async fn status(http: &reqwest::Client, api: &str, id: &str) -> String {
    let image: Value = http
        .get(format!("{api}/v2/images/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    image["status"].as_str().unwrap_or_default().to_owned()
}

async fn wait_for_status(http: &reqwest::Client, api: &str, id: &str, want: &str) {
    common::wait_until(&format!("image {id} to be {want}"), RECOVERY, || {
        let (http, api, id) = (http.clone(), api.to_owned(), id.to_owned());
        async move { status(&http, &api, &id).await == want }
    })
    .await;
}

/// Waits until the stalled upload has written at least `bytes` into `incoming`.
async fn wait_for_partial(incoming: &Path, bytes: u64) {
    common::wait_until("partial data in the incoming area", RECOVERY, || {
        let n = bytes_in(incoming);
        async move { n >= bytes }
    })
    .await;
}

/// Uploads `data` again to `id` through `api` and checks it became active with its md5.
async fn retry_upload(http: &reqwest::Client, api: &str, id: &str, data: Vec<u8>) {
    let (md5, _) = glance_tests::digests(&data);
    let res = http
        .put(format!("{api}/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let image: Value = http
        .get(format!("{api}/v2/images/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], md5.as_str());
}

fn raw_image() -> Value {
    json!({"name": "lease", "disk_format": "raw", "container_format": "bare"})
}

/// A `glance-all-in-one` with short leases on `data_dir` (kept across restarts).
async fn all_in_one(data_dir: &Path, log: &Path) -> (std::process::Child, String) {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(common::bin("glance-all-in-one"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--bind", &addr, "--auth-strategy", "noauth"])
        .envs(LEASE.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn glance-all-in-one");
    let url = format!("http://{addr}");
    common::wait_until(
        &format!("glance-all-in-one on {addr}"),
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move { reqwest::get(format!("{url}/versions")).await.is_ok() }
        },
    )
    .await;
    (child, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_killed_with_its_all_in_one_leaves_a_queued_image_and_no_partial_data() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("log");
    let http = reqwest::Client::new();
    let (mut child, api) = all_in_one(&data_dir, &log).await;
    let id = common::create_image(&http, &api, raw_image()).await;
    let staged = common::create_image(&http, &api, raw_image()).await;

    // One upload and one stage, each 3 MiB in and stalled; then kill -9 mid-stream.
    let (_upload, _) = stalled_put(&http, format!("{api}/v2/images/{id}/file"), data(3 << 20));
    let (_stage, _) = stalled_put(
        &http,
        format!("{api}/v2/images/{staged}/stage"),
        data(3 << 20),
    );
    let incoming = data_dir.join("images/.incoming");
    let staging_incoming = data_dir.join("staging/.incoming");
    wait_for_partial(&incoming, 1 << 20).await;
    wait_for_partial(&staging_incoming, 1 << 20).await;
    assert_eq!(status(&http, &api, &id).await, "saving");
    assert_eq!(status(&http, &api, &staged).await, "uploading");
    let _ = child.kill();
    let _ = child.wait();

    // Restarted, the service notices the leases ran out.
    let (mut child, api) = all_in_one(&data_dir, &log).await;
    wait_for_status(&http, &api, &id, "queued").await;
    wait_for_status(&http, &api, &staged, "queued").await;
    assert_eq!(
        files_in(&incoming),
        Vec::<PathBuf>::new(),
        "partial upload left"
    );
    assert_eq!(
        files_in(&staging_incoming),
        Vec::<PathBuf>::new(),
        "partial stage left"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("upload lease ran out"),
        "no log line of the recovery:\n{logged}"
    );

    retry_upload(&http, &api, &id, data(2 << 20)).await;
    let res = http
        .put(format!("{api}/v2/images/{staged}/stage"))
        .header("content-type", "application/octet-stream")
        .body(data(1 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(status(&http, &api, &staged).await, "uploading");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stalls_past_the_lease_loses_the_image_to_a_retry() {
    let app = glance_tests::spawn_app_with(&[
        ("glance_upload", "lease_seconds", "2"),
        ("glance_upload", "sweep_interval", "0.5"),
    ])
    .await;
    let http = app.client.clone();
    let api = app.address.clone();
    let id = common::create_image(&http, &api, raw_image()).await;
    let (stalled, response) =
        stalled_put(&http, format!("{api}/v2/images/{id}/file"), data(3 << 20));
    let incoming = app.data_dir.path().join("images/.incoming");
    wait_for_partial(&incoming, 1 << 20).await;

    // Nothing more arrives: the lease is not renewed, the sweep takes the image back.
    wait_for_status(&http, &api, &id, "queued").await;
    assert_eq!(files_in(&incoming), Vec::<PathBuf>::new());
    retry_upload(&http, &api, &id, data(1 << 20)).await;

    // The stalled client finally finishes: it is refused and changes nothing.
    let _ = stalled.send(Ok(Bytes::from(data(1 << 20)))).await;
    drop(stalled);
    let answered = response.await.unwrap();
    assert!(
        answered.is_none_or(|s| !s.is_success()),
        "a stalled upload that lost its lease succeeded: {answered:?}"
    );
    assert_eq!(status(&http, &api, &id).await, "active");
    let (md5, _) = glance_tests::digests(&data(1 << 20));
    assert_eq!(app.image(&id).await["checksum"], md5.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_whose_api_node_dies_is_recovered_by_another_node() {
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry-1");
    let (mut a1, api1) = mesh.api_with("api-1", LEASE).await;
    let (_a2, api2) = mesh.api_with("api-2", LEASE).await;
    let http = reqwest::Client::new();
    let id = common::create_image(&http, &api1, raw_image()).await;
    let (_stalled, _) = stalled_put(&http, format!("{api1}/v2/images/{id}/file"), data(3 << 20));
    let incoming = mesh.images.path().join(".incoming");
    wait_for_partial(&incoming, 1 << 20).await;
    assert_eq!(status(&http, &api2, &id).await, "saving");
    a1.kill9();

    wait_for_status(&http, &api2, &id, "queued").await;
    assert_eq!(files_in(&incoming), Vec::<PathBuf>::new());
    assert!(
        mesh.log("api-2").contains("upload lease ran out"),
        "api-2 did not log the recovery:\n{}",
        mesh.log("api-2")
    );
    retry_upload(&http, &api2, &id, data(2 << 20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_no_upload_owns_are_swept_and_files_of_live_uploads_kept() {
    let app = glance_tests::spawn_app_with(&[
        ("glance_upload", "lease_seconds", "2"),
        ("glance_upload", "sweep_interval", "0.5"),
    ])
    .await;
    let http = app.client.clone();
    let api = app.address.clone();
    // Left by a process that died: partial data of an image that is active by now, and of
    // an image that does not exist; staged data of an active image.
    let active = app.active_image("done", data(1000)).await;
    let incoming = app.data_dir.path().join("images/.incoming");
    let staging = app.data_dir.path().join("staging");
    let orphans = [
        incoming.join(format!("{active}.deadbeef")),
        incoming.join(format!("{}.deadbeef", uuid::Uuid::new_v4())),
        staging.join(&active),
    ];
    for file in &orphans {
        std::fs::write(file, b"left over").unwrap();
    }
    // A live upload, whose bytes keep coming, keeps its file.
    let id = common::create_image(&http, &api, raw_image()).await;
    let (live, _) = stalled_put(&http, format!("{api}/v2/images/{id}/file"), data(3 << 20));
    let trickle = tokio::spawn(async move {
        while live.send(Ok(Bytes::from(data(4096)))).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    wait_for_partial(&incoming, 1 << 20).await;

    common::wait_until("the orphans to be swept", RECOVERY, || {
        let left = orphans.iter().any(|f| f.exists());
        async move { !left }
    })
    .await;
    // Still being written (its lease renewed by the bytes that keep coming).
    assert_eq!(status(&http, &api, &id).await, "saving");
    assert!(
        files_in(&incoming).iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&id)),
        "the live upload's file was swept"
    );
    trickle.abort();
}
