//! The measured phases, in the order they run against one fresh server. Each prints its raw
//! numbers as it goes and records correctness failures instead of stopping the run.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde::Deserialize;
use serde_json::json;

use crate::ceiling::{self, Hashes};
use crate::cpu::CpuShare;
use crate::http::{self, Conn};
use crate::load::{self, Load, LoadResult};
use crate::server::Server;

pub const MB: f64 = 1e6;

pub fn mbps(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / MB / t.as_secs_f64()
}

/// What the run learned besides the figures: correctness failures (any of them makes the
/// bench exit non-zero) and who used the CPU in each phase.
#[derive(Default)]
pub struct Journal {
    pub failures: Vec<String>,
    pub cpu: Vec<(String, CpuShare)>,
}

impl Journal {
    pub fn fail(&mut self, what: String) {
        eprintln!("\n!!! CORRECTNESS FAILURE: {what}\n");
        self.failures.push(what);
    }

    pub fn cpu(&mut self, phase: impl Into<String>, share: CpuShare) {
        self.cpu.push((phase.into(), share));
    }
}

pub struct Upload {
    pub id: String,
    pub elapsed: Duration,
    pub hwm: Option<u64>,
    pub max_rss: u64,
}

pub async fn upload(
    server: &Server,
    data: Bytes,
    hashes: &Hashes,
    journal: &mut Journal,
) -> anyhow::Result<Upload> {
    let mut conn = Conn::open(server.addr).await?;
    let (status, body) = conn
        .post_json(
            "/v2/images",
            &json!({"name": "bench-upload", "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    let image = http::expect_json("POST /v2/images", status, &body)?;
    let id = image["id"]
        .as_str()
        .context("created image has no id")?
        .to_owned();
    let path = format!("/v2/images/{id}/file");
    println!(
        "upload: server VmHWM before upload {} MiB",
        server
            .vm_hwm()
            .map_or("?".into(), |b| format!("{:.1}", b as f64 / 1048576.0))
    );

    let sampler = server.sample_rss();
    let meter = server.cpu_meter();
    let start = Instant::now();
    let sent = conn
        .send(
            Method::PUT,
            &path,
            Some("application/octet-stream"),
            http::chunked(data.clone(), 64 * 1024),
        )
        .await;
    let outcome = match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            Ok((status, body.unwrap_or_default()))
        }
        Err(e) => Err(e),
    };
    let elapsed = start.elapsed();
    let cpu = meter.stop();
    journal.cpu("upload", cpu.clone());
    let (max_rss, samples) = sampler.finish();
    let hwm = server.vm_hwm();
    println!(
        "upload: PUT {} bytes chunked (64 KiB frames) in {:.3} s = {:.0} MB/s; {cpu}",
        data.len(),
        elapsed.as_secs_f64(),
        mbps(data.len(), elapsed),
    );
    println!(
        "upload: server VmHWM after {} MiB, max sampled VmRSS {:.1} MiB over {samples} samples",
        hwm.map_or("?".into(), |b| format!("{:.1}", b as f64 / 1048576.0)),
        max_rss as f64 / 1048576.0
    );
    match outcome {
        Ok((204, _)) => {}
        Ok((status, body)) => {
            journal.fail(format!("PUT {path} -> {status}: {}", http::snippet(&body)))
        }
        Err(e) => journal.fail(format!("PUT {path} failed: {e:#}")),
    }

    let shown = conn.get_json(&format!("/v2/images/{id}")).await?;
    let field = |k: &str| shown[k].as_str().unwrap_or("<none>").to_owned();
    println!(
        "upload: image {id} status={} size={} checksum={} os_hash_algo={}",
        field("status"),
        shown["size"],
        field("checksum"),
        field("os_hash_algo")
    );
    if field("checksum") != hashes.md5 {
        journal.fail(format!(
            "image {id} checksum {} != md5 of the uploaded bytes {}",
            field("checksum"),
            hashes.md5
        ));
    }
    if field("os_hash_algo") == "sha512" && field("os_hash_value") != hashes.sha512 {
        journal.fail(format!(
            "image {id} os_hash_value differs from the sha512 of the uploaded bytes"
        ));
    }
    if shown["size"].as_u64() != Some(data.len() as u64) {
        journal.fail(format!(
            "image {id} size {} != {}",
            shown["size"],
            data.len()
        ));
    }
    if field("status") != "active" {
        journal.fail(format!(
            "image {id} is {} after upload, not active",
            field("status")
        ));
    }
    Ok(Upload {
        id,
        elapsed,
        hwm,
        max_rss,
    })
}

/// Rounds of the download comparison: single downloads of a second or less vary by a
/// quarter from one to the next on a shared 2-core machine, and a first download that waits
/// for the cache varies far more, so each figure is the median of these (not the best, which
/// would hide a fill that held the client back in some rounds).
const DOWNLOAD_ROUNDS: usize = 3;

pub struct Download {
    /// The median first download: a whole download of an image the cache does not hold,
    /// which fills the node's image cache on the way (the entry is evicted between rounds).
    pub api: Duration,
    /// The median download of the same bytes that fills nothing (`Range: bytes=0-`: the
    /// store path without the cache tee), one before each first download.
    pub no_fill: Duration,
    /// How many of the [`DOWNLOAD_ROUNDS`] first downloads left the image cached: by their
    /// tee, or by the prefetch the server queues when the tee gave the fill up.
    pub filled: usize,
    pub rounds: usize,
    /// The median whole download once the image is cached (a cache hit), if it was.
    pub hit: Option<Duration>,
    /// The fastest of [`DOWNLOAD_ROUNDS`] bare `sendfile`s of the stored file.
    pub sendfile: Duration,
}

/// One GET of the image data on a fresh connection; returns the time to the last byte.
async fn get_file(
    server: &Server,
    id: &str,
    size: usize,
    what: &str,
    headers: Vec<(String, String)>,
    journal: &mut Journal,
) -> anyhow::Result<Duration> {
    let path = format!("/v2/images/{id}/file");
    let want = if headers.is_empty() { 200 } else { 206 };
    let mut conn = Conn::open_with(server.addr, headers).await?;
    let meter = server.cpu_meter();
    let start = Instant::now();
    let resp = conn.send(Method::GET, &path, None, http::empty()).await?;
    let status = resp.status().as_u16();
    let n = http::drain(resp.into_body()).await?;
    let elapsed = start.elapsed();
    let cpu = meter.stop();
    journal.cpu(what, cpu.clone());
    println!(
        "{what}: GET {path} -> {status}, {n} bytes in {:.3} s = {:.0} MB/s; {cpu}",
        elapsed.as_secs_f64(),
        mbps(n as usize, elapsed),
    );
    if status != want || n != size as u64 {
        journal.fail(format!(
            "GET {path} ({what}) -> {status} with {n} bytes, expected {want} with {size}"
        ));
    }
    Ok(elapsed)
}

/// Waits until the cache is done with `id`: no writer holds an incomplete file of it and
/// it is not queued (a fill the tee gave up becomes a prefetch once the download is over),
/// so neither runs into the next measurement. Returns whether the cache holds the image.
async fn cache_settled(server: &Server, id: &str) -> bool {
    let cache = server.data_dir.join("cache");
    let started = Instant::now();
    let writing = || {
        std::fs::read_dir(cache.join("incomplete")).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(id))
        })
    };
    let queued = || cache.join("queue").join(id).exists();
    let entry = || cache.join(id).is_file();
    // The prefetch is queued just after the download ends: give it a moment to show.
    while !(entry() || queued() || writing()) && started.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut prefetched = false;
    while (queued() || writing()) && started.elapsed() < Duration::from_secs(120) {
        prefetched |= queued();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let filled = entry();
    println!(
        "download: cache {} {:.2} s after the first download ended",
        match (filled, prefetched) {
            (true, false) => "entry promoted by the download's tee",
            (true, true) => "entry promoted by the prefetch that replaced a fill given up",
            (false, _) => "not filled",
        },
        started.elapsed().as_secs_f64()
    );
    filled
}

