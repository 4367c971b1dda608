//! Who used the CPU during a phase: the bench (the load client), each watched group of
//! server processes, and everything else on the machine (other builds competing for the same
//! two cores).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::procs;

/// A named set of processes whose CPU is charged to one column: some root pids and, for a
/// server we did not start (RabbitMQ, PostgreSQL), all their descendants.
pub struct Group {
    pub name: String,
    roots: Mutex<Vec<u32>>,
    tree: bool,
}

impl Group {
    /// Just these pids.
    pub fn pids(name: impl Into<String>, roots: Vec<u32>) -> Self {
        Self {
            name: name.into(),
            roots: Mutex::new(roots),
            tree: false,
        }
    }

    /// These pids and every descendant, including children that exit during a phase.
    pub fn tree(name: impl Into<String>, roots: Vec<u32>) -> Self {
        Self {
            tree: true,
            ..Self::pids(name, roots)
        }
    }

    /// For processes started mid-run (a second registry); phases that started before see it
    /// from their next snapshot.
    pub fn add(&self, pid: u32) {
        self.roots.lock().unwrap().push(pid);
    }
}

/// The groups a run watches; cheap to clone into every load.
#[derive(Clone, Default)]
pub struct Watched(Arc<Vec<Group>>);

impl Watched {
    pub fn new(groups: Vec<Group>) -> Self {
        Self(Arc::new(groups))
    }

    /// One process called `name` (the all-in-one server).
    pub fn single(name: &str, pid: u32) -> Self {
        Self::new(vec![Group::pids(name, vec![pid])])
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.0.iter().find(|g| g.name == name)
    }

    /// CPU time of each group so far, in group order.
    fn snapshot(&self) -> Vec<Duration> {
        let table = self.0.iter().any(|g| g.tree).then(procs::all);
        self.0
            .iter()
            .map(|g| {
                let roots = g.roots.lock().unwrap().clone();
                match &table {
                    Some(t) if g.tree => procs::tree(&roots, t)
                        .iter()
                        .filter_map(|p| t.get(p))
                        .map(|s| s.own + s.reaped)
                        .sum(),
                    _ => roots
                        .iter()
                        .filter_map(|p| procs::stat(*p))
                        .map(|s| s.own)
                        .sum(),
                }
            })
            .collect()
    }
}

/// Snapshot of the clocks at the start of a phase.
pub struct CpuMeter {
    watched: Watched,
    wall: Instant,
    client: Duration,
    groups: Vec<Duration>,
    machine: (Duration, Duration),
}

/// Average cores busy over a phase.
#[derive(Clone, Default)]
pub struct CpuShare {
    pub client: f64,
    /// All watched groups together.
    pub server: f64,
    /// Each watched group: (name, cores).
    pub parts: Vec<(String, f64)>,
    /// Interrupt and softirq time: with loopback TCP, mostly the network stack working for
    /// both ends, which the kernel charges to no process.
    pub irq: f64,
    /// Every other process on the machine.
    pub other: f64,
}

impl CpuMeter {
    pub fn start(watched: &Watched) -> Self {
        Self {
            watched: watched.clone(),
            wall: Instant::now(),
            client: self_cpu(),
            groups: watched.snapshot(),
            machine: machine_busy().unwrap_or_default(),
        }
    }

    /// A meter for phases without a server.
    pub fn bench_only() -> Self {
        Self::start(&Watched::default())
    }

    pub fn stop(&self) -> CpuShare {
        let wall = self.wall.elapsed().as_secs_f64();
        let client = self_cpu().saturating_sub(self.client).as_secs_f64() / wall;
        let parts: Vec<(String, f64)> = self
            .watched
            .0
            .iter()
            .zip(self.watched.snapshot())
            .zip(&self.groups)
            .map(|((g, now), then)| {
                (
                    g.name.clone(),
                    now.saturating_sub(*then).as_secs_f64() / wall,
                )
            })
            .collect();
        let server = parts.iter().map(|p| p.1).sum::<f64>();
        let (tasks, irq) = machine_busy().unwrap_or_default();
        let tasks = tasks.saturating_sub(self.machine.0).as_secs_f64() / wall;
        let irq = irq.saturating_sub(self.machine.1).as_secs_f64() / wall;
        CpuShare {
            client,
            server,
            parts,
            irq,
            other: (tasks - client - server).max(0.0),
        }
    }
}

impl CpuShare {
    pub fn part(&self, name: &str) -> f64 {
        self.parts.iter().find(|p| p.0 == name).map_or(0.0, |p| p.1)
    }
}

impl fmt::Display for CpuShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cores busy: client {:.2}, server {:.2}",
            self.client, self.server
        )?;
        if self.parts.len() > 1 {
            let parts: Vec<String> = self
                .parts
                .iter()
                .map(|(n, c)| format!("{n} {c:.2}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        write!(
            f,
            ", irq/softirq {:.2}, other processes {:.2}",
            self.irq, self.other
        )
    }
}

/// Busy time of all cores together, from the `cpu` line of /proc/stat: (time in tasks,
/// time in irq and softirq).
fn machine_busy() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let tasks = v.first()? + v.get(1)? + v.get(2)? + v.get(7).unwrap_or(&0);
    let irq = v.get(5)? + v.get(6)?;
    Some((procs::ticks(tasks), procs::ticks(irq)))
}

/// CPU time of this bench process (all threads): the load client's own cost.
pub fn self_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
