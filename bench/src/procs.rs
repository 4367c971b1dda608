//! What /proc says about processes the bench did not start: their CPU clocks and parents,
//! which process listens on a TCP port, and how many clients are connected to one. Enough
//! to charge a phase's CPU to the broker and the database as well as to our own children.

use std::collections::HashMap;
use std::time::Duration;

/// The parts of `/proc/<pid>/stat` the CPU attribution needs.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime of the process itself.
    pub own: Duration,
    /// cutime + cstime: children it has already reaped. Counting these keeps a tree's total
    /// steady when a PostgreSQL backend exits mid-phase.
    pub reaped: Duration,
}

pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    Some(Stat {
        ppid: n(1)? as u32,
        own: ticks(n(11)? + n(12)?),
        reaped: ticks(n(13)? + n(14)?),
    })
}

pub fn ticks(n: u64) -> Duration {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(n as f64 / hz)
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process's stat, read in one pass.
pub fn all() -> HashMap<u32, Stat> {
    pids()
        .into_iter()
        .filter_map(|p| Some((p, stat(p)?)))
        .collect()
}

/// `roots` and all their descendants, each once.
pub fn tree(roots: &[u32], table: &HashMap<u32, Stat>) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, s) in table {
        children.entry(s.ppid).or_default().push(*pid);
    }
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(p) = stack.pop() {
        if seen.insert(p) {
            stack.extend(children.get(&p).into_iter().flatten());
        }
    }
    seen.into_iter().collect()
}

/// Processes whose command name (`/proc/<pid>/comm`) is `name`.
pub fn by_name(name: &str) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// TCP sockets of this network namespace, IPv4 and IPv6: (local port, remote port, state,
/// inode).
fn sockets() -> Vec<(u16, u16, u8, u64)> {
    let port = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                Some((
                    port(f.get(1)?)?,
                    port(f.get(2)?)?,
                    u8::from_str_radix(f.get(3)?, 16).ok()?,
                    f.get(9)?.parse().ok()?,
                ))
            })();
            out.extend(parsed);
        }
    }
    out
}

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;

/// The process listening on `port` (found through its socket's inode in `/proc/*/fd`; needs
/// the right to read other users' fds, which root has). None if the server is elsewhere.
pub fn listener(port: u16) -> Option<u32> {
    let inodes: Vec<String> = sockets()
        .into_iter()
        .filter(|s| s.0 == port && s.2 == TCP_LISTEN)
        .map(|s| format!("socket:[{}]", s.3))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    pids().into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| inodes.iter().any(|i| l.as_os_str() == i.as_str()))
            })
        })
    })
}

/// Client-side connections open to `port` on this host.
pub fn connections_to(port: u16) -> usize {
    sockets()
        .into_iter()
        .filter(|s| s.1 == port && s.2 == TCP_ESTABLISHED)
        .count()
}