/// Removes the cache entry of `id`, so the next whole download is a first one again.
async fn evict(server: &Server, id: &str) -> anyhow::Result<()> {
    let mut conn = Conn::open(server.addr).await?;
    let path = format!("/v2/cache/{id}");
    let resp = conn
        .send(Method::DELETE, &path, None, http::empty())
        .await?;
    let status = resp.status().as_u16();
    anyhow::ensure!(status == 204, "DELETE {path} -> {status}");
    Ok(())
}

/// Downloads the image with no cache fill, then for the first time (filling the cache), a
/// few rounds; then the same bytes via a bare `sendfile` server. One client.
pub async fn download(
    server: &Server,
    id: &str,
    size: usize,
    fallback_file: &Path,
    journal: &mut Journal,
) -> anyhow::Result<Download> {
    // A range (all of it) is served from the store and never fills the cache: the same
    // download path with the cache out of the way.
    let range = || vec![("range".to_owned(), "bytes=0-".to_owned())];
    let (mut no_fill, mut api, mut filled) = (Vec::new(), Vec::new(), 0);
    let mut cached = false;
    for round in 0..DOWNLOAD_ROUNDS {
        let what = "download, no cache fill";
        no_fill.push(get_file(server, id, size, what, range(), journal).await?);
        let what = "download, first (fills the cache)";
        api.push(get_file(server, id, size, what, Vec::new(), journal).await?);
        cached = cache_settled(server, id).await;
        if cached {
            filled += 1;
            if round + 1 < DOWNLOAD_ROUNDS {
                evict(server, id).await?;
            }
        }
    }
    // The last round's entry stays: whole downloads are now served from the cache's file.
    let mut hits = Vec::new();
    if cached {
        for _ in 0..DOWNLOAD_ROUNDS {
            let what = "download, cache hit";
            hits.push(get_file(server, id, size, what, Vec::new(), journal).await?);
        }
    } else {
        println!("download: the image is not cached, so no cache hit is measured");
    }

    let stored = server.data_dir.join("images").join(id);
    let file = if stored.is_file() {
        stored
    } else {
        fallback_file.to_owned()
    };
    // Best of a few rounds: a ceiling is what the machine can do, not what a busy moment
    // allowed.
    let mut sendfile = Duration::MAX;
    for round in 1..=DOWNLOAD_ROUNDS {
        let (addr, handle) = ceiling::sendfile_server(file.clone())?;
        let mut conn = Conn::open(addr).await?;
        let meter = server.cpu_meter();
        let start = Instant::now();
        let resp = conn.send(Method::GET, "/", None, http::empty()).await?;
        let m = http::drain(resp.into_body()).await?;
        let elapsed = start.elapsed();
        let cpu = meter.stop();
        journal.cpu("download ceiling (sendfile)", cpu.clone());
        let sent = handle.join().expect("sendfile thread")?;
        println!(
            "download ceiling {round}/{DOWNLOAD_ROUNDS}: sendfile of {} ({sent} bytes) read by the same client in {:.3} s = {:.0} MB/s; {cpu} (the bench is both ends here)",
            file.display(),
            elapsed.as_secs_f64(),
            mbps(m as usize, elapsed),
        );
        sendfile = sendfile.min(elapsed);
    }
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    Ok(Download {
        api: median(api),
        no_fill: median(no_fill),
        hit: (!hits.is_empty()).then(|| median(hits)),
        filled,
        rounds: DOWNLOAD_ROUNDS,
        sendfile,
    })
}

