//! The image cache through HTTP on the all-in-one (in-process bus, embedded cache worker):
//! tee on first download, hits with the store path's headers and ranges, `/v2/cache`, the
//! older `/v2/cached_images` and `/v2/queued_images` routes, policy, prune and clean, and
//! eviction when an image is deleted or deactivated.

use std::time::{Duration, Instant};

use glance_tests::{cached_ids, digests, spawn_app, spawn_app_with, TestApp};
use serde_json::{json, Value};

fn sample(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8)
        .collect()
}

/// Polls `/v2/cache` until `pred` holds (the embedded worker and eviction are asynchronous).
async fn wait_for(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = app.cache_state().await;
        if pred(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two active images of 1000 bytes (contents from `seeds`), each downloaded once so the
/// cache holds both.
async fn two_cached_images(app: &TestApp, seeds: [u8; 2]) -> [String; 2] {
    let mut ids = Vec::new();
    for seed in seeds {
        let id = app.active_image("c", sample(1000, seed)).await;
        download(app, &id).await.bytes().await.unwrap();
        ids.push(id);
    }
    wait_for(app, "two entries", |s| cached_ids(s).len() == 2).await;
    [ids[0].clone(), ids[1].clone()]
}

async fn download(app: &TestApp, id: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_first_download_fills_the_cache_and_the_second_is_a_hit() {
    let app = spawn_app().await;
    let data = sample(3_500_000, 1);
    let (md5, _) = digests(&data);
    let id = app.active_image("c", data.clone()).await;
    assert!(cached_ids(&app.cache_state().await).is_empty());

    let res = download(&app, &id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
    let state = wait_for(&app, "the tee to promote", |s| {
        cached_ids(s) == vec![id.clone()]
    })
    .await;
    let entry = &state["cached_images"][0];
    assert_eq!(entry["size"], data.len() as u64);
    assert_eq!(entry["hits"], 0);
    for key in ["last_accessed", "last_modified"] {
        assert!(entry[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert_eq!(state["queued_images"], json!([]));
    let cached = std::fs::read(app.data_dir.path().join("cache").join(&id)).unwrap();
    assert_eq!(cached, data);

    // The hit: same bytes and headers as the store path.
    let res = download(&app, &id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(res.headers()["content-md5"], md5.as_str());
    assert_eq!(
        res.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
    wait_for(&app, "the hit to count", |s| {
        s["cached_images"][0]["hits"] == 1
    })
    .await;

    // Ranges from the cache.
    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 100-199/{}", data.len()).as_str()
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[100..200]);
    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .header("range", format!("bytes={}-", data.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
}

/// A first download never waits for the cache: when the cache's writer falls behind it,
/// the fill is given up and the image queued for the node's workers once the download is
/// over. Either way the image ends up cached, whole and verified. (96 MiB: far more than
/// the tee buffers, so on a busy machine the writer usually does fall behind.)
#[tokio::test(flavor = "multi_thread")]
async fn a_first_download_leaves_the_image_cached_even_when_the_cache_falls_behind() {
    use futures::StreamExt;
    let app = spawn_app().await;
    let data = sample(96 << 20, 7);
    let (md5, _) = digests(&data);
    let id = app.active_image("big", data.clone()).await;
    let res = download(&app, &id).await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut received = 0usize;
    let mut same = true;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        same &= chunk[..] == data[received..received + chunk.len()];
        received += chunk.len();
    }
    assert!(same && received == data.len(), "the download is the image");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state = app.cache_state().await;
        if cached_ids(&state) == vec![id.clone()] {
            break;
        }
        assert!(Instant::now() < deadline, "never cached: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cached = std::fs::read(app.data_dir.path().join("cache").join(&id)).unwrap();
    assert_eq!(digests(&cached).0, md5, "the entry is the image");
}

#[tokio::test]
async fn a_client_that_leaves_half_way_leaves_no_entry() {
    let app = spawn_app().await;
    let data = sample(40_000_000, 2);
    let id = app.active_image("c", data).await;
    let mut res = download(&app, &id).await;
    assert_eq!(res.status(), 200);
    let first = res.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    // The tee is under way (40 MB do not fit in the socket buffers).
    let incomplete = app.data_dir.path().join("cache").join("incomplete");
    assert_eq!(std::fs::read_dir(&incomplete).unwrap().count(), 1);
    drop(res);
    // Once the server notices, the incomplete file is gone and nothing was promoted.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&incomplete).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "the incomplete file stayed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cached_ids(&app.cache_state().await).is_empty());
}

#[tokio::test]
async fn queueing_an_image_prefetches_it_with_the_embedded_worker() {
    let app = spawn_app().await;
    let data = sample(2_000_000, 3);
    let id = app.active_image("c", data.clone()).await;
    let res = app
        .client
        .put(app.url(&format!("/v2/cache/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let state = wait_for(&app, "the prefetch", |s| cached_ids(s) == vec![id.clone()]).await;
    assert_eq!(state["queued_images"], json!([]));
    let res = download(&app, &id).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);

    // Unknown image: 404; an image with no data: 400.
    let res = app
        .client
        .put(app.url(&format!("/v2/cache/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let queued = app
        .create_image(json!({"name": "q", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let res = app
        .client
        .put(app.url(&format!("/v2/cache/{}", queued["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn deleting_and_clearing_entries() {
    let app = spawn_app().await;
    let [a, b] = two_cached_images(&app, [4, 5]).await;

    let res = app
        .client
        .delete(app.url(&format!("/v2/cache/{a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(cached_ids(&app.cache_state().await), vec![b.clone()]);
    let res = app
        .client
        .delete(app.url(&format!("/v2/cache/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Bad target: 400; `queue` leaves entries; `cache` removes them.
    let clear = |target: &'static str| {
        app.client
            .delete(app.url("/v2/cache"))
            .header("x-image-cache-clear-target", target)
            .send()
    };
    assert_eq!(clear("everything").await.unwrap().status(), 400);
    assert_eq!(clear("queue").await.unwrap().status(), 204);
    assert_eq!(cached_ids(&app.cache_state().await), vec![b.clone()]);
    assert_eq!(clear("cache").await.unwrap().status(), 204);
    assert!(cached_ids(&app.cache_state().await).is_empty());

    // No header: both.
    download(&app, &b).await.bytes().await.unwrap();
    wait_for(&app, "b again", |s| cached_ids(s).len() == 1).await;
    let res = app
        .client
        .delete(app.url("/v2/cache"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(cached_ids(&app.cache_state().await).is_empty());
}

#[tokio::test]
async fn the_older_cache_management_routes_work() {
    let app = spawn_app().await;
    let id = app.active_image("c", sample(5000, 6)).await;
    download(&app, &id).await.bytes().await.unwrap();
    wait_for(&app, "the entry", |s| cached_ids(s).len() == 1).await;

    let listed: Value = app
        .client
        .get(app.url("/v2/cached_images"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["cached_images"][0]["image_id"], id.as_str());
    assert_eq!(listed["cached_images"][0]["size"], 5000);

    // Queue an id the registry does not know: accepted, listed, then dropped by the worker.
    let ghost = uuid::Uuid::new_v4().to_string();
    let res = app
        .client
        .put(app.url(&format!("/v2/queued_images/{ghost}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    wait_for(&app, "the worker to drop the ghost", |s| {
        s["queued_images"] == json!([])
    })
    .await;

    // Queue markers and their removal.
    let other = app.active_image("c", sample(100, 7)).await;
    let queue_dir = app.data_dir.path().join("cache").join("queue");
    std::fs::write(queue_dir.join(&other), b"").unwrap();
    let queued: Value = app
        .client
        .get(app.url("/v2/queued_images"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued["queued_images"], json!([other]));
    let res = app
        .client
        .delete(app.url(&format!("/v2/queued_images/{other}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    std::fs::write(queue_dir.join(&other), b"").unwrap();
    let deleted: Value = app
        .client
        .delete(app.url("/v2/queued_images"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["num_deleted"], 1);

    let res = app
        .client
        .delete(app.url(&format!("/v2/cached_images/{id}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    download(&app, &id).await.bytes().await.unwrap();
    wait_for(&app, "the entry again", |s| cached_ids(s).len() == 1).await;
    let deleted: Value = app
        .client
        .delete(app.url("/v2/cached_images"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["num_deleted"], 1);
}

#[tokio::test]
async fn deleting_or_deactivating_an_image_evicts_it() {
    let app = spawn_app().await;
    let [gone, dark] = two_cached_images(&app, [8, 9]).await;
    let res = app
        .client
        .delete(app.url(&format!("/v2/images/{gone}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    wait_for(&app, "eviction on delete", |s| {
        cached_ids(s) == vec![dark.clone()]
    })
    .await;
    let res = app
        .client
        .post(app.url(&format!("/v2/images/{dark}/actions/deactivate")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    wait_for(&app, "eviction on deactivate", |s| cached_ids(s).is_empty()).await;
}

#[tokio::test]
async fn prune_clean_and_nodes() {
    let app = spawn_app_with(&[
        ("DEFAULT", "image_cache_max_size", "2500"),
        ("glance_cache", "node_id", "node-a"),
    ])
    .await;
    let ids = [
        app.active_image("c", sample(1000, 10)).await,
        app.active_image("c", sample(1000, 11)).await,
        app.active_image("c", sample(1000, 12)).await,
    ];
    for id in &ids {
        download(&app, id).await.bytes().await.unwrap();
        wait_for(&app, "the entry", |s| cached_ids(s).contains(id)).await;
    }
    // Touch the first so the second is the least recently accessed.
    download(&app, &ids[0]).await.bytes().await.unwrap();
    wait_for(&app, "the hit", |s| {
        s["cached_images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["image_id"] == ids[0].as_str() && e["hits"] == 1)
    })
    .await;
    let res = app
        .client
        .post(app.url("/v2/cache/prune"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(
        report,
        json!({"total_files_pruned": 1, "total_bytes_pruned": 1000})
    );
    let mut left = cached_ids(&app.cache_state().await);
    left.sort();
    let mut want = vec![ids[0].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(left, want);

    std::fs::write(
        app.data_dir.path().join("cache/invalid").join(&ids[1]),
        b"bad",
    )
    .unwrap();
    let res = app
        .client
        .post(app.url("/v2/cache/clean"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["invalid_removed"], 1);

    let nodes: Value = app
        .client
        .get(app.url(&format!("/v2/cache/nodes/{}", ids[0])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nodes, json!(["node-a"]));
    let nodes: Value = app
        .client
        .get(app.url(&format!("/v2/cache/nodes/{}", ids[1])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nodes, json!([]));
}

#[tokio::test]
async fn only_admins_manage_the_cache() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let as_role = |req: reqwest::RequestBuilder, role: &str| {
        req.header("x-identity-status", "Confirmed")
            .header("x-user-id", "u1")
            .header("x-project-id", "p1")
            .header("x-roles", role)
    };
    let id = uuid::Uuid::new_v4();
    for (method, path) in [
        (reqwest::Method::GET, "/v2/cache".to_owned()),
        (reqwest::Method::DELETE, "/v2/cache".to_owned()),
        (reqwest::Method::POST, "/v2/cache/prune".to_owned()),
        (reqwest::Method::POST, "/v2/cache/clean".to_owned()),
        (reqwest::Method::GET, "/v2/cached_images".to_owned()),
        (reqwest::Method::PUT, format!("/v2/queued_images/{id}")),
    ] {
        let res = as_role(
            app.client.request(method.clone(), app.url(&path)),
            "member,reader",
        )
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        let res = as_role(app.client.request(method.clone(), app.url(&path)), "admin")
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "{method} {path}: {}",
            res.status()
        );
    }
}

#[tokio::test]
async fn other_methods_on_the_cache_are_not_allowed() {
    let app = spawn_app().await;
    let res = app.client.post(app.url("/v2/cache")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, DELETE");
}
