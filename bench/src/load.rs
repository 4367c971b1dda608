//! Closed-loop load: N keep-alive connections, each sending its next request as soon as the
//! previous answer is drained, until the time or the request budget runs out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::Method;

use crate::cpu::{CpuMeter, CpuShare, Watched};
use crate::http::{self, Conn};

pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Sorted, microseconds.
    pub latencies_us: Vec<u32>,
    pub cpu: CpuShare,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        (self.requests - self.errors) as f64 / self.elapsed.as_secs_f64()
    }

    /// Client CPU per request, in microseconds: what the load generator itself costs.
    pub fn client_us_per_request(&self) -> f64 {
        self.cpu.client * self.elapsed.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    pub fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = (self.latencies_us.len() * p / 100).min(self.latencies_us.len() - 1);
        self.latencies_us[i] as f64 / 1000.0
    }
}

pub struct Load {
    pub addr: SocketAddr,
    /// The server processes this load's CPU is charged to.
    pub watched: Watched,
    pub concurrency: usize,
    pub duration: Duration,
    pub max_requests: u64,
    /// Sent with every request.
    pub headers: Vec<(String, String)>,
}

impl Load {
    /// GETs `path` over and over; success is `expect_status` with the body drained.
    pub async fn get(&self, path: &str, expect_status: u16) -> anyhow::Result<LoadResult> {
        // Connect and warm every connection before the clock starts.
        let mut conns = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            let mut c = Conn::open_with(self.addr, self.headers.clone()).await?;
            let (status, body) = c.get_bytes(path).await?;
            anyhow::ensure!(
                status == expect_status,
                "warm-up GET {path} -> {status}: {}",
                http::snippet(&body)
            );
            conns.push(c);
        }
        let issued = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let first_error: Arc<Mutex<Option<String>>> = Arc::default();
        let path: Arc<str> = path.into();
        let meter = CpuMeter::start(&self.watched);
        let start = Instant::now();
        let deadline = start + self.duration;
        let mut tasks = Vec::new();
        for mut conn in conns {
            let (issued, errors, first_error, path) = (
                issued.clone(),
                errors.clone(),
                first_error.clone(),
                path.clone(),
            );
            let max = self.max_requests;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                loop {
                    let t0 = Instant::now();
                    if t0 >= deadline || issued.fetch_add(1, Ordering::Relaxed) >= max {
                        break;
                    }
                    let outcome = async {
                        let resp = conn.send(Method::GET, &path, None, http::empty()).await?;
                        let status = resp.status().as_u16();
                        if status != expect_status {
                            let body = http_body_util::BodyExt::collect(resp.into_body()).await?;
                            anyhow::bail!("{status}: {}", http::snippet(&body.to_bytes()));
                        }
                        http::drain(resp.into_body()).await
                    }
                    .await;
                    match outcome {
                        Ok(_) => lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(format!("{e:#}"));
                            // The connection may be gone; a fresh one keeps the client count.
                            match Conn::open_with(conn.addr(), conn.headers().to_vec()).await {
                                Ok(c) => conn = c,
                                Err(_) => break,
                            }
                        }
                    }
                }
                lat
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await?);
        }
        let elapsed = start.elapsed();
        let cpu = meter.stop();
        latencies.sort_unstable();
        let errors = errors.load(Ordering::Relaxed);
        let first_error = first_error.lock().unwrap().take();
        Ok(LoadResult {
            requests: latencies.len() as u64 + errors,
            errors,
            first_error,
            elapsed,
            latencies_us: latencies,
            cpu,
        })
    }
}

pub struct Creates {
    /// Ids by create index.
    pub ids: Vec<Option<String>>,
    pub errors: Vec<String>,
    pub elapsed: Duration,
    pub cpu: CpuShare,
}

/// `count` image creates (`bench-<i % 100>`, tag `t1`) from `concurrency` keep-alive clients.
pub async fn create_images(
    addr: SocketAddr,
    watched: &Watched,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Creates> {
    let next = Arc::new(AtomicUsize::new(0));
    let ids: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; count]));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut conns = Vec::new();
    for _ in 0..concurrency {
        conns.push(Conn::open(addr).await?);
    }
    let meter = CpuMeter::start(watched);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (next, ids, errors) = (next.clone(), ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let body = serde_json::json!({
                    "name": format!("bench-{}", i % 100),
                    "disk_format": "raw",
                    "container_format": "bare",
                    "tags": ["t1"],
                });
                match conn.post_json("/v2/images", &body).await {
                    Ok((201, bytes)) => match serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned))
                    {
                        Some(id) => ids.lock().unwrap()[i] = Some(id),
                        None => errors.lock().unwrap().push(format!(
                            "create {i}: 201 without id: {}",
                            http::snippet(&bytes)
                        )),
                    },
                    Ok((status, bytes)) => errors
                        .lock()
                        .unwrap()
                        .push(format!("create {i}: {status}: {}", http::snippet(&bytes))),
                    Err(e) => {
                        errors.lock().unwrap().push(format!("create {i}: {e:#}"));
                        match Conn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.context("create task panicked")?;
    }
    let elapsed = start.elapsed();
    let cpu = meter.stop();
    let ids = std::mem::take(&mut *ids.lock().unwrap());
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    Ok(Creates {
        ids,
        errors,
        elapsed,
        cpu,
    })
}