pub struct CreatesAndWalk {
    pub creates: usize,
    pub create_time: Duration,
    /// The server's CPU time over the create phase divided by the creates that succeeded.
    pub server_us_per_create: f64,
    pub walk: Duration,
    pub walk_parse: Duration,
}

#[derive(Deserialize)]
struct Page {
    images: Vec<Item>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    id: String,
}

pub async fn creates_and_walk(
    server: &Server,
    count: usize,
    concurrency: usize,
    journal: &mut Journal,
) -> anyhow::Result<CreatesAndWalk> {
    let c = load::create_images(server.addr, &server.watched(), count, concurrency).await?;
    let ok = c.ids.iter().filter(|i| i.is_some()).count();
    journal.cpu("creates", c.cpu.clone());
    let server_us_per_create = c.cpu.server * c.elapsed.as_secs_f64() / ok.max(1) as f64 * 1e6;
    println!(
        "creates: {count} creates from {concurrency} clients in {:.3} s = {:.0}/s, {} errors; server CPU {server_us_per_create:.0} us/create; {}",
        c.elapsed.as_secs_f64(),
        ok as f64 / c.elapsed.as_secs_f64(),
        c.errors.len(),
        c.cpu,
    );
    if !c.errors.is_empty() {
        for e in c.errors.iter().take(20) {
            println!("  create error: {e}");
        }
        journal.fail(format!("{} of {count} creates failed", c.errors.len()));
    }

    // The walk: limit=100 pages following `next`, on one warm keep-alive connection.
    let mut conn = Conn::open(server.addr).await?;
    conn.get_bytes("/versions").await?;
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut path = "/v2/images?limit=100".to_owned();
    let mut pages = 0;
    let mut parse = Duration::ZERO;
    let start = Instant::now();
    loop {
        let (status, body) = conn.get_bytes(&path).await?;
        anyhow::ensure!(
            status == 200,
            "GET {path} -> {status}: {}",
            http::snippet(&body)
        );
        let t = Instant::now();
        let page: Page = serde_json::from_slice(&body).with_context(|| format!("GET {path}"))?;
        parse += t.elapsed();
        pages += 1;
        for item in page.images {
            *seen.entry(item.id).or_default() += 1;
        }
        match page.next {
            Some(next) if pages <= count / 100 + 100 => path = relative(&next),
            _ => break,
        }
    }
    let walk = start.elapsed();
    let dupes = seen.values().filter(|n| **n > 1).count();
    let missing = c
        .ids
        .iter()
        .flatten()
        .filter(|id| !seen.contains_key(*id))
        .count();
    println!(
        "list walk: {pages} pages, {} distinct images ({} seen in total) in {:.1} ms, of which client JSON parsing {:.1} ms; {dupes} duplicated, {missing} created images missing",
        seen.len(),
        seen.values().sum::<u32>(),
        walk.as_secs_f64() * 1e3,
        parse.as_secs_f64() * 1e3,
    );
    if dupes > 0 || missing > 0 {
        journal.fail(format!(
            "list walk saw {dupes} images more than once and missed {missing} of {ok} created images"
        ));
    }
    Ok(CreatesAndWalk {
        creates: ok,
        create_time: c.elapsed,
        server_us_per_create,
        walk,
        walk_parse: parse,
    })
}

