//! Glance notifications on the bus: a full image lifecycle through a real `glance-api` and
//! `glance-registry` over RabbitMQ, watched by a subscriber on the events exchange (and by
//! `glance-events`, the operators' tail).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_image, delete_image, mesh, upload_data};
use glance_bus::{Amqp, Transport};
use glance_proto::events::Notification;
use serde_json::{json, Value};

/// The events about image `id` up to and including the first `last` one, with their
/// request ids.
async fn events_until(
    sub: &mut Box<dyn glance_bus::Subscription>,
    id: &str,
    last: &str,
) -> Vec<(Notification, Option<String>)> {
    notifications_until(
        sub,
        last,
        Duration::from_secs(30),
        |n| {
            let about = n.payload.get("id").or_else(|| n.payload.get("image_id"));
            about.and_then(Value::as_str) == Some(id)
        },
        |n| n.event_type == last,
    )
    .await
}

/// The notifications `keep` selects (other tests share the broker), acknowledged, up to
/// and including the first one that is the `end`, with their request ids; fails the test
/// if that takes longer than `within`.
async fn notifications_until(
    sub: &mut Box<dyn glance_bus::Subscription>,
    what: &str,
    within: Duration,
    keep: impl Fn(&Notification) -> bool,
    end: impl Fn(&Notification) -> bool,
) -> Vec<(Notification, Option<String>)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let delivery = tokio::time::timeout(left, sub.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {within:?}; saw {seen:?}"))
            .expect("subscription open");
        let request_id = delivery.envelope.headers.request_id.clone();
        let n: Notification = serde_json::from_value(delivery.envelope.payload).unwrap();
        delivery.responder.ack().await.unwrap();
        if !keep(&n) {
            continue;
        }
        let done = end(&n);
        seen.push((n, request_id));
        if done {
            return seen;
        }
    }
}

