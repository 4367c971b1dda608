//! Running `qemu-img` as Glance does: `info` under the limits of Glance's
//! `QEMU_IMG_PROC_LIMITS` (2 s of CPU, 1 GiB of address space), so a crafted header cannot
//! make it spin or balloon; `convert` without them (it works through the whole disk) but
//! killed if the import is abandoned. Both are child processes awaited by tokio, so no async
//! thread blocks on them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use glance_domain::DiskFormat;
use serde_json::Value;
use tokio::process::Command;

/// Glance's `QEMU_IMG_PROC_LIMITS`.
const INFO_CPU_SECONDS: u64 = 2;
const INFO_ADDRESS_SPACE: u64 = 1 << 30;
/// Wall-clock bound on `info` (its CPU is bounded, but it could wait on a slow disk).
const INFO_TIMEOUT: Duration = Duration::from_secs(30);

/// `qemu-img info -f FORMAT --output=json PATH`, parsed.
pub(super) async fn info(format: DiskFormat, path: &Path) -> Result<Value, String> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["info", "-f", format.as_str(), "--output=json"])
        .arg(path);
    limit(&mut cmd);
    let out = run(cmd, Some(INFO_TIMEOUT)).await?;
    serde_json::from_slice(&out).map_err(|e| format!("qemu-img info gave unreadable output: {e}"))
}

/// `qemu-img convert -f FROM -O TO SRC DEST`.
pub(super) async fn convert(
    from: DiskFormat,
    to: DiskFormat,
    src: &Path,
    dest: &Path,
) -> Result<(), String> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["convert", "-f", from.as_str(), "-O", to.as_str()])
        .arg(src)
        .arg(dest);
    run(cmd, None).await.map(|_| ())
}

/// Runs `cmd` to its end; its stdout, or why it failed. As Glance's `trycmd`, anything on
/// stderr is a failure.
async fn run(mut cmd: Command, timeout: Option<Duration>) -> Result<Vec<u8>, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run qemu-img: {e}"))?;
    let waited = child.wait_with_output();
    let out = match timeout {
        Some(limit) => tokio::time::timeout(limit, waited)
            .await
            .map_err(|_| format!("qemu-img did not finish within {}s", limit.as_secs()))?,
        None => waited.await,
    }
    .map_err(|e| format!("qemu-img failed: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        return Err(if stderr.is_empty() {
            format!("qemu-img failed ({})", out.status)
        } else {
            stderr
        });
    }
    if !stderr.is_empty() {
        return Err(stderr);
    }
    Ok(out.stdout)
}

/// Applies Glance's limits to the child before it runs qemu-img.
fn limit(cmd: &mut Command) {
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe and
    // touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            set(libc::RLIMIT_CPU, INFO_CPU_SECONDS)?;
            set(libc::RLIMIT_AS, INFO_ADDRESS_SPACE)
        });
    }
}

fn set(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: a valid rlimit for a valid resource.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