/// `next` links are relative in Glance; accept absolute ones too.
fn relative(link: &str) -> String {
    match link.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_owned()),
        None => link.to_owned(),
    }
}

/// The name+tag list every run measures; `creates` made `creates / 100` images that match.
pub const FILTER: &str = "/v2/images?name=bench-42&tag=t1";

/// One GET of [`FILTER`], checked against what the create phase made.
pub async fn check_filter(
    addr: std::net::SocketAddr,
    creates: usize,
    journal: &mut Journal,
) -> anyhow::Result<()> {
    let filter = FILTER;
    let expected = (0..creates).filter(|i| i % 100 == 42).count();
    let mut conn = Conn::open(addr).await?;
    let v = conn.get_json(filter).await?;
    let images = v["images"].as_array().cloned().unwrap_or_default();
    let wrong = images
        .iter()
        .filter(|i| {
            i["name"] != "bench-42"
                || !i["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "t1"))
        })
        .count();
    let paged = v["next"].is_string();
    println!(
        "filtered list {filter}: {} images per response (expected {expected}{}), {wrong} not matching the filter",
        images.len(),
        if paged { ", response has a next link" } else { "" }
    );
    if wrong > 0 || images.len() > expected || (images.len() < expected && !paged) {
        journal.fail(format!(
            "{filter} returned {} images ({wrong} not matching), expected {expected}",
            images.len()
        ));
    }
    Ok(())
}

pub struct Loads {
    pub versions: LoadResult,
    pub show: LoadResult,
    pub filtered: LoadResult,
}

pub async fn loads(
    server: &Server,
    load: &Load,
    show_id: &str,
    creates: usize,
    journal: &mut Journal,
) -> anyhow::Result<Loads> {
    let versions = load.get("/versions", 200).await?;
    report_load(
        journal,
        load,
        "load GET /versions (client ceiling)",
        &versions,
    );
    let show = load.get(&format!("/v2/images/{show_id}"), 200).await?;
    report_load(journal, load, "load GET /v2/images/{id}", &show);

    check_filter(server.addr, creates, journal).await?;
    let filtered = load.get(FILTER, 200).await?;
    report_load(
        journal,
        load,
        "load GET /v2/images?name=bench-42&tag=t1",
        &filtered,
    );
    Ok(Loads {
        versions,
        show,
        filtered,
    })
}

/// Prints a load phase's numbers, records its CPU, and records failed requests as a
/// correctness failure.
pub fn report_load(journal: &mut Journal, load: &Load, what: &str, r: &LoadResult) {
    journal.cpu(what, r.cpu.clone());
    println!(
        "{what}: {} requests ({} errors) in {:.2} s from {} keep-alive clients = {:.0} req/s; p50 {:.3} ms, p99 {:.3} ms; client CPU {:.1} us/request; {}",
        r.requests,
        r.errors,
        r.elapsed.as_secs_f64(),
        load.concurrency,
        r.rate(),
        r.percentile_ms(50),
        r.percentile_ms(99),
        r.client_us_per_request(),
        r.cpu,
    );
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    if r.errors > 0 {
        journal.fail(format!(
            "{what}: {} of {} requests failed: {}",
            r.errors,
            r.requests,
            r.first_error.clone().unwrap_or_default()
        ));
    }
}
