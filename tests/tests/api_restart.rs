//! `glance-control api restart` of a real `glance-api` process under load: the restart
//! drains the HTTP server and re-executes the binary on the same listening socket, and a
//! client that retries refused connections (and nothing else) sees no request fail.
//!
//! The binaries must be built first (`cargo build --bins`; the test script does it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{mesh, wait_until};
use serde_json::json;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused_retried: AtomicU64,
    failed: AtomicU64,
}

/// One client loop: every request on a fresh connection (as the compose tests' load does),
/// creating an image and showing it; a refused connection is retried, anything else counts
/// as failed.
async fn client(
    api: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let body = json!({"name": format!("restart-{n}"), "disk_format": "raw", "container_format": "bare"});
        let result = loop {
            match http
                .post(format!("{api}/v2/images"))
                .header("connection", "close")
                .json(&body)
                .send()
                .await
            {
                Err(e) if refused(&e) => {
                    tally.refused_retried.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(res) if res.status() == 201 => {
                tally.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(res) => {
                tally.failed.fetch_add(1, Ordering::SeqCst);
                errors
                    .lock()
                    .unwrap()
                    .push(format!("HTTP {}", res.status()));
            }
            Err(e) => {
                tally.failed.fetch_add(1, Ordering::SeqCst);
                errors.lock().unwrap().push(format!("{e:?}"));
            }
        }
    }
}

fn refused(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = err.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_api_drops_no_request_and_closes_idle_keep_alive_connections() {
    let mesh = mesh().await;
    let _registry = mesh.registry("registry");
    let (api_proc, api) = mesh.api("api").await;
    let pid = api_proc.child.id();
    let mut before = None;
    wait_until("the API to answer status", Duration::from_secs(30), || {
        before = mesh.instance_of("api", pid);
        std::future::ready(before.is_some())
    })
    .await;
    let before = before.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(client(
                api.clone(),
                stop.clone(),
                tally.clone(),
                errors.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // An idle keep-alive connection, as a pooling client leaves one, opened just before the
    // restart so that its keep-alive timeout (5 s) is still far off: a reader thread notes
    // when the server closes it.
    let mut idle = TcpStream::connect(api.trim_start_matches("http://")).unwrap();
    idle.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: api\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t0 = Instant::now();
    let closed = std::thread::spawn(move || {
        idle.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let got = idle.read(&mut buf).map_err(|e| e.kind());
        (got, t0.elapsed())
    });
    mesh.control(&["api", "restart", "--instance", &before]);
    let mut after = None;
    wait_until("the API to come back", Duration::from_secs(30), || {
        after = mesh.instance_of("api", pid).filter(|i| *i != before);
        std::future::ready(after.is_some())
    })
    .await;
    let back_after = t0.elapsed();

    // The idle connection was closed by the drain, not left to its keep-alive timeout.
    let (got, closed_after) = closed.join().unwrap();
    assert_eq!(got, Ok(0), "the idle keep-alive connection was not closed");
    assert!(
        closed_after < Duration::from_secs(3),
        "the idle keep-alive connection was closed only after {closed_after:?}"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, retried, failed) = (
        tally.ok.load(Ordering::SeqCst),
        tally.refused_retried.load(Ordering::SeqCst),
        tally.failed.load(Ordering::SeqCst),
    );
    eprintln!("restart: back after {back_after:?}; {ok} ok, {retried} refused and retried, {failed} failed");
    assert_eq!(
        failed,
        0,
        "requests failed across the restart: {:?}",
        errors.lock().unwrap()
    );
    assert!(ok > 20, "the clients hardly ran: {ok} requests");
    // The drain does not wait out anything: no keep-alive timeout, no shutdown timeout.
    assert!(
        back_after < Duration::from_secs(10),
        "the restart took {back_after:?}"
    );
    assert!(
        mesh.log("api")
            .contains("listening on the socket handed over"),
        "the new image did not take the listener over"
    );
}
