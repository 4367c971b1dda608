//! Who used the CPU during a phase: the bench (the load client), the server, and everything
//! else on the machine (other builds competing for the same two cores).

use std::fmt;
use std::time::{Duration, Instant};

/// Snapshot of the three CPU clocks at the start of a phase.
pub struct CpuMeter {
    server_pid: u32,
    wall: Instant,
    client: Duration,
    server: Duration,
    machine: (Duration, Duration),
}

/// Average cores busy over a phase.
#[derive(Clone, Copy, Default)]
pub struct CpuShare {
    pub client: f64,
    pub server: f64,
    /// Interrupt and softirq time: with loopback TCP, mostly the network stack working for
    /// both ends, which the kernel charges to no process.
    pub irq: f64,
    /// Every other process on the machine.
    pub other: f64,
}

impl CpuMeter {
    pub fn start(server_pid: u32) -> Self {
        Self {
            server_pid,
            wall: Instant::now(),
            client: self_cpu(),
            server: process_cpu(server_pid).unwrap_or_default(),
            machine: machine_busy().unwrap_or_default(),
        }
    }

    /// A meter for phases without a server (pid 0 has no /proc entry, so it counts zero).
    pub fn bench_only() -> Self {
        Self::start(0)
    }

    pub fn stop(&self) -> CpuShare {
        let wall = self.wall.elapsed().as_secs_f64();
        let client = self_cpu().saturating_sub(self.client).as_secs_f64() / wall;
        let server = process_cpu(self.server_pid)
            .unwrap_or_default()
            .saturating_sub(self.server)
            .as_secs_f64()
            / wall;
        let (tasks, irq) = machine_busy().unwrap_or_default();
        let tasks = tasks.saturating_sub(self.machine.0).as_secs_f64() / wall;
        let irq = irq.saturating_sub(self.machine.1).as_secs_f64() / wall;
        CpuShare {
            client,
            server,
            irq,
            other: (tasks - client - server).max(0.0),
        }
    }
}

impl fmt::Display for CpuShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cores busy: client {:.2}, server {:.2}, irq/softirq {:.2}, other processes {:.2}",
            self.client, self.server, self.irq, self.other
        )
    }
}

fn ticks(n: u64) -> Duration {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(n as f64 / hz)
}

/// utime + stime of a process, from /proc/<pid>/stat.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ticks(utime + stime))
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
    Some((ticks(tasks), ticks(irq)))
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
