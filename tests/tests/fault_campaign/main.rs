//! A bounded fault campaign over the real processes on loopback: two registries, two API
//! nodes (one cache node, delayed delete), two cache workers and two scrubbers over RabbitMQ
//! and PostgreSQL, under a steady mixed load (creates, uploads, stage and import, downloads,
//! member changes, prefetches, deletes). One fault at a time: an API node killed mid-upload,
//! a registry killed, a cache worker killed mid-fill, a scrubber killed mid-scrub, an API
//! node killed mid-import, the broker restarted, the database restarted, the store's file
//! system filled, the database's filled. After each, what was lost is counted against what
//! the service acknowledged and printed as one table; every "lost" and "stuck" column must be
//! 0, and the service must acknowledge writes again after every fault.
//!
//! It restarts the shared broker and database and mounts file systems, so it is `#[ignore]`d
//! (the runner reports it skipped) and `scripts/test.sh` runs it alone, as root, after every
//! other test, with `GLANCE_TEST_RABBITMQCTL` and `GLANCE_TEST_PG_CTL` naming control
//! scripts for its test broker and database.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod faults;
mod load;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::{dead_letters, image, recover, Row, Site};
use common::{create_image, upload_data, wait_until, Mesh, Proc};
use faults::{cache_writers, connected_to, DatabaseVolume, SlowOrigin, SmallDisk};
use load::{load, payload, Ledger};
use serde_json::json;

/// Short leases, quick sweeps, delayed delete, one cache node, web-download from any port.
fn api_env(cache: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("GLANCE__GLANCE_UPLOAD__LEASE_SECONDS", "2".into()),
        ("GLANCE__GLANCE_UPLOAD__SWEEP_INTERVAL", "0.5".into()),
        ("GLANCE__DEFAULT__DELAYED_DELETE", "true".into()),
        (
            "GLANCE__DEFAULT__IMAGE_CACHE_DIR",
            cache.display().to_string(),
        ),
        ("GLANCE__GLANCE_CACHE__NODE_ID", "campaign".into()),
        (
            "GLANCE__IMPORT_FILTERING_OPTS__ALLOWED_PORTS",
            String::new(),
        ),
    ]
}

struct Campaign {
    mesh: Mesh,
    cache: tempfile::TempDir,
    http: reqwest::Client,
}

impl Campaign {
    async fn api(&self, tag: &str) -> (Proc, String) {
        let env = api_env(self.cache.path());
        self.mesh
            .api_configured(tag, |cmd| {
                cmd.envs(env.iter().map(|(k, v)| (k, v)));
            })
            .await
    }

    /// A cache worker of the node, fetching at 4 MB/s, one image at a time; its cleaner
    /// removes incomplete files untouched for 2 s, every second.
    fn cache_worker(&self, tag: &str) -> Proc {
        let mut cmd = self.mesh.command("glance-cache-worker");
        cmd.envs(api_env(self.cache.path()))
            .env("GLANCE__GLANCE_CACHE__FETCH_RATE_LIMIT", "4000000")
            .env("GLANCE__GLANCE_CACHE__WORKER_CONCURRENCY", "1")
            .env("GLANCE__DEFAULT__IMAGE_CACHE_STALL_TIME", "2")
            .env("GLANCE__GLANCE_CACHE__CLEAN_INTERVAL", "1");
        self.mesh.spawn("glance-cache-worker", tag, cmd)
    }

    /// A scrubber daemon waking every second, scrubbing at once, each delete held 300 ms so
    /// that it can be caught in the middle of one.
    fn scrubber(&self, tag: &str) -> Proc {
        let mut cmd = self.mesh.command("glance-scrubber");
        cmd.arg("--daemon")
            .env("GLANCE__DEFAULT__SCRUB_TIME", "0")
            .env("GLANCE__DEFAULT__WAKEUP_TIME", "1")
            .env("GLANCE__DEFAULT__SCRUB_POOL_SIZE", "2")
            .env("GLANCE__SCRUBBER__TEST_DELETE_DELAY_MS", "300");
        self.mesh.spawn("glance-scrubber", tag, cmd)
    }

