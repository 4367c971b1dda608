//! Import driven by python-glanceclient's `image-create-via-import`, and import workers in
//! two `glance-api` processes over RabbitMQ, one of them killed mid-import.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::import::*;
use glance_tests::spawn_app_with;
use serde_json::json;

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
    // Its status shows the import in flight and each of its workers.
    let status = mesh.control(&["api", "status", "--instance", &instance]);
    let cols: Vec<&str> = status
        .lines()
        .find(|l| l.contains(&instance))
        .unwrap_or_else(|| panic!("no status line for {instance}:\n{status}"))
        .split_whitespace()
        .collect();
    assert!(cols[6].parse::<u64>().unwrap() >= 1, "in flight: {status}");
    for worker in ["import", "import-recovery", "upload-sweep"] {
        assert!(
            cols.contains(&format!("worker.{worker}=running").as_str()),
            "{worker}: {status}"
        );
    }
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
