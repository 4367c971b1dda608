//! A listening socket that outlives `glance-control ... restart`.
//!
//! A restart drains the HTTP server and re-executes the binary in the same process. Were the
//! socket closed in between, clients would meet refused connections (or, behind a proxy such
//! as Docker's published ports, reset ones) for as long as the new image takes to start. So
//! the process keeps a duplicate of its listener that the server never closes, and hands it to
//! the new image as systemd's socket activation does (`LISTEN_FDS=1`, `LISTEN_PID`, fd 3):
//! connections that arrive meanwhile wait in the kernel's backlog and are served by the new
//! image. The same protocol lets systemd (or anything speaking it) pass a socket in.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

/// The first descriptor of the socket-activation protocol.
const LISTEN_FDS_START: i32 = 3;

static KEPT: OnceLock<OwnedFd> = OnceLock::new();

/// The listener passed in by socket activation (a restart of ours or systemd's), if any.
pub fn inherited() -> std::io::Result<Option<TcpListener>> {
    let listener = listenfd::ListenFd::from_env().take_tcp_listener(0)?;
    // Children (a `start`ed service, a re-exec) must not take it for theirs.
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDNAMES");
    Ok(listener)
}

/// `listener` if one was passed in, else `bind()`; either way kept open for a restart.
pub fn inherited_or(
    bind: impl FnOnce() -> std::io::Result<TcpListener>,
) -> std::io::Result<TcpListener> {
    let listener = match inherited()? {
        Some(l) => {
            tracing::info!(addr = ?l.local_addr().ok(), "listening on the socket handed over by the previous process");
            l
        }
        None => bind()?,
    };
    keep_for_restart(&listener)?;
    Ok(listener)
}

/// Keeps a duplicate of `listener` open until a restart hands it on.
pub fn keep_for_restart(listener: &TcpListener) -> std::io::Result<()> {
    let dup = listener.try_clone()?;
    let _ = KEPT.set(OwnedFd::from(dup));
    Ok(())
}

/// Puts the kept listener where the next image expects it; `None` when nothing was kept.
/// Called just before `exec`: the returned variables go to the new image's environment.
pub(crate) fn hand_over() -> Option<[(&'static str, String); 2]> {
    let fd = KEPT.get()?.as_raw_fd();
    // SAFETY: plain descriptor calls on a descriptor we own, made just before exec replaces
    // this image; whatever held fd 3 belonged to the image being replaced. dup2 leaves the
    // copy without close-on-exec, and fcntl clears the flag when it already is fd 3.
    let rc = unsafe {
        if fd == LISTEN_FDS_START {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, LISTEN_FDS_START)
        }
    };
    if rc < 0 {
        tracing::error!(error = %std::io::Error::last_os_error(), "cannot hand the listener over; the restart binds anew");
        return None;
    }
    Some([
        ("LISTEN_FDS", "1".to_owned()),
        // exec keeps the pid: the new image is the process the socket is meant for.
        ("LISTEN_PID", std::process::id().to_string()),
    ])
}
