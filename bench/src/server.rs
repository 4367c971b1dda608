//! The server under test: built with cargo, spawned fresh on a free port with its own data
//! dir (so its VmHWM belongs to this run alone), watched through /proc, killed on drop.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::workspace;
use crate::cpu::CpuMeter;
use crate::http::Conn;

/// `cargo build --release --bin glance-all-in-one` in the workspace, output passed through.
pub fn build() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building: cargo build --release --bin glance-all-in-one");
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "glance-all-in-one"])
        .current_dir(workspace())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release --bin glance-all-in-one failed ({status})");
    }
    Ok(())
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

pub struct Options<'a> {
    pub bin: &'a Path,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub workers: Option<usize>,
    pub config_file: Option<&'a Path>,
}

impl Server {
    pub fn spawn(opts: Options<'_>) -> anyhow::Result<Self> {
        // Port 0 then release: a tiny race with other processes, acceptable for a bench.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        std::fs::create_dir_all(&opts.data_dir)?;
        let log = File::create(&opts.log)?;
        let mut cmd = Command::new(opts.bin);
        cmd.arg("--bind")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&opts.data_dir)
            .args(["--auth-strategy", "noauth"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(cfg) = opts.config_file {
            cmd.arg("--config-file").arg(cfg);
        }
        if let Some(n) = opts.workers {
            cmd.env("GLANCE__DEFAULT__WORKERS", n.to_string());
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", opts.bin.display()))?;
        Ok(Self {
            pid: child.id(),
            child,
            addr,
            data_dir: opts.data_dir,
            log: opts.log,
        })
    }

    /// Polls `GET /versions` until it answers 200, the process dies, or 60 s pass.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "server exited during startup ({status}); log tail:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(mut conn) = Conn::open(self.addr).await {
                if let Ok((200, _)) = conn.get_bytes("/versions").await {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "server not ready after 60 s; log tail:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `VmHWM` (peak resident set) in bytes.
    pub fn vm_hwm(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM:").map(|k| k * 1024)
    }

    pub fn cpu_meter(&self) -> CpuMeter {
        CpuMeter::start(self.pid)
    }

    /// Samples `VmRSS` every 50 ms on a thread until the returned guard is finished.
    pub fn sample_rss(&self) -> RssSampler {
        let pid = self.pid;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut max = 0u64;
            let mut samples = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(k) = proc_status_kib(pid, "VmRSS:") {
                    max = max.max(k * 1024);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (max, samples)
        });
        RssSampler { stop, handle }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM for a clean shutdown, SIGKILL if it lingers.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(u64, u64)>,
}

impl RssSampler {
    /// (max VmRSS in bytes, number of samples).
    pub fn finish(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or((0, 0))
    }
}

fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
