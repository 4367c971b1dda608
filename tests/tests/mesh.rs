//! The distributed mode across real processes: two `glance-api` and two `glance-registry`
//! processes over RabbitMQ and PostgreSQL (both started by `scripts/test.sh`).
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::time::{Duration, Instant};

use common::{create_image, delete_image, mesh, upload_data, Mesh, Proc};

use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn two_apis_and_two_registries_serve_one_image_service() {
    let mesh = mesh().await;
    let mut r1 = mesh.registry("registry-1");
    let _r2 = mesh.registry("registry-2");
    let (_a1, api1) = mesh.api("api-1").await;
    let (mut a2, api2) = mesh.api("api-2").await;
    let http = reqwest::Client::new();

    // Create and upload through one API, download through the other.
    let id = create_image(
        &http,
        &api1,
        json!({"name": "mesh", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    upload_data(&http, &api1, &id, None, data.clone()).await;
    let got = http
        .get(format!("{api2}/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);

    // Patch through the second, see it through the first.
    let res = http
        .patch(format!("{api2}/v2/images/{id}"))
        .header(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )
        .json(&json!([{"op": "add", "path": "/os_distro", "value": "debian"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let shown: Value = http
        .get(format!("{api1}/v2/images/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["os_distro"], "debian");
    let listed: Value = http
        .get(format!("{api2}/v2/images?os_distro=debian"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["images"].as_array().unwrap().len(), 1);

    // Kill -9 one registry in the middle of streams of requests (concurrent, so the API
    // has batches of shows on the bus when it dies): none may fail.
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streams: Vec<_> = (0..8)
        .map(|_| {
            let (http, api1, id, killed) = (http.clone(), api1.clone(), id.clone(), killed.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut after_kill = 0;
                let mut stop_at: Option<Instant> = None;
                loop {
                    let res = http
                        .get(format!("{api1}/v2/images/{id}"))
                        .send()
                        .await
                        .unwrap();
                    if res.status() != 200 {
                        failures.push(res.status());
                    }
                    if killed.load(std::sync::atomic::Ordering::SeqCst) {
                        after_kill += 1;
                        let stop =
                            *stop_at.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
                        if Instant::now() > stop {
                            break;
                        }
                    }
                }
                (failures, after_kill)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    r1.kill9();
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut failures, mut after_kill) = (Vec::new(), 0);
    for stream in streams {
        let (f, n) = stream.await.unwrap();
        failures.extend(f);
        after_kill += n;
    }
    assert!(
        failures.is_empty(),
        "requests failed after a registry died: {failures:?}"
    );
    assert!(
        after_kill > 50,
        "only {after_kill} requests ran after the kill"
    );

    // glance-control sees every live instance: two APIs and the surviving registry.
    let status = mesh.control(&["all", "status"]);
    assert_eq!(status.matches("\napi ").count(), 2, "{status}");
    assert_eq!(status.matches("\nregistry ").count(), 1, "{status}");

    // reload picks up a changed setting from the config file, on every API.
    std::fs::write(
        mesh.logs.path().join("glance-api.conf"),
        "[DEFAULT]\nimage_size_cap = 1000\n",
    )
    .unwrap();
    let reloaded = mesh.control(&["api", "reload"]);
    assert_eq!(reloaded.matches("reloaded").count(), 2, "{reloaded}");
    let small = create_image(
        &http,
        &api2,
        json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let res = http
        .put(format!("{api2}/v2/images/{small}/file"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "the reloaded image_size_cap applies");

    // A bad file is refused and the old settings stay.
    std::fs::write(
        mesh.logs.path().join("glance-api.conf"),
        "[DEFAULT]\nimage_size_cap = lots\n",
    )
    .unwrap();
    let refused = mesh.control_status(&["api", "reload"]);
    assert!(
        !refused.0,
        "a bad config must fail the reload: {}",
        refused.1
    );
    assert!(refused.1.contains("image_size_cap"), "{}", refused.1);

    // shutdown of one instance drains it and it exits 0.
    let pid2 = a2.child.id().to_string();
    let instance = status
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some(pid2.as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("api-2 (pid {pid2}) not in status:\n{status}"))
        .to_owned();
    mesh.control(&["api", "shutdown", "--instance", &instance]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = a2.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "api-2 did not exit after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "api-2 exited with {exit}");

    // Delete through the first API; the image is gone.
    delete_image(&http, &api1, &id).await;
    let res = http
        .get(format!("{api1}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// Concurrent image-shows leave the API in batches (one message, one query for many callers,
/// `[glance_bus] show_batches_in_flight`); each caller still gets its own answer, with its
/// own project's view: its private image, not another project's, 404 for a missing one.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_shows_from_many_projects_each_get_their_own_answer() {
    let (mesh, _procs, api) = batching_mesh("GLANCE__GLANCE_BUS__SHOW_BATCHES_IN_FLIGHT").await;
    let http = reqwest::Client::new();
    let mut private = Vec::new();
    for project in ["alpha", "beta"] {
        let res = as_project(http.post(format!("{api}/v2/images")), project)
            .json(&json!({"name": format!("{project}-private"), "visibility": "private"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        private.push(body["id"].as_str().unwrap().to_owned());
    }
    let missing = uuid::Uuid::new_v4().to_string();

    // (project, image, expected status) in every combination, many times over, all at once.
    let cases = [
        ("alpha", private[0].clone(), 200),
        ("beta", private[1].clone(), 200),
        ("alpha", private[1].clone(), 404),
        ("beta", private[0].clone(), 404),
        ("alpha", missing.clone(), 404),
    ];
    let calls: Vec<_> = (0..40)
        .flat_map(|_| cases.clone())
        .map(|(project, id, expected)| {
            let req = as_project(http.get(format!("{api}/v2/images/{id}")), project);
            tokio::spawn(async move {
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let request_id = res.headers()["x-openstack-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (project, id, expected, status, body, request_id)
            })
        })
        .collect();
    let mut request_ids = Vec::new();
    for call in calls {
        let (project, id, expected, status, body, request_id) = call.await.unwrap();
        request_ids.push(request_id);
        assert_eq!(status, expected, "{project} showing {id}: {body}");
        if expected == 200 {
            assert_eq!(body["id"], id.as_str(), "{project} got another image");
            assert_eq!(body["owner"], project);
        }
    }

    // The registry did see batches, not one message per show.
    let log = mesh.log("registry");
    let largest = largest_batch(&log, " image-shows in one message");
    assert!(
        largest > 1,
        "no batch larger than {largest} show(s):\n{log}"
    );
    // Each caller's request id reached the registry, whichever batch it rode in.
    let lost: Vec<&String> = request_ids
        .iter()
        .filter(|r| !log.contains(r.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "request ids not in the registry's log: {lost:?}"
    );
}

/// Concurrent image lists leave the API in batches too (`[glance_bus]
/// list_batches_in_flight`), and each caller still gets its own project's view, its own
/// filter and its own page.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_lists_from_many_projects_each_get_their_own_answer() {
    let (mesh, _procs, api) = batching_mesh("GLANCE__GLANCE_BUS__LIST_BATCHES_IN_FLIGHT").await;
    let http = reqwest::Client::new();
    // Names unique to this test: other tests share the broker, not this registry's database,
    // but a name filter keeps each list to what this test made.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for (project, count) in [("alpha", 3), ("beta", 2)] {
        for n in 0..count {
            let res = as_project(http.post(format!("{api}/v2/images")), project)
                .json(&json!({"name": format!("{tag}-{project}"), "visibility": "private", "tags": [format!("n{n}")]}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    }

    // (project, query, how many images it must see), many times over, all at once.
    let cases = [
        ("alpha", format!("name={tag}-alpha"), 3),
        ("beta", format!("name={tag}-beta"), 2),
        ("alpha", format!("name={tag}-beta"), 0),
        ("beta", format!("name={tag}-alpha"), 0),
        ("alpha", format!("name={tag}-alpha&tag=n1"), 1),
        ("alpha", format!("name={tag}-alpha&limit=2"), 2),
    ];
    let calls: Vec<_> = (0..30)
        .flat_map(|_| cases.clone())
        .map(|(project, query, expected)| {
            let req = as_project(http.get(format!("{api}/v2/images?{query}")), project);
            tokio::spawn(async move {
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (project, query, expected, status, body)
            })
        })
        .collect();
    for call in calls {
        let (project, query, expected, status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{project} listing {query}: {body}");
        let images = body["images"].as_array().expect("a list");
        assert_eq!(images.len(), expected, "{project} listing {query}: {body}");
        for image in images {
            assert_eq!(image["owner"], project, "{project} saw another's image");
        }
    }

    // The registry did see batches, not one message per list.
    let log = mesh.log("registry");
    let largest = largest_batch(&log, " image lists in one message");
    assert!(
        largest > 1,
        "no batch larger than {largest} list(s):\n{log}"
    );
}

/// A registry that logs the batches it gets and one API that trusts identity headers, with
/// `in_flight` (a `[glance_bus] ..._BATCHES_IN_FLIGHT` variable) at 1, so that concurrent
/// requests queue up into batches.
async fn batching_mesh(in_flight: &str) -> (Mesh, [Proc; 2], String) {
    let mesh = mesh().await;
    let mut cmd = mesh.command("glance-registry");
    cmd.env("RUST_LOG", "info,glance_registry=debug");
    let registry = mesh.spawn("glance-registry", "registry", cmd);
    let (api_proc, api) = mesh
        .api_with(
            "api",
            &[
                ("GLANCE__DEFAULT__AUTH_STRATEGY", "trusted-headers"),
                (in_flight, "1"),
            ],
        )
        .await;
    (mesh, [registry, api_proc], api)
}

/// `req` as a member of `project`, through trusted headers.
fn as_project(req: reqwest::RequestBuilder, project: &str) -> reqwest::RequestBuilder {
    req.header("x-identity-status", "Confirmed")
        .header("x-roles", "member")
        .header("x-project-id", project)
        .header("x-user-id", format!("user-of-{project}"))
}

/// The largest `N` in the registry's log lines `... N{what}`.
fn largest_batch(log: &str, what: &str) -> usize {
    log.lines()
        .filter_map(|l| Some(&l[..l.find(what)?]))
        .filter_map(|head| head.rsplit(' ').next()?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
}
