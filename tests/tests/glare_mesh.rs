//! The artifact API in the distributed mode: a `glance-glare` asks two `glance-registry`
//! processes for its records over RabbitMQ, on PostgreSQL (both started by
//! `scripts/test.sh`), keeps blobs in the shared image store, and answers
//! `glance-control glare status|reload|shutdown`.
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::time::Duration;

use common::glare::files_under;
use common::{free_port, mesh, wait_until};
use futures::{FutureExt, StreamExt};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_travel_over_the_bus_and_glance_control_reaches_glare() {
    let mesh = mesh().await;
    let _r1 = mesh.registry("registry-1");
    let _r2 = mesh.registry("registry-2");
    let port = free_port();
    let mut cmd = mesh.command("glance-glare");
    cmd.env("GLANCE__GLARE__BIND_PORT", port.to_string());
    let mut glare = mesh.spawn("glance-glare", "glare-1", cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_until("glance-glare to start", Duration::from_secs(30), || {
        reqwest::get(format!("{url}/versions")).map(|r| r.is_ok())
    })
    .await;

    // noauth: the project comes from X-Project-Id.
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String| {
        http.request(method, format!("{url}{path}"))
            .header("x-project-id", "mesh-project")
    };
    let res = call(reqwest::Method::POST, "/artifacts/images".into())
        .json(
            &json!({"name": "mesh", "version": "1.0", "disk_format": "raw",
                      "container_format": "bare"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = call(
        reqwest::Method::PUT,
        format!("/artifacts/images/{id}/image"),
    )
    .header("content-type", "application/octet-stream")
    .body(vec![7u8; 100_000])
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["image"]["size"], 100_000);
    let res = call(reqwest::Method::PATCH, format!("/artifacts/images/{id}"))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op": "replace", "path": "/status", "value": "active"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Whichever registry answers, the record is the same.
    for _ in 0..4 {
        let doc: Value = call(reqwest::Method::GET, "/artifacts/images?name=mesh".into())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["total_count"], 1);
        assert_eq!(doc["artifacts"][0]["status"], "active");
    }
    let body = call(
        reqwest::Method::GET,
        format!("/artifacts/images/{id}/image"),
    )
    .send()
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(body.len(), 100_000);
    assert_eq!(
        files_under(mesh.images.path()),
        1,
        "the blob is in the shared store"
    );
    let res = call(reqwest::Method::DELETE, format!("/artifacts/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        files_under(mesh.images.path()),
        0,
        "the blob's data is removed with the artifact"
    );

    // A window wider than the default 2 s (it is waited out in full): on a loaded 2-core
    // machine (the whole suite at once) an answer can take longer, and a missed one fails.
    let status = mesh.control(&["glare", "status", "--timeout", "5"]);
    assert!(status.contains("glare"), "{status}");
    let reload = mesh.control(&["glare", "reload", "--timeout", "5"]);
    assert!(reload.contains("reloaded"), "{reload}");
    mesh.control(&["glare", "shutdown", "--timeout", "5"]);
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        matches!(glare.child.try_wait(), Ok(Some(_)))
    });
    assert!(
        exited,
        "glance-glare stops on glance-control glare shutdown"
    );
}

/// A `glance-glare` on a free port with short upload leases; returns it with its URL.
async fn glare(mesh: &common::Mesh, tag: &str) -> (common::Proc, String) {
    glare_sweeping(mesh, tag, "600").await
}

/// The same, sweeping for abandoned blob uploads every `sweep_interval` seconds.
async fn glare_sweeping(
    mesh: &common::Mesh,
    tag: &str,
    sweep_interval: &str,
) -> (common::Proc, String) {
    glare_with(
        mesh,
        tag,
        &[
            ("GLANCE__GLANCE_UPLOAD__LEASE_SECONDS", "2"),
            ("GLANCE__GLANCE_UPLOAD__SWEEP_INTERVAL", sweep_interval),
        ],
    )
    .await
}

/// A `glance-glare` on a free port with the options `env` sets.
async fn glare_with(
    mesh: &common::Mesh,
    tag: &str,
    env: &[(&str, &str)],
) -> (common::Proc, String) {
    let port = free_port();
    let mut cmd = mesh.command("glance-glare");
    cmd.env("GLANCE__GLARE__BIND_PORT", port.to_string())
        .envs(env.iter().copied());
    let proc = mesh.spawn("glance-glare", tag, cmd);
    let url = format!("http://127.0.0.1:{port}");
    wait_until(&format!("{tag} to start"), Duration::from_secs(30), || {
        reqwest::get(format!("{url}/versions")).map(|r| r.is_ok())
    })
    .await;
    (proc, url)
}

/// Creates a heat_environments artifact of the mesh's project; returns its id.
async fn new_environment(http: &reqwest::Client, url: &str, name: &str) -> String {
    let created: Value = http
        .post(format!("{url}/artifacts/heat_environments"))
        .header("x-project-id", "mesh-project")
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

/// Uploads `body` to the blob at `url`, as the mesh's project.
async fn put_blob(http: &reqwest::Client, url: &str, body: reqwest::Body) -> reqwest::Response {
    http.put(url)
        .header("x-project-id", "mesh-project")
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The heat_environments artifact `id` as the glare at `url` shows it.
async fn show_environment(http: &reqwest::Client, url: &str, id: &str) -> Value {
    http.get(format!("{url}/artifacts/heat_environments/{id}"))
        .header("x-project-id", "mesh-project")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_whose_uploader_was_killed_is_not_stuck_saving_after_its_lease() {
    let mesh = mesh().await;
    let _r1 = mesh.registry("registry-1");
    let (mut first, url) = glare(&mesh, "glare-1").await;
    let http = reqwest::Client::new();
    let id = new_environment(&http, &url, "killed").await;
    let blob = format!("/artifacts/heat_environments/{id}/environment");
    // An upload that sends 64 KiB, then nothing: its process is killed meanwhile.
    let body = futures::stream::once(async { Ok::<_, std::io::Error>(vec![1u8; 65536]) })
        .chain(futures::stream::pending());
    let stalled = tokio::spawn(
        http.put(format!("{url}{blob}"))
            .header("x-project-id", "mesh-project")
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    let show = |url: String| {
        let (http, id) = (http.clone(), id.clone());
        async move { show_environment(&http, &url, &id).await }
    };
    wait_until("the blob to be saving", Duration::from_secs(10), || {
        let show = show(url.clone());
        async move { show.await["environment"]["status"] == "saving" }
    })
    .await;
    wait_until("partial data in the store", Duration::from_secs(10), || {
        futures::future::ready(files_under(mesh.images.path()) > 0)
    })
    .await;
    first.kill9();
    stalled.abort();

    let (_second, url) = glare(&mesh, "glare-2").await;
    assert_eq!(show(url.clone()).await["environment"]["status"], "saving");
    // Once the dead upload's lease has run out, a new upload takes the blob over and
    // removes what the dead one left.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let res = put_blob(&http, &format!("{url}{blob}"), vec![2u8; 1000].into()).await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(
        (&doc["environment"]["status"], &doc["environment"]["size"]),
        (&json!("active"), &json!(1000))
    );
    assert_eq!(
        files_under(mesh.images.path()),
        1,
        "only the new upload's data is left"
    );
}

/// A replacement upload whose process was killed, and which nobody retries: once its lease
/// has run out the sweep puts the blob it was replacing back and removes its partial data.
#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_puts_back_a_blob_whose_replacement_upload_died() {
    let mesh = mesh().await;
    let _r1 = mesh.registry("registry-1");
    let (mut first, url) = glare(&mesh, "glare-1").await;
    let http = reqwest::Client::new();
    let id = new_environment(&http, &url, "swept").await;
    let blob = format!("{url}/artifacts/heat_environments/{id}/environment");
    let put = |body: reqwest::Body| {
        http.put(&blob)
            .header("x-project-id", "mesh-project")
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    let res = put(vec![3u8; 1000].into()).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = futures::stream::once(async { Ok::<_, std::io::Error>(vec![1u8; 65536]) })
        .chain(futures::stream::pending());
    let stalled = tokio::spawn(put(reqwest::Body::wrap_stream(body)));
    let show = |url: String| {
        let (http, id) = (http.clone(), id.clone());
        async move { show_environment(&http, &url, &id).await }
    };
    wait_until(
        "the replacement to be saving",
        Duration::from_secs(10),
        || {
            let show = show(url.clone());
            async move { show.await["environment"]["status"] == "saving" }
        },
    )
    .await;
    wait_until(
        "the replacement's partial data",
        Duration::from_secs(10),
        || futures::future::ready(files_under(mesh.images.path()) > 1),
    )
    .await;
    first.kill9();
    stalled.abort();

    let (_second, url) = glare_sweeping(&mesh, "glare-2", "0.5").await;
    wait_until(
        "the sweep to put the blob back",
        Duration::from_secs(20),
        || {
            let show = show(url.clone());
            async move { show.await["environment"]["status"] == "active" }
        },
    )
    .await;
    let doc = show(url.clone()).await;
    assert_eq!(doc["environment"]["size"], 1000, "{doc}");
    let (status, body) = {
        let res = http
            .get(format!(
                "{url}/artifacts/heat_environments/{id}/environment"
            ))
            .header("x-project-id", "mesh-project")
            .send()
            .await
            .unwrap();
        (res.status(), res.bytes().await.unwrap())
    };
    assert_eq!(status, 200);
    assert_eq!(body.as_ref(), &[3u8; 1000][..]);
    assert_eq!(
        files_under(mesh.images.path()),
        1,
        "the dead upload's partial data is gone"
    );
}

/// The notifications about artifact `id` on a subscription of the events exchange, up to
/// and including the first `last` one.
async fn artifact_events(
    sub: &mut Box<dyn glance_bus::Subscription>,
    id: &str,
    last: &str,
) -> Vec<glance_proto::events::Notification> {
    let mut seen = Vec::new();
    loop {
        let delivery = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("no {last} within 30 s; saw {seen:?}"))
            .expect("subscription open");
        let n: glance_proto::events::Notification =
            serde_json::from_value(delivery.envelope.payload).unwrap();
        delivery.responder.ack().await.unwrap();
        if n.payload["id"] != id {
            continue;
        }
        let done = n.event_type == last;
        seen.push(n);
        if done {
            return seen;
        }
    }
}

/// Under delayed delete a glance-glare leaves a deleted artifact for the scrubbers; a
/// `glance-scrubber --daemon` of the mesh removes its blob and then its record. Every step
/// is one of Glare's notifications on the bus.
#[tokio::test(flavor = "multi_thread")]
async fn a_scrubber_daemon_removes_what_a_delayed_delete_left_and_glare_notifies() {
    use glance_bus::Transport;
    let mesh = mesh().await;
    let _r1 = mesh.registry("registry-1");
    let (_glare, url) = glare_with(
        &mesh,
        "glare-1",
        &[("GLANCE__DEFAULT__DELAYED_DELETE", "true")],
    )
    .await;
    let transport = glance_bus::Amqp::connect(&mesh.amqp, 64).await.unwrap();
    let mut sub = transport
        .subscribe_events(&["artifact.#".to_owned()], None)
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let id = new_environment(&http, &url, "scrubbed").await;
    let path = format!("{url}/artifacts/heat_environments/{id}");
    let res = put_blob(
        &http,
        &format!("{path}/environment"),
        vec![9u8; 4096].into(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = http
        .patch(&path)
        .header("x-project-id", "mesh-project")
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op": "replace", "path": "/status", "value": "active"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .delete(&path)
        .header("x-project-id", "mesh-project")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let shown = show_environment(&http, &url, &id).await;
    assert_eq!(shown["status"], "deleted", "{shown}");
    assert_eq!(files_under(mesh.images.path()), 1);

    let events = artifact_events(&mut sub, &id, "artifact.artifact:delete").await;
    let types: Vec<&str> = events.iter().map(|n| n.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "artifact.artifact:create",
            "artifact.artifact:upload",
            "artifact.artifact:update",
            "artifact.artifact:activate",
            "artifact.artifact:delete"
        ]
    );
    let last = &events.last().unwrap().payload;
    assert_eq!(
        (
            &last["type"],
            &last["name"],
            &last["status"],
            &last["owner"]
        ),
        (
            &json!("heat_environments"),
            &json!("scrubbed"),
            &json!("deleted"),
            &json!("mesh-project")
        )
    );
    assert!(events[0].publisher_id.starts_with("artifact."));

    let mut cmd = mesh.command("glance-scrubber");
    cmd.arg("--daemon")
        .env("GLANCE__DEFAULT__SCRUB_TIME", "0")
        .env("GLANCE__DEFAULT__WAKEUP_TIME", "1");
    let _scrubber = mesh.spawn("glance-scrubber", "scrubber-1", cmd);
    wait_until(
        "the scrubber to remove the artifact and its blob",
        Duration::from_secs(60),
        || {
            let (http, path) = (http.clone(), path.clone());
            let images = mesh.images.path().to_owned();
            async move {
                let res = http
                    .get(&path)
                    .header("x-project-id", "mesh-project")
                    .send()
                    .await
                    .unwrap();
                res.status() == 404 && files_under(&images) == 0
            }
        },
    )
    .await;
}
