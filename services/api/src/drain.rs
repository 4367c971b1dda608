//! Draining the HTTP server for `glance-control api shutdown|restart` without dropping a
//! request.
//!
//! actix-web's own graceful stop is not enough for a restart that hands its listening socket
//! to the next image (`glance_service::listener`). It announces the drain to every connection
//! *before* its accept loop has stopped, and a connection it accepts in between (or one still
//! queued for a worker) is closed without its request being read: the client sees the
//! connection close with no response, an error it cannot tell from a crash and must not retry.
//! So a drain here goes in three steps:
//!
//! 1. Pause the accept loop. Connections that arrive from now on wait in the kernel's backlog
//!    of the listening socket, which the next image (after a restart) accepts from.
//! 2. Wait until every connection already accepted has begun its request. The accept loop takes
//!    the pause on its own thread and a worker picks an accepted connection up on another, so
//!    the wait lasts at least [`SETTLE`]; a connection that sends nothing is answered 408 by
//!    actix after `client_request_timeout` anyway, which bounds the wait.
//! 3. Stop gracefully: requests in flight finish (their responses say `Connection: close`) and
//!    idle keep-alive connections are closed at once, so the stop takes as long as the longest
//!    request in flight, not a keep-alive timeout.
//!
//! Connections are counted by [`Connections`]: [`Connections::on_connect`] puts a [`Conn`] in
//! each connection's data (dropped with the connection), and [`mark_started`] marks the
//! connection's first request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// How long after pausing the accept loop a drain waits at least, so a connection accepted
/// just before the pause has reached a worker and been counted.
pub const SETTLE: Duration = Duration::from_millis(250);

/// The longest a drain waits for accepted connections to begin their request: actix's
/// default `client_request_timeout` (5 s, after which it answers 408) and a margin.
pub const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(6);

/// The HTTP server's open connections, and how many of them have not begun a request yet.
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    open: AtomicUsize,
    unstarted: AtomicUsize,
}

/// One connection, in its connection data: counted while it is open, and as unstarted until
/// its first request.
#[derive(Debug)]
pub struct Conn {
    counts: Arc<Counts>,
    unstarted: AtomicBool,
}

impl Conn {
    fn start(&self) {
        if self.unstarted.swap(false, Ordering::AcqRel) {
            self.counts.unstarted.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.start();
        self.counts.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// For `HttpServer::on_connect`: counts the new connection.
    pub fn on_connect(&self) -> impl Fn(&dyn std::any::Any, &mut Extensions) + Send + Sync {
        let counts = self.0.clone();
        move |_, ext| {
            counts.open.fetch_add(1, Ordering::AcqRel);
            counts.unstarted.fetch_add(1, Ordering::AcqRel);
            ext.insert(Conn {
                counts: counts.clone(),
                unstarted: AtomicBool::new(true),
            });
        }
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.0.open.load(Ordering::Acquire)
    }

    /// Open connections that have not begun a request.
    pub fn unstarted(&self) -> usize {
        self.0.unstarted.load(Ordering::Acquire)
    }
}

/// Middleware (`from_fn`): marks the request's connection as started.
pub async fn mark_started(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(conn) = req.conn_data::<Conn>() {
        conn.start();
    }
    next.call(req).await
}

/// Stops `server` as the module says: with `graceful`, pause, wait for accepted connections
/// to begin their request, then stop gracefully; without, stop at once.
pub async fn stop(server: ServerHandle, connections: Connections, graceful: bool) {
    if !graceful {
        server.stop(false).await;
        return;
    }
    let started = Instant::now();
    server.pause().await;
    actix_web::rt::time::sleep(SETTLE).await;
    while connections.unstarted() > 0 && started.elapsed() < SETTLE + FIRST_REQUEST_WAIT {
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!(
        open = connections.open(),
        unstarted = connections.unstarted(),
        waited_ms = started.elapsed().as_millis() as u64,
        "no longer accepting; finishing requests in flight and closing idle connections"
    );
    // What follows the stop (the process exits or re-executes) is the rest of the log.
    server.stop(true).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_as_unstarted_until_its_first_request_and_open_until_dropped() {
        let connections = Connections::default();
        let mut ext = Extensions::new();
        (connections.on_connect())(&(), &mut ext);
        assert_eq!((connections.open(), connections.unstarted()), (1, 1));
        let conn = ext.get::<Conn>().unwrap();
        conn.start();
        conn.start();
        assert_eq!((connections.open(), connections.unstarted()), (1, 0));
        drop(ext);
        assert_eq!((connections.open(), connections.unstarted()), (0, 0));
    }

    #[test]
    fn a_connection_closed_before_any_request_is_no_longer_unstarted() {
        let connections = Connections::default();
        let mut ext = Extensions::new();
        (connections.on_connect())(&(), &mut ext);
        drop(ext);
        assert_eq!((connections.open(), connections.unstarted()), (0, 0));
    }
}
