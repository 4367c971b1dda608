//! The image cache across real processes over RabbitMQ and PostgreSQL: prefetch by two
//! `glance-cache-worker` processes sharing a node's queue (one killed with SIGKILL in the
//! middle of a fetch), the cleaner on the stalled file it leaves, `glance-control
//! cache-worker status`, eviction on delete across two API nodes, and fleet-wide prefetch.
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{cached, create_image, mesh, upload_data, wait_until, Mesh, Proc};
use serde_json::{json, Value};

struct Node {
    id: String,
    cache_dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        Self {
            id: format!("n{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            cache_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn configure(&self, cmd: &mut Command) {
        cmd.env("GLANCE__DEFAULT__IMAGE_CACHE_DIR", self.cache_dir.path())
            .env("GLANCE__GLANCE_CACHE__NODE_ID", &self.id);
    }

    fn dir(&self, sub: &str) -> PathBuf {
        self.cache_dir.path().join(sub)
    }

    fn worker(&self, mesh: &Mesh, tag: &str, rate: u64) -> Proc {
        let mut cmd = mesh.command("glance-cache-worker");
        self.configure(&mut cmd);
        cmd.env("GLANCE__GLANCE_CACHE__FETCH_RATE_LIMIT", rate.to_string())
            .env("GLANCE__GLANCE_CACHE__WORKER_CONCURRENCY", "1");
        mesh.spawn("glance-cache-worker", tag, cmd)
    }
}

async fn api(mesh: &Mesh, node: &Node, tag: &str) -> (Proc, String) {
    mesh.api_configured(tag, |cmd| node.configure(cmd)).await
}

async fn upload(http: &reqwest::Client, api: &str, data: Vec<u8>) -> String {
    let id = create_image(
        http,
        api,
        json!({"name": "cached", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    upload_data(http, api, &id, None, data).await;
    id
}

/// The pid in an incomplete file's name (`<id>.<pid>-<nonce>`).
fn writer_pids(dir: &Path, id: &str) -> Vec<u32> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&format!("{id}."))?;
            rest.split('-').next()?.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_a_node_queue_and_a_killed_fetch_is_redone() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let node = Node::new();
    let (_api, api_url) = api(&mesh, &node, "api").await;
    let http = reqwest::Client::new();
    // 24 MB at 8 MB/s: about three seconds of fetching to catch a worker in.
    let big: Vec<u8> = (0..24_000_000u32).map(|i| (i % 253) as u8).collect();
    let big_id = upload(&http, &api_url, big.clone()).await;
    let mut w1 = node.worker(&mesh, "worker-1", 8_000_000);
    let mut w2 = node.worker(&mesh, "worker-2", 8_000_000);

    let res = http
        .put(format!("{api_url}/v2/cache/{big_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Whichever worker took it is writing its incomplete file: kill that one.
    let incomplete = node.dir("incomplete");
    let mut fetching = Vec::new();
    wait_until(
        "a worker to start the fetch",
        Duration::from_secs(30),
        || {
            fetching = writer_pids(&incomplete, &big_id);
            let found = !fetching.is_empty();
            async move { found }
        },
    )
    .await;
    let victim_pid = fetching[0];
    let (victim, survivor) = if w1.child.id() == victim_pid {
        (&mut w1, "worker-2")
    } else {
        assert_eq!(w2.child.id(), victim_pid, "the fetch is a worker's");
        (&mut w2, "worker-1")
    };
    victim.kill9();
    assert!(
        cached(&http, &api_url).await.is_empty(),
        "nothing complete yet"
    );

    // The message goes back to the queue; the other worker fetches it whole.
    wait_until(
        "the survivor to cache the image",
        Duration::from_secs(60),
        || async { cached(&http, &api_url).await == vec![big_id.clone()] },
    )
    .await;
    assert_eq!(std::fs::read(node.dir(&big_id)).unwrap(), big);
    assert_eq!(
        mesh.count_in_logs(&[survivor], "prefetched into the image cache"),
        1
    );
    let res = http
        .get(format!("{api_url}/v2/images/{big_id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().len(), big.len());

    // The victim's file is still there, stalled; the cleaner removes it.
    assert_eq!(writer_pids(&incomplete, &big_id), vec![victim_pid]);
    let mut cleaner = mesh.command("glance-cache-cleaner");
    node.configure(&mut cleaner);
    let out = cleaner
        .env("GLANCE__DEFAULT__IMAGE_CACHE_STALL_TIME", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 stalled incomplete"), "{said}");
    assert!(writer_pids(&incomplete, &big_id).is_empty());

    // Several images at once: each fetched exactly once by the one live worker.
    let mut small = Vec::new();
    for i in 0..4u8 {
        small.push(upload(&http, &api_url, vec![i; 200_000]).await);
    }
    for id in &small {
        let res = http
            .put(format!("{api_url}/v2/cache/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
    wait_until("four more entries", Duration::from_secs(60), || async {
        cached(&http, &api_url).await.len() == 5
    })
    .await;
    assert_eq!(
        mesh.count_in_logs(&["worker-1", "worker-2"], "prefetched into the image cache"),
        5
    );

    // glance-control reaches the live worker, which reports the node's figures.
    let text = mesh.control(&["cache-worker", "status"]);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("node={}", node.id)))
        .unwrap_or_else(|| panic!("no status from this node's worker:\n{text}"));
    let bytes = 24_000_000 + 4 * 200_000;
    assert!(line.contains(&format!("bytes_cached={bytes}")), "{line}");
    assert!(line.contains("queue_depth=0"), "{line}");
    for worker in ["cache-prefetch", "cache-prune", "cache-clean"] {
        assert!(line.contains(&format!("worker.{worker}=running")), "{line}");
    }

    // glance-cache-prefetcher: one pass over the queue markers, for cron users.
    let late = upload(&http, &api_url, vec![7u8; 100_000]).await;
    std::fs::write(node.dir("queue").join(&late), b"").unwrap();
    let mut prefetcher = mesh.command("glance-cache-prefetcher");
    node.configure(&mut prefetcher);
    let out = prefetcher.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("{late}: cached")), "{said}");
    assert!(node.dir(&late).exists() && !node.dir("queue").join(&late).exists());

    // glance-cache-pruner: the big image was read before the small ones were cached, so it
    // is the least recently accessed and goes first; then the cache fits.
    let mut pruner = mesh.command("glance-cache-pruner");
    node.configure(&mut pruner);
    let out = pruner
        .env("GLANCE__DEFAULT__IMAGE_CACHE_MAX_SIZE", "24000000")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Pruned 1 files (24000000 bytes)"), "{said}");
    let left = cached(&http, &api_url).await;
    assert!(!left.contains(&big_id) && left.len() == 5, "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_on_one_node_evicts_on_every_node_and_prefetch_can_reach_the_fleet() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (n1, n2) = (Node::new(), Node::new());
    let (_a1, api1) = api(&mesh, &n1, "api-1").await;
    let (_a2, api2) = api(&mesh, &n2, "api-2").await;
    let http = reqwest::Client::new();
    let data = vec![42u8; 1_500_000];
    let id = upload(&http, &api1, data.clone()).await;
    for api in [&api1, &api2] {
        let got = http
            .get(format!("{api}/v2/images/{id}/file"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), &data[..]);
    }
    for api in [&api1, &api2] {
        wait_until(
            "both nodes to cache it",
            Duration::from_secs(20),
            || async { cached(&http, api).await == vec![id.clone()] },
        )
        .await;
    }
    // Either node can say who holds the image.
    let mut want = vec![n1.id.clone(), n2.id.clone()];
    want.sort();
    let holders: Vec<String> = http
        .get(format!("{api2}/v2/cache/nodes/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(holders, want);

    let res = http
        .delete(format!("{api1}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    for api in [&api1, &api2] {
        wait_until(
            "eviction on every node",
            Duration::from_secs(20),
            || async { cached(&http, api).await.is_empty() },
        )
        .await;
    }
    assert!(!n2.dir(&id).exists());

    // A node without image_cache_dir says so, as Glance does.
    let (_a3, api3) = mesh.api("api-3").await;
    let res = http
        .get(format!("{api3}/v2/cache"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Caching via API is not supported at this site."
    );

    // A fleet-wide queue request through node 1 reaches node 2's worker.
    let _w2 = n2.worker(&mesh, "worker-n2", 0);
    let other = upload(&http, &api1, vec![9u8; 300_000]).await;
    let res = http
        .put(format!("{api1}/v2/cache/{other}?all_nodes=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    wait_until("node 2 to prefetch", Duration::from_secs(30), || async {
        cached(&http, &api2).await == vec![other.clone()]
    })
    .await;
}
