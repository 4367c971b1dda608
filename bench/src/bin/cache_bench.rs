//! `cache_bench`: figures for the image cache, each beside its ceiling from the same run.
//! Prints, never asserts.
//!
//! 1. Cached download throughput against a raw read of the same cache file (target: the
//!    ratio >= 0.8), on a glance-all-in-one.
//! 2. With `--amqp-url` and `--postgres-url`: the time to warm N images on 2 API nodes with
//!    1 and then 2 cache workers per node (fleet-wide prefetch), and the scaling ratio.
//!
//! ```sh
//! cargo build --release --bins -p glance-all-in-one -p glance-api -p glance-registry \
//!     -p glance-manage -p glance-cache-worker
//! cargo run --release -p glance-bench --bin cache_bench -- \
//!     [--amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --postgres-url postgresql://postgres@127.0.0.1/postgres]
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "cache_bench", about = "Image cache figures")]
struct Args {
    /// Size of the image for the throughput figure, in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: usize,
    /// Downloads (and raw reads) measured; the best of each is reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Images warmed per round in the worker figure.
    #[arg(long, default_value_t = 8)]
    images: usize,
    /// Size of each warmed image, in MiB.
    #[arg(long, default_value_t = 32)]
    image_mib: usize,
    /// Broker for the two-node figure.
    #[arg(long)]
    amqp_url: Option<String>,
    /// PostgreSQL server (superuser) for the two-node figure; a fresh database is made.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Where the binaries are (default: target/release, else target/debug).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin_dir(args: &Args) -> PathBuf {
    if let Some(d) = &args.bin_dir {
        return d.clone();
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let release = target.join("release");
    if release.join("glance-cache-worker").exists() {
        release
    } else {
        target.join("debug")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
    let file = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    Ok(Proc(cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?))
}

async fn wait_up(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{url}/versions")).await.is_err() {
        if Instant::now() > deadline {
            bail!("{url} did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn upload(http: &reqwest::Client, api: &str, data: Vec<u8>) -> anyhow::Result<String> {
    let img: Value = http
        .post(format!("{api}/v2/images"))
        .json(&json!({"name": "bench", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let id = img["id"].as_str().context("no id")?.to_owned();
    let res = http
        .put(format!("{api}/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await?;
    anyhow::ensure!(res.status() == 204, "upload: {}", res.status());
    Ok(id)
}

async fn cached_count(http: &reqwest::Client, api: &str) -> anyhow::Result<usize> {
    let v: Value = http
        .get(format!("{api}/v2/cache"))
        .send()
        .await?
        .json()
        .await?;
    Ok(v["cached_images"].as_array().map_or(0, |a| a.len()))
}

/// Streams a download to nowhere; returns bytes and seconds.
async fn download(http: &reqwest::Client, url: &str) -> anyhow::Result<(u64, f64)> {
    fetch(http.get(url), 200).await
}

/// The same bytes as a range of all of them: served from the store, never filling the
/// cache (ranges are not cached), so the download path with the cache out of the way.
async fn download_no_fill(http: &reqwest::Client, url: &str) -> anyhow::Result<(u64, f64)> {
    fetch(http.get(url).header("range", "bytes=0-"), 206).await
}

async fn fetch(req: reqwest::RequestBuilder, want: u16) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let mut res = req.send().await?;
    anyhow::ensure!(res.status() == want, "download: {}", res.status());
    let mut n = 0u64;
    while let Some(chunk) = res.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

fn raw_read(path: &Path) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

/// The same file over a loopback TCP socket with no HTTP: `std::io::copy` from the file to
/// the socket (sendfile/splice on Linux) into a reader that discards. The ceiling of any
/// server that sends the file on this host.
fn tcp_copy(path: &Path) -> anyhow::Result<(u64, f64)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut sock, _) = listener.accept()?;
        std::io::copy(&mut sock, &mut std::io::sink())
    });
    let t = Instant::now();
    let mut sock = std::net::TcpStream::connect(addr)?;
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut sock)?;
    drop(sock);
    let n = reader.join().expect("reader thread")?;
    Ok((n, t.elapsed().as_secs_f64()))
}

fn mib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

async fn throughput(args: &Args, bins: &Path, tmp: &Path) -> anyhow::Result<()> {
    let port = free_port();
    let dir = tmp.join("aio");
    let _server = spawn(
        Command::new(bins.join("glance-all-in-one"))
            .args(["--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", "warn"),
        &tmp.join("aio.log"),
    )?;
    let api = format!("http://127.0.0.1:{port}");
    wait_up(&api).await?;
    let http = reqwest::Client::new();
    let id = upload(&http, &api, data(args.size_mib << 20, 1)).await?;
    let url = format!("{api}/v2/images/{id}/file");
    let (_, no_fill_before) = download_no_fill(&http, &url).await?;
    let (n, first) = download(&http, &url).await?;
    // The tee's fill ends with the download, or, given up, becomes a prefetch the server
    // queues just after it: wait until neither is left, so neither runs into what follows.
    let cache = dir.join("cache");
    let busy = || {
        std::fs::read_dir(cache.join("incomplete")).is_ok_and(|mut d| d.next().is_some())
            || std::fs::read_dir(cache.join("queue")).is_ok_and(|mut d| d.next().is_some())
    };
    let ended = Instant::now();
    while !busy() && !cache.join(&id).is_file() && ended.elapsed() < Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while busy() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the first download's cache fill did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let filled = cached_count(&http, &api).await? > 0;
    let (_, no_fill_after) = download_no_fill(&http, &url).await?;
    let no_fill = no_fill_before.min(no_fill_after);
    if !filled {
        // Neither the tee nor the server's own prefetch filled it: a prefetch asked for.
        let res = http.put(format!("{api}/v2/cache/{id}")).send().await?;
        anyhow::ensure!(res.status() == 202, "queue: {}", res.status());
        let deadline = Instant::now() + Duration::from_secs(120);
        while cached_count(&http, &api).await? == 0 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the prefetch did not fill the cache"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let file = dir.join("cache").join(&id);
    let (mut best_hit, mut best_raw, mut best_tcp) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..args.reps {
        best_hit = best_hit.min(download(&http, &url).await?.1);
        let path = file.clone();
        best_raw = best_raw.min(
            tokio::task::spawn_blocking(move || raw_read(&path))
                .await??
                .1,
        );
        let path = file.clone();
        best_tcp = best_tcp.min(
            tokio::task::spawn_blocking(move || tcp_copy(&path))
                .await??
                .1,
        );
    }
    let (hit, raw, tcp) = (mib_s(n, best_hit), mib_s(n, best_raw), mib_s(n, best_tcp));
    println!("image: {} MiB, best of {} each", args.size_mib, args.reps);
    println!(
        "  download with no cache fill (Range 0-):     {:>8.0} MiB/s (best of 2)",
        mib_s(n, no_fill)
    );
    println!(
        "  first download (store, tee into the cache): {:>8.0} MiB/s ({})",
        mib_s(n, first),
        if filled {
            "filled the cache"
        } else {
            "gave up the fill; prefetched after"
        }
    );
    println!(
        "  ratio first download/no fill: {:.2} (target >= 0.9)",
        no_fill / first
    );
    println!("  cached download over HTTP:                  {hit:>8.0} MiB/s");
    println!("  raw read of the same cache file:            {raw:>8.0} MiB/s");
    println!("  the file over loopback TCP, no HTTP:        {tcp:>8.0} MiB/s");
    println!("  ratio cached/raw read: {:.2} (target >= 0.8)", hit / raw);
    println!("  ratio cached/loopback TCP: {:.2}", hit / tcp);
    Ok(())
}

fn psql(server: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .arg(server)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("psql (postgresql-client) is needed for the two-node figure")?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn warming(args: &Args, bins: &Path, tmp: &Path, amqp: &str, pg: &str) -> anyhow::Result<()> {
    let name = format!("glance_cache_bench_{}", std::process::id());
    psql(pg, &format!("create database {name}"))?;
    let db = match pg.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => bail!("--postgres-url must end in /<database>"),
    };
    let images = tmp.join("images");
    std::fs::create_dir_all(&images)?;
    let env = |cmd: &mut Command| {
        cmd.env("GLANCE__DEFAULT__TRANSPORT_URL", amqp)
            .env("GLANCE__DATABASE__CONNECTION", &db)
            .env("GLANCE__GLANCE_STORE__FILESYSTEM_STORE_DATADIR", &images)
            .env("GLANCE__DEFAULT__AUTH_STRATEGY", "noauth")
            .env("RUST_LOG", "warn");
    };
    let mut sync = Command::new(bins.join("glance-manage"));
    env(&mut sync);
    anyhow::ensure!(
        sync.args(["db", "sync"]).status()?.success(),
        "db sync failed"
    );
    let mut cmd = Command::new(bins.join("glance-registry"));
    env(&mut cmd);
    let _registry = spawn(&mut cmd, &tmp.join("registry.log"))?;
    let run = std::process::id();
    let nodes: Vec<(String, PathBuf, u16)> = (0..2)
        .map(|i| {
            (
                format!("bench{run}n{i}"),
                tmp.join(format!("cache{i}")),
                free_port(),
            )
        })
        .collect();
    let node_env = |cmd: &mut Command, node: &(String, PathBuf, u16)| {
        env(cmd);
        cmd.env("GLANCE__DEFAULT__IMAGE_CACHE_DIR", &node.1)
            .env("GLANCE__GLANCE_CACHE__NODE_ID", &node.0)
            .env("GLANCE__GLANCE_CACHE__WORKER_CONCURRENCY", "1");
    };
    let mut apis = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut cmd = Command::new(bins.join("glance-api"));
        node_env(&mut cmd, node);
        cmd.env("GLANCE__DEFAULT__BIND_PORT", node.2.to_string());
        apis.push(spawn(&mut cmd, &tmp.join(format!("api{i}.log")))?);
    }
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://127.0.0.1:{}", n.2))
        .collect();
    for u in &urls {
        wait_up(u).await?;
    }
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..args.images {
        ids.push(upload(&http, &urls[0], data(args.image_mib << 20, i as u32)).await?);
    }
    let mut times = Vec::new();
    for workers in [1usize, 2] {
        for u in &urls {
            http.delete(format!("{u}/v2/cache")).send().await?;
        }
        let mut procs = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            for w in 0..workers {
                let mut cmd = Command::new(bins.join("glance-cache-worker"));
                node_env(&mut cmd, node);
                procs.push(spawn(
                    &mut cmd,
                    &tmp.join(format!("worker{workers}-{i}-{w}.log")),
                )?);
            }
        }
        // Workers declare and consume their queue; give them a moment to subscribe so the
        // round measures fetching, not start-up.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = Instant::now();
        for id in &ids {
            let res = http
                .put(format!("{}/v2/cache/{id}?all_nodes=true", urls[0]))
                .send()
                .await?;
            anyhow::ensure!(res.status() == 202, "queue: {}", res.status());
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let mut done = true;
            for u in &urls {
                done &= cached_count(&http, u).await? == ids.len();
            }
            if done {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "warming did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        let bytes = (2 * ids.len() * (args.image_mib << 20)) as u64;
        println!(
            "  {workers} worker(s) per node: {} images x {} MiB on 2 nodes in {secs:.2} s ({:.0} MiB/s)",
            ids.len(),
            args.image_mib,
            mib_s(bytes, secs)
        );
        times.push(secs);
        drop(procs);
    }
    println!(
        "  scaling 1 -> 2 workers per node: {:.2}x",
        times[0] / times[1]
    );
    drop(apis);
    let _ = psql(pg, &format!("drop database if exists {name} with (force)"));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bins = bin_dir(&args);
    println!("cache_bench: binaries from {}", bins.display());
    let tmp = tempfile::tempdir()?;
    println!("== cached download vs raw read");
    throughput(&args, &bins, tmp.path()).await?;
    match (&args.amqp_url, &args.postgres_url) {
        (Some(amqp), Some(pg)) => {
            println!("== warming N images across 2 nodes (fleet-wide prefetch)");
            warming(&args, &bins, tmp.path(), amqp, pg).await?;
        }
        _ => println!("(--amqp-url and --postgres-url add the two-node warming figure)"),
    }
    Ok(())
}