/// A subscriber of its own on the event exchange, for `patterns`.
async fn watch(mesh: &common::Mesh, patterns: &[&str]) -> Box<dyn glance_bus::Subscription> {
    let transport: Arc<dyn Transport> = Arc::new(Amqp::connect(&mesh.amqp, 64).await.unwrap());
    let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
    transport.subscribe_events(&patterns, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_lifecycle_publishes_glances_notifications_in_order() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (_api, api) = mesh.api("api").await;
    let mut sub = watch(&mesh, &["image.#"]).await;
    // The operators' tail, on its own private queue.
    let mut tail = std::process::Command::new(common::bin("glance-events"));
    tail.args([
        "--transport-url",
        &mesh.amqp,
        "--json",
        "--filter",
        "image.*",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let tail = tail.spawn().unwrap();
    let mut tail = Tail::new(tail);
    tail.wait_for_stderr("listening for", Duration::from_secs(20));
    let http = reqwest::Client::new();

    let created = http
        .post(format!("{api}/v2/images"))
        .json(
            &json!({"name": "events", "disk_format": "raw", "container_format": "bare",
                      "tags": ["t1"], "hw_disk_bus": "scsi"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let create_request = created.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let image: Value = created.json().await.unwrap();
    let id = image["id"].as_str().unwrap().to_owned();
    let data = vec![7u8; 4096];
    upload_data(&http, &api, &id, None, data).await;
    let res = http
        .patch(format!("{api}/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .json(&json!([{"op": "replace", "path": "/name", "value": "renamed"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = http
        .get(format!("{api}/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 4096);
    // `image.send` is published when the body is gone, so wait for it before deleting.
    let mut events = events_until(&mut sub, &id, "image.send").await;
    delete_image(&http, &api, &id).await;
    events.extend(events_until(&mut sub, &id, "image.delete").await);
    let types: Vec<&str> = events.iter().map(|(n, _)| n.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "image.create",
            "image.update",   // queued -> saving
            "image.prepare",  // before the data
            "image.upload",   // after it
            "image.activate", // saving -> active
            "image.update",   // the active record
            "image.update",   // the PATCH
            "image.send",     // the download
            "image.delete",
        ]
    );

    let (create, create_rid) = &events[0];
    assert_eq!(create.priority, "INFO");
    assert!(
        create.publisher_id.starts_with("image."),
        "{}",
        create.publisher_id
    );
    assert_eq!(create_rid.as_deref(), Some(create_request.as_str()));
    let p = &create.payload;
    assert_eq!(p["name"], "events");
    assert_eq!(p["status"], "queued");
    assert_eq!(p["tags"], json!(["t1"]));
    assert_eq!(p["properties"]["hw_disk_bus"], "scsi");
    assert_eq!(p["is_public"], false);
    assert_eq!(p["deleted"], false);
    assert_eq!(p["deleted_at"], Value::Null);
    assert!(
        p.get("locations").is_none(),
        "locations may hold credentials"
    );
    for key in [
        "created_at",
        "updated_at",
        "min_disk",
        "min_ram",
        "protected",
        "checksum",
        "owner",
        "disk_format",
        "container_format",
        "size",
        "virtual_size",
        "visibility",
        "os_hidden",
        "os_hash_algo",
        "os_hash_value",
    ] {
        assert!(p.get(key).is_some(), "{key} missing from {p}");
    }

    let activate = &events[4].0.payload;
    assert_eq!(activate["status"], "active");
    assert_eq!(activate["size"], 4096);
    assert_eq!(activate["checksum"], image_md5(&[7u8; 4096]));
    assert_eq!(events[6].0.payload["name"], "renamed");
    let sent = &events[7].0.payload;
    assert_eq!(sent["image_id"], id.as_str());
    assert_eq!(sent["bytes_sent"], 4096);
    assert!(sent.get("receiver_tenant_id").is_some(), "{sent}");
    let delete = &events[8].0.payload;
    assert_eq!(delete["deleted"], true);
    assert!(
        delete["deleted_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')),
        "{delete}"
    );
    assert_eq!(delete["status"], "deleted");

    // The tail printed the same lifecycle as JSON lines (image.* is one word deep, so all
    // nine events match).
    let lines = tail.stdout_lines_until(
        |l| l.contains("image.delete") && l.contains(&id),
        Duration::from_secs(20),
    );
    let tailed: Vec<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["payload"]["id"] == id.as_str() || v["payload"]["image_id"] == id.as_str())
        .map(|v| v["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tailed, types);
}

fn image_md5(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// A child process whose output lines are read on threads, so the test can wait for one.
struct Tail {
    child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Tail {
    fn new(mut child: std::process::Child) -> Self {
        use std::io::BufRead;
        fn pump(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        }
        let stdout = pump(child.stdout.take().unwrap());
        let stderr = pump(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn wait_for_stderr(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no '{needle}' from glance-events"),
            }
        }
    }

    fn stdout_lines_until(&mut self, done: impl Fn(&str) -> bool, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let last = done(&line);
                    lines.push(line);
                    if last {
                        return lines;
                    }
                }
                Err(_) => panic!("glance-events printed only {lines:?}"),
            }
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sharing_an_image_publishes_member_notifications() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (_api, api) = mesh.api("api").await;
    let mut sub = watch(&mesh, &["image.member.*", "image.delete"]).await;
    let http = reqwest::Client::new();
    let id = create_image(
        &http,
        &api,
        json!({"name": "shared", "visibility": "shared"}),
    )
    .await;
    let res = http
        .post(format!("{api}/v2/images/{id}/members"))
        .json(&json!({"member": "project-b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = http
        .delete(format!("{api}/v2/images/{id}/members/project-b"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    delete_image(&http, &api, &id).await;

    let events = events_until(&mut sub, &id, "image.delete").await;
    let types: Vec<&str> = events.iter().map(|(n, _)| n.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["image.member.create", "image.member.delete", "image.delete"]
    );
    let created = &events[0].0.payload;
    assert_eq!(created["member_id"], "project-b");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["deleted"], false);
    let removed = &events[1].0.payload;
    assert_eq!(removed["member_id"], "project-b");
    assert_eq!(removed["deleted"], true);
    assert!(removed["deleted_at"].is_string());
}

/// An import's task notifications (Glance's `task.create`, `task.processing`,
/// `task.success`), published by the API that accepted it and the worker that ran it, all
/// under the import request's id.
#[tokio::test(flavor = "multi_thread")]
async fn a_glance_direct_import_publishes_task_notifications() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (_api, api) = mesh.api("api").await;
    let mut sub = watch(&mesh, &["task.#"]).await;
    let http = reqwest::Client::new();
    let id = create_image(
        &http,
        &api,
        json!({"name": "task-events", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let res = http
        .put(format!("{api}/v2/images/{id}/stage"))
        .header("content-type", "application/octet-stream")
        .body(vec![5u8; 8192])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let res = http
        .post(format!("{api}/v2/images/{id}/import"))
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let import_request = res.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    // The task events about this image, up to the task's end.
    let events = notifications_until(
        &mut sub,
        "end of the import",
        Duration::from_secs(60),
        |n| n.payload["image_id"] == id.as_str(),
        |n| matches!(n.event_type.as_str(), "task.success" | "task.failure"),
    )
    .await;
    let types: Vec<&str> = events.iter().map(|(n, _)| n.event_type.as_str()).collect();
    assert_eq!(types, ["task.create", "task.processing", "task.success"]);

    let task_id = events[0].0.payload["id"].as_str().unwrap().to_owned();
    let statuses: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.payload["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "processing", "success"]);
    for (n, request_id) in &events {
        let p = &n.payload;
        assert_eq!(n.priority, "INFO");
        assert_eq!(p["id"], task_id.as_str(), "one task: {p}");
        assert_eq!(p["type"], "api_image_import");
        assert_eq!(p["deleted"], false);
        assert!(p.get("input").is_none(), "the input may hold credentials");
        for key in ["owner", "result", "message", "expires_at", "deleted_at"] {
            assert!(p.get(key).is_some(), "{key} missing from {p}");
        }
        assert!(
            p["created_at"].as_str().is_some_and(|s| s.ends_with('Z')),
            "{p}"
        );
        assert_eq!(request_id.as_deref(), Some(import_request.as_str()));
    }
    // A finished task expires: its expiry is in the success notification.
    assert!(events[2].0.payload["expires_at"].is_string(), "{events:?}");

    // The Tasks API knows the same task, finished.
    let task: Value = http
        .get(format!("{api}/v2/tasks/{task_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["status"], "success", "{task}");
}

/// `[DEFAULT] disabled_notifications` is re-read by `glance-control api reload`: a type
/// disabled at start is sent once the reload enables it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_which_notifications_are_sent() {
    let mesh = mesh().await;
    let conf = mesh.logs.path().join("glance-api.conf");
    std::fs::write(&conf, "[DEFAULT]\ndisabled_notifications = image.create\n").unwrap();
    let _registry = mesh.registry("registry");
    let (_api, api) = mesh.api("api").await;
    let mut sub = watch(&mesh, &["image.#"]).await;
    let http = reqwest::Client::new();
    let body = json!({"disk_format": "raw", "container_format": "bare"});

    let before = create_image(&http, &api, body.clone()).await;
    std::fs::write(&conf, "[DEFAULT]\ndisabled_notifications =\n").unwrap();
    let reloaded = mesh.control(&["api", "reload"]);
    assert!(reloaded.contains("reloaded"), "{reloaded}");
    let after = create_image(&http, &api, body).await;

    // One publisher, one queue: had `before`'s image.create been sent, it would come first.
    let seen = notifications_until(
        &mut sub,
        "image.create of the image created after the reload",
        Duration::from_secs(30),
        |n| n.event_type == "image.create",
        |n| n.payload["id"] == after.as_str(),
    )
    .await;
    let ids: Vec<&str> = seen
        .iter()
        .filter_map(|(n, _)| n.payload["id"].as_str())
        .collect();
    assert!(
        !ids.contains(&before.as_str()),
        "sent while disabled: {ids:?}"
    );
    assert_eq!(ids.last(), Some(&after.as_str()));
}