    fn site(&self, api: &str) -> Site {
        Site {
            http: self.http.clone(),
            api: api.to_owned(),
            images: self.mesh.images.path().to_owned(),
            cache: self.cache.path().to_owned(),
        }
    }

    /// Runs the load on `apis` for 2 s, applies `fault`, loads on for 3 s more and audits
    /// through `audit_api` until recovered; `extra` images (created by the fault) must exist
    /// and not be stuck.
    async fn under_load(
        &self,
        apis: &[&str],
        audit_api: &str,
        name: &'static str,
        fault: impl FnOnce(),
    ) -> Row {
        self.under_load_with(apis, audit_api, name, fault, |_| {})
            .await
    }

    async fn under_load_with(
        &self,
        apis: &[&str],
        audit_api: &str,
        name: &'static str,
        fault: impl FnOnce(),
        also: impl FnOnce(&mut Ledger),
    ) -> Row {
        let dead_before = dead_letters();
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicUsize::new(0));
        let apis = apis.iter().map(|a| a.to_string()).collect();
        let running = tokio::spawn(load(self.http.clone(), apis, stop.clone(), acks.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        tokio::task::block_in_place(fault);
        let fault_end = Instant::now();
        loads_on_after(&acks).await;
        stop.store(true, Ordering::SeqCst);
        let mut ledger = running.await.unwrap();
        also(&mut ledger);
        let mut row = recover(&self.site(audit_api), &ledger, &[], dead_before, fault_end).await;
        row.fault = name;
        row
    }
}

/// Lets the load run on for 3 s after a fault, and on until it has a write acknowledged
/// (within 60 s: the table then says it never came back).
async fn loads_on_after(acks: &AtomicUsize) {
    let before = acks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::SeqCst) == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the control script named by `var` with `args`; it must succeed.
fn control(var: &str, args: &[&str]) {
    let script = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is unset: run this test through scripts/test.sh"));
    let status = Command::new(&script)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(status.success(), "{script} {args:?} failed");
}

/// Blocks until `check` holds (within 30 s).
fn block_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "restarts the shared broker and database and mounts file systems: scripts/test.sh runs it alone"]
async fn a_fault_campaign_loses_nothing_and_leaves_nothing_stuck() {
    for var in ["GLANCE_TEST_RABBITMQCTL", "GLANCE_TEST_PG_CTL"] {
        assert!(
            std::env::var(var).is_ok(),
            "{var} is unset: run this test through scripts/test.sh"
        );
    }
    let mesh = common::mesh().await;
    let database = mesh
        .db
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .unwrap()
        .to_owned();
    let campaign = Campaign {
        mesh,
        cache: tempfile::tempdir().unwrap(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    };
    let store = SmallDisk::mount(campaign.mesh.images.path(), "2g");
    let db_volume = DatabaseVolume::new(&database, "128m");
    let http = campaign.http.clone();
    let mut r1 = campaign.mesh.registry("registry-1");
    let _r2 = campaign.mesh.registry("registry-2");
    let (mut a1, api1) = campaign.api("api-1").await;
    let (mut a2, api2) = campaign.api("api-2").await;
    let mut w1 = campaign.cache_worker("cache-worker-1");
    let mut w2 = campaign.cache_worker("cache-worker-2");
    let mut s1 = campaign.scrubber("scrubber-1");
    let _s2 = campaign.scrubber("scrubber-2");
    let mut rows = Vec::new();

    // 1. An API node killed in the middle of an upload, under load on the other node.
    let dead_before = dead_letters();
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(load(
        http.clone(),
        vec![api2.clone()],
        stop.clone(),
        acks.clone(),
    ));
    let victim = create_image(
        &http,
        &api1,
        json!({"name": "victim", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let body =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let stalled = http
        .put(format!("{api1}/v2/images/{victim}/file"))
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let stalled = tokio::spawn(stalled);
    tx.send(Ok(bytes::Bytes::from(vec![7u8; 2 << 20])))
        .await
        .unwrap();
    wait_until(
        "the victim upload to be saving",
        Duration::from_secs(30),
        || {
            let (http, api, id) = (http.clone(), api2.clone(), victim.clone());
            async move {
                image(&http, &api, &id)
                    .await
                    .is_some_and(|i| i["status"] == "saving")
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a1.kill9();
    let fault_end = Instant::now();
    loads_on_after(&acks).await;
    stop.store(true, Ordering::SeqCst);
    let ledger = running.await.unwrap();
    drop(tx);
    let _ = stalled.await;
    let site = campaign.site(&api2);
    let mut row = recover(
        &site,
        &ledger,
        std::slice::from_ref(&victim),
        dead_before,
        fault_end,
    )
    .await;
    row.fault = "kill -9 glance-api mid-upload";
    rows.push(row);
    let (a1b, api1) = campaign.api("api-1b").await;
    a1 = a1b;
    let apis = [api1.as_str(), api2.as_str()];

    // 2. A registry killed under load on both API nodes.
    rows.push(
        campaign
            .under_load(&apis, &api1, "kill -9 glance-registry", || r1.kill9())
            .await,
    );
    let _r1 = campaign.mesh.registry("registry-1b");

    // 3. A cache worker killed in the middle of filling the cache with an 8 MB image
    //    (two seconds at its rate): the other worker gets the message again.
    let big = create_image(
        &http,
        &api1,
        json!({"name": "big", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let big_data = payload(9999, 8 << 20);
    upload_data(&http, &api1, &big, None, big_data.clone()).await;
    let incomplete = campaign.cache.path().join("incomplete");
    let (http3, api3, big3) = (http.clone(), api1.clone(), big.clone());
    let worker_pids = [w1.child.id(), w2.child.id()];
    let mut row = campaign
        .under_load_with(
            &apis,
            &api1,
            "kill -9 glance-cache-worker mid-fill",
            || {
                let accepted = tokio::runtime::Handle::current().block_on(async {
                    let res = http3.put(format!("{api3}/v2/cache/{big3}")).send().await;
                    res.unwrap().status()
                });
                assert_eq!(accepted, 202, "prefetch of the big image");
                let mut writer = None;
                block_until("a cache worker to fill the big image", || {
                    writer = cache_writers(&incomplete, &big3)
                        .into_iter()
                        .find(|pid| worker_pids.contains(pid));
                    writer.is_some()
                });
                if writer == Some(w1.child.id()) {
                    w1.kill9();
                } else {
                    w2.kill9();
                }
            },
            |ledger| {
                ledger.prefetched.insert(big.clone());
                ledger
                    .data
                    .insert(big.clone(), (glance_tests::digests(&big_data).0, 8 << 20));
            },
        )
        .await;
    row.acked += 1;
    rows.push(row);
    if w1.child.try_wait().unwrap().is_some() {
        w1 = campaign.cache_worker("cache-worker-1b");
    } else {
        w2 = campaign.cache_worker("cache-worker-2b");
    }

    // 4. A scrubber killed in the middle of a scrub (deletes under the load feed both).
    let mesh = &campaign.mesh;
    rows.push(
        campaign
            .under_load(&apis, &api1, "kill -9 glance-scrubber mid-scrub", || {
                block_until("scrubber-1 to be in the middle of a scrub", || {
                    mesh.count_in_logs(&["scrubber-1"], "scrubbing image")
                        > mesh.count_in_logs(&["scrubber-1"], "image scrubbed")
                });
                s1.kill9();
            })
            .await,
    );
    let _s1 = campaign.scrubber("scrubber-1b");

    // 5. An API node killed while its import worker downloads an image (web-download from
    //    an origin that takes about three seconds): the other node's worker takes it over.
    let imported = Arc::new(payload(4242, 1 << 20));
    let origin = SlowOrigin::start(imported.clone(), 20, Duration::from_millis(150)).await;
    let target = create_image(
        &http,
        &api1,
        json!({"name": "web", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let res = http
        .post(format!("{api1}/v2/images/{target}/import"))
        .json(&json!({"method": {"name": "web-download", "uri": origin.url("/disk.img")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let api_pids = [a1.child.id(), a2.child.id()];
    let mut importer = None;
    tokio::task::block_in_place(|| {
        block_until("an import worker to download from the origin", || {
            importer = connected_to(&api_pids, origin.port);
            importer.is_some()
        })
    });
    let (killed, survivor) = if importer == Some(a1.child.id()) {
        (&mut a1, api2.clone())
    } else {
        (&mut a2, api1.clone())
    };
    let mut row = campaign
        .under_load_with(
            &[survivor.as_str()],
            &survivor,
            "kill -9 glance-api mid-import",
            || killed.kill9(),
            |ledger| {
                ledger.data.insert(
                    target.clone(),
                    (glance_tests::digests(&imported).0, imported.len() as u64),
                );
                ledger.imported.insert(target.clone());
            },
        )
        .await;
    row.acked += 1;
    let web_downloads = origin.requests.load(Ordering::SeqCst);
    let web = image(&http, &survivor, &target).await.unwrap();
    let web_tasks = http
        .get(format!("{survivor}/v2/images/{target}/tasks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    rows.push(row);
    let (replacement, url) = campaign.api("api-replacement").await;
    let (api1, api2) = if survivor == api1 {
        a2 = replacement;
        (api1, url)
    } else {
        a1 = replacement;
        (url, api2)
    };
    let apis = [api1.as_str(), api2.as_str()];

    // 6. The broker stopped for five seconds under load, then started again.
    rows.push(
        campaign
            .under_load(&apis, &api1, "RabbitMQ stopped 5 s, restarted", || {
                control("GLANCE_TEST_RABBITMQCTL", &["stop_app"]);
                std::thread::sleep(Duration::from_secs(5));
                control("GLANCE_TEST_RABBITMQCTL", &["start_app"]);
            })
            .await,
    );

    // 7. The database restarted under load (a fast shutdown: sessions are cut).
    rows.push(
        campaign
            .under_load(&apis, &api1, "PostgreSQL restarted", || {
                control("GLANCE_TEST_PG_CTL", &["restart", "-m", "fast"]);
            })
            .await,
    );

    // 8. The image store's file system full for three seconds.
    rows.push(
        campaign
            .under_load(&apis, &api1, "image store volume full 3 s", || {
                let filler = store.fill();
                std::thread::sleep(Duration::from_secs(3));
                drop(filler);
            })
            .await,
    );

    // 9. The database's file system full for three seconds.
    rows.push(
        campaign
            .under_load(&apis, &api1, "database volume full 3 s", || {
                let filler = db_volume.disk.fill();
                std::thread::sleep(Duration::from_secs(3));
                drop(filler);
            })
            .await,
    );

    audit::print(&rows);
    assert!(
        web_downloads >= 2,
        "the import was downloaded again after its worker died ({web_downloads}): {web} {web_tasks}"
    );
    assert_eq!(
        web["status"], "active",
        "the other node finished the import: {web} {web_tasks}"
    );
    for r in &rows {
        assert!(r.acked > 0, "{}: the load acknowledged nothing", r.fault);
        assert!(
            r.back_secs.is_some(),
            "{}: no write was acknowledged after the fault",
            r.fault
        );
        assert_eq!(
            (r.writes_lost, r.bytes_lost, r.msgs_lost, r.stuck, r.orphans),
            (0, 0, 0, 0, 0),
            "{}: something was lost, stuck or orphaned",
            r.fault
        );
    }
    drop((a1, a2, w1, w2));
}
