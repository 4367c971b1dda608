//! Every verb of `glance-cache-manage` against a running service (the all-in-one on port 0).
//! The binary must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use glance_tests::{spawn_app, spawn_app_with, TestApp};
use serde_json::json;

async fn manage(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(common::bin("glance-cache-manage"));
    cmd.arg("--url")
        .arg(&app.address)
        .args(args)
        .env_remove("OS_AUTH_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().expect("spawn glance-cache-manage");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn wait_cached(app: &TestApp, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = app.cache_state().await;
        if state["cached_images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["image_id"] == id)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never cached: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_verb_against_a_running_service() {
    let app = spawn_app().await;
    let out = manage(&app, &["list-cached"], "").await;
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("No cached images."),
        "{}",
        stdout(&out)
    );
    let out = manage(&app, &["list-queued"], "").await;
    assert!(stdout(&out).contains("No queued images."));

    // queue-image asks first: "no" (or nothing) does nothing.
    let id = app.active_image("m", vec![5u8; 4096]).await;
    let out = manage(&app, &["queue-image", &id], "n\n").await;
    assert!(out.status.success());
    assert!(stdout(&out).contains(&format!("Queue image {id} for caching?")));
    assert_eq!(app.cache_state().await["cached_images"], json!([]));
    // "yes": the embedded worker caches it.
    let out = manage(&app, &["queue-image", &id], "y\n").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_cached(&app, &id).await;

    let out = manage(&app, &["list-cached"], "").await;
    let text = stdout(&out);
    assert!(text.contains("Found 1 cached images"), "{text}");
    assert!(text.contains(&id) && text.contains("4096"), "{text}");
    assert!(text.contains("Last Accessed (UTC)"), "{text}");

    // Queue markers (written by hand, as a prefetcher cron would find them).
    let queue_dir = app.data_dir.path().join("cache/queue");
    let (q1, q2) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    for q in [&q1, &q2] {
        std::fs::write(queue_dir.join(q), b"").unwrap();
    }
    let out = manage(&app, &["list-queued"], "").await;
    let text = stdout(&out);
    assert!(text.contains(&q1) && text.contains(&q2), "{text}");
    let out = manage(&app, &["-f", "delete-queued-image", &q1], "").await;
    assert!(out.status.success());
    assert!(!queue_dir.join(&q1).exists());
    let out = manage(&app, &["delete-all-queued-images"], "yes\n").await;
    assert!(
        stdout(&out).contains("Deleted 1 images."),
        "{}",
        stdout(&out)
    );
    assert!(!queue_dir.join(&q2).exists());

    let out = manage(&app, &["-f", "delete-cached-image", &id], "").await;
    assert!(out.status.success());
    assert_eq!(app.cache_state().await["cached_images"], json!([]));
    let id2 = app.active_image("m", vec![5u8; 100]).await;
    for i in [&id, &id2] {
        app.client
            .get(app.url(&format!("/v2/images/{i}/file")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    wait_cached(&app, &id).await;
    wait_cached(&app, &id2).await;
    let out = manage(&app, &["delete-all-cached-images"], "\n").await;
    assert!(out.status.success());
    assert_eq!(
        app.cache_state().await["cached_images"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = manage(&app, &["-v", "-f", "delete-all-cached-images"], "").await;
    let text = stdout(&out);
    assert!(
        text.contains("Deleted 2 images.") && text.contains("Completed in"),
        "{text}"
    );

    // A malformed id is refused before any request.
    let out = manage(&app, &["queue-image", "not-a-uuid"], "").await;
    assert!(!out.status.success());
    let out = manage(&app, &["help", "queue-image"], "").await;
    assert!(stdout(&out).contains("--all-nodes"));
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_exit_non_zero_with_a_clear_message() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let out = manage(&app, &["list-cached"], "").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Not authorized to make this request."),
        "{err}"
    );

    let mut cmd = Command::new(common::bin("glance-cache-manage"));
    let out = cmd
        .args(["--url", "http://127.0.0.1:9", "list-cached"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Failed to list cached images"), "{err}");
}

/// python-glanceclient's `cache-*` commands against `/v2/cache`, when the test venv has it
/// (`scripts/test.sh` installs it under `target/venv`).
#[tokio::test(flavor = "multi_thread")]
async fn glanceclient_cache_commands_work() {
    let glance =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/glance");
    if !glance.exists() {
        eprintln!("{} missing: glanceclient check not run", glance.display());
        return;
    }
    let app = spawn_app().await;
    let id = app.active_image("m", vec![5u8; 70_000]).await;
    let run = |args: Vec<String>| {
        let glance = glance.clone();
        let url = app.address.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(glance)
                    .args(&args)
                    .env("OS_IMAGE_URL", url)
                    .env("OS_AUTH_TOKEN", "unused")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = run(vec!["cache-queue".into(), id.clone()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_cached(&app, &id).await;
    let out = run(vec!["cache-list".into()]).await;
    let text = stdout(&out);
    assert!(
        text.contains(&id) && text.contains("cached") && text.contains("70000"),
        "{text}"
    );
    let out = run(vec!["cache-delete".into(), id.clone()]).await;
    assert!(out.status.success());
    assert_eq!(app.cache_state().await["cached_images"], json!([]));
    let out = run(vec!["cache-queue".into(), id.clone()]).await;
    assert!(out.status.success());
    wait_cached(&app, &id).await;
    let out = run(vec![
        "cache-clear".into(),
        "--target".into(),
        "cache".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.cache_state().await["cached_images"], json!([]));
    let out = run(vec!["cache-clear".into()]).await;
    assert!(out.status.success());
}
