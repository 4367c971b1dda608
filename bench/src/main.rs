//! `glance-bench`: starts a fresh glance-all-in-one, measures upload, memory, download,
//! creates, listing and request rates, and prints each figure beside a ceiling measured in
//! the same run. Exits 1 only on a correctness failure; missed targets are just reported.

mod ceiling;
mod cli;
mod cpu;
mod http;
mod keystone;
mod load;
mod mesh;
mod phases;
mod procs;
mod report;
mod server;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;

use crate::cli::{Args, Plan};
use crate::cpu::CpuMeter;
use crate::phases::{mbps, Journal};
use crate::report::{Row, Target};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(journal) if journal.failures.is_empty() => ExitCode::SUCCESS,
        Ok(journal) => {
            eprintln!(
                "\nglance-bench: {} correctness failure(s):",
                journal.failures.len()
            );
            for f in &journal.failures {
                eprintln!("  - {f}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("glance-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<Journal> {
    if args.mesh {
        return mesh::run(args);
    }
    if args.keystone_url.is_some() {
        return keystone::run(args);
    }
    let plan = args.plan();
    if !args.no_build {
        server::build(&["glance-all-in-one"])?;
    }
    let bin = args.server_bin();
    anyhow::ensure!(bin.is_file(), "no server binary at {}", bin.display());

    let tmp = cli::temp_dir()?;
    println!("glance-bench: server {}", bin.display());
    let cores = print_machine();
    println!(
        "plan: {} MiB upload, {} creates x{} clients, {:.1} s load phases x{} clients, client runtime {} threads, temp dir {}",
        plan.size >> 20,
        plan.creates,
        plan.create_concurrency,
        plan.duration.as_secs_f64(),
        plan.concurrency,
        plan.client_threads,
        tmp.path().display()
    );

    let mut journal = Journal::default();
    let rows = measure(args, &plan, &bin, tmp.path(), &mut journal)?;
    println!("\n{}", report::table(&rows));
    report::print_cpu(&journal.cpu);
    println!(
        "note: {cores} cores shared by the bench client and the server (and anything else running); \
         compare each request rate with the /versions row to see whether the client or the server is the limit."
    );
    if args.keep {
        let kept = tmp.keep();
        println!("kept {}", kept.display());
    }
    Ok(journal)
}

/// Prints the machine line; returns the number of cores.
pub fn print_machine() -> usize {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cores} cores (nproc), load average {}; client and server share these cores, so request rates are bounded by both",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    cores
}

fn measure(
    args: &Args,
    plan: &Plan,
    bin: &std::path::Path,
    tmp: &std::path::Path,
    journal: &mut Journal,
) -> anyhow::Result<Vec<Row>> {
    // 1. Upload ceiling, before the server runs so nothing competes with it.
    let t = Instant::now();
    let data = ceiling::random_bytes(plan.size);
    println!(
        "data: {} bytes of xorshift output generated in {:.2} s",
        data.len(),
        t.elapsed().as_secs_f64()
    );
    let meter = CpuMeter::bench_only();
    // Best of two passes: a ceiling is what the machine can do, not what a busy moment allowed.
    let hashes = ceiling::best(
        ceiling::hash_in_parallel(&data),
        ceiling::hash_in_parallel(&data),
    );
    println!(
        "ceiling: md5 {:.0} MB/s, sha512 {:.0} MB/s on two threads; together {:.0} MB/s; {}",
        mbps(data.len(), hashes.md5_time),
        mbps(data.len(), hashes.sha512_time),
        mbps(data.len(), hashes.wall()),
        meter.stop()
    );
    let disk_file = tmp.join("disk-ceiling.bin");
    let meter = CpuMeter::bench_only();
    let disk_time = ceiling::disk_write(&disk_file, &data)?;
    println!(
        "ceiling: sequential write + fsync of {} = {:.0} MB/s; {}",
        disk_file.display(),
        mbps(data.len(), disk_time),
        meter.stop()
    );
    let hash_rate = mbps(data.len(), hashes.wall());
    let disk_rate = mbps(data.len(), disk_time);
    let upload_ceiling = hash_rate.min(disk_rate);
    let data = Bytes::from(data);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .enable_all()
        .build()?;
    let mut server = server::Server::spawn(server::Options {
        bin,
        data_dir: tmp.join("data"),
        log: tmp.join("server.log"),
        workers: args.workers,
        config_file: args.config_file.as_deref(),
    })?;
    println!(
        "server: pid {} on {}, log {}",
        server.pid,
        server.addr,
        server.log.display()
    );
    let result = rt.block_on(async {
        server.wait_ready().await?;
        let up = phases::upload(&server, data.clone(), &hashes, journal).await?;
        let down = phases::download(&server, &up.id, data.len(), &disk_file, journal).await?;
        let cw = phases::creates_and_walk(&server, plan.creates, plan.create_concurrency, journal)
            .await?;
        let load = load::Load {
            addr: server.addr,
            watched: server.watched(),
            concurrency: plan.concurrency,
            duration: plan.duration,
            max_requests: plan.max_requests,
            headers: Vec::new(),
        };
        let loads = phases::loads(&server, &load, &up.id, plan.creates, journal).await?;
        anyhow::Ok((up, down, cw, loads))
    });
    let alive = server.is_alive();
    let log_size = std::fs::metadata(&server.log).map_or(0, |m| m.len());
    println!("server: still running at the end: {alive}; log {log_size} bytes");
    let (up, down, cw, loads) =
        result.with_context(|| format!("server log tail:\n{}", server.log_tail()))?;
    drop(server);
    let _ = std::fs::remove_file(&disk_file);

    let mib = |b: u64| b as f64 / 1048576.0;
    let size = data.len();
    let mut rows = vec![
        Row::new("upload ceiling: md5 || sha512", hash_rate, "MB/s"),
        Row::new("upload ceiling: disk write+fsync", disk_rate, "MB/s"),
        Row::new("upload PUT chunked 64 KiB", mbps(size, up.elapsed), "MB/s")
            .ceiling(upload_ceiling)
            .target(Target::RatioAtLeast(0.85)),
    ];
    if let Some(hwm) = up.hwm {
        rows.push(
            Row::new("server VmHWM after upload", mib(hwm), "MiB").target(Target::Below(64.0)),
        );
    }
    rows.push(
        Row::new("server max VmRSS (50 ms samples)", mib(up.max_rss), "MiB")
            .target(Target::Below(64.0)),
    );
    rows.extend([
        Row::new(
            "download GET file, no cache fill",
            mbps(size, down.no_fill),
            "MB/s",
        )
        .ceiling(mbps(size, down.sendfile))
        .target(Target::RatioAtLeast(0.9)),
        Row::new(
            "download GET file, cache hit",
            down.hit.map_or(f64::NAN, |t| mbps(size, t)),
            "MB/s",
        )
        .ceiling(mbps(size, down.sendfile))
        .target(Target::RatioAtLeast(0.9)),
        Row::new(
            format!(
                "first download, filling the cache ({}/{} filled)",
                down.filled, down.rounds
            ),
            mbps(size, down.api),
            "MB/s",
        )
        .ceiling(mbps(size, down.no_fill))
        .target(Target::RatioAtLeast(0.9)),
        Row::new(
            format!("creates x{}", plan.create_concurrency),
            cw.creates as f64 / cw.create_time.as_secs_f64(),
            "/s",
        )
        .target(Target::AtLeast(3000.0)),
        Row::new("  server CPU per create", cw.server_us_per_create, "us"),
        Row::new(
            format!("list all {} (limit=100 walk)", cw.creates),
            cw.walk.as_secs_f64() * 1e3,
            "ms",
        )
        .target(Target::Below(50.0)),
        Row::new(
            "  of which client JSON parse",
            cw.walk_parse.as_secs_f64() * 1e3,
            "ms",
        ),
        Row::new(
            format!("GET /versions c={}", plan.concurrency),
            loads.versions.rate(),
            "req/s",
        ),
        Row::new(
            format!("image-show c={}", plan.concurrency),
            loads.show.rate(),
            "req/s",
        )
        .ceiling(loads.versions.rate())
        .target(Target::AtLeast(30_000.0)),
        Row::new("  image-show p50", loads.show.percentile_ms(50), "ms"),
        Row::new("  image-show p99", loads.show.percentile_ms(99), "ms"),
        Row::new(
            "  load client CPU per image-show",
            loads.show.client_us_per_request(),
            "us",
        ),
        Row::new(
            format!("name+tag list c={}", plan.concurrency),
            loads.filtered.rate(),
            "req/s",
        )
        .ceiling(loads.versions.rate())
        .target(Target::AtLeast(10_000.0)),
        Row::new(
            "  name+tag list p50",
            loads.filtered.percentile_ms(50),
            "ms",
        ),
        Row::new(
            "  name+tag list p99",
            loads.filtered.percentile_ms(99),
            "ms",
        ),
    ]);
    Ok(rows)
}
