//! The server under test: built with cargo, spawned fresh on a free port with its own data
//! dir (so its VmHWM belongs to this run alone), watched through /proc, killed on drop; and
//! the plain child processes the mesh mode starts.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::workspace;
use crate::cpu::{CpuMeter, Watched};
use crate::http::Conn;

/// `cargo build --release --bin <each of bins>` in the workspace, output passed through.
pub fn build(bins: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec!["build", "--release"];
    for b in bins {
        args.extend(["--bin", b]);
    }
    eprintln!("building: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(&args)
        .current_dir(workspace())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// A child of the bench with its output in a log file; SIGTERM, then SIGKILL, on drop.
pub struct Process {
    child: Child,
    pub pid: u32,
    pub name: String,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let name = name.into();
        let file = File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            pid: child.id(),
            child,
            name,
            log,
        })
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails if the process has exited, quoting its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); log tail:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Waits until the log contains `needle` (a readiness line), the process dies, or
    /// `timeout` passes.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.ensure_running()?;
            if std::fs::read_to_string(&self.log).is_ok_and(|t| t.contains(needle)) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "{} did not log \"{needle}\" within {} s; log tail:\n{}",
                    self.name,
                    timeout.as_secs(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM without waiting, so several processes can shut down at once before their drops
    /// wait for them.
    pub fn terminate(&self) {
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGTERM for a clean shutdown, SIGKILL if it lingers.
        self.terminate();
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

/// A free loopback port: bind port 0, then release it. A tiny race with other processes,
/// acceptable for a bench.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(([127, 0, 0, 1], port).into())
}

/// An HTTP server under test: the all-in-one, or the API of the mesh.
pub struct Server {
    process: Process,
    watched: Watched,
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
        let addr = free_addr()?;
        std::fs::create_dir_all(&opts.data_dir)?;
        let mut cmd = Command::new(opts.bin);
        cmd.arg("--bind")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&opts.data_dir)
            .args(["--auth-strategy", "noauth"]);
        if let Some(cfg) = opts.config_file {
            cmd.arg("--config-file").arg(cfg);
        }
        if let Some(n) = opts.workers {
            cmd.env("GLANCE__DEFAULT__WORKERS", n.to_string());
        }
        let process = Process::spawn("server", cmd, opts.log)?;
        let watched = Watched::single("server", process.pid);
        Ok(Self::from_process(process, addr, opts.data_dir, watched))
    }

    /// A server started by the caller, listening on `addr`; `watched` is what its phases
    /// charge CPU to.
    pub fn from_process(
        process: Process,
        addr: SocketAddr,
        data_dir: PathBuf,
        watched: Watched,
    ) -> Self {
        Self {
            pid: process.pid,
            log: process.log.clone(),
            process,
            watched,
            addr,
            data_dir,
        }
    }

    /// Polls `GET /versions` until it answers 200, the process dies, or 60 s pass.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.process
                .ensure_running()
                .context("server exited during startup")?;
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
        self.process.is_alive()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// `VmHWM` (peak resident set) in bytes.
    pub fn vm_hwm(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmHWM:").map(|k| k * 1024)
    }

    pub fn watched(&self) -> Watched {
        self.watched.clone()
    }

    pub fn cpu_meter(&self) -> CpuMeter {
        CpuMeter::start(&self.watched)
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
