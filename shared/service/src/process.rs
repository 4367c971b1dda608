//! How a service binary runs, the same for each: its work on an actix system over a tokio
//! runtime, a broker connection that says what to do when it cannot be made, the control
//! plane announced once the process serves, and a re-execution when `glance-control ...
//! restart` asked for one.
//!
//! A binary's `main` reads its configuration and builds its service; [`run`] hosts it. A
//! process whose work is all workers (registry, scrubber, cache worker) ends in [`serve`];
//! one with an HTTP server (API, glare) announces itself with [`crate::start_control`] and
//! runs until its server stops.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use glance_bus::{Amqp, Transport};

use crate::{Identity, Lifecycle, Workers};

/// Runs `main` on an actix system whose tokio runtime has `threads` workers (`None`: one
/// per core), in small pages, then re-executes the binary if a restart was asked for.
pub fn run<F, Fut>(threads: Option<usize>, main: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    // Before the runtime's threads touch their first pages (see `memory`).
    crate::memory::keep_small_pages();
    actix_rt::System::with_tokio_rt(move || match threads {
        Some(threads) => crate::runtime(threads),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    })
    .block_on(main())?;
    crate::exec_if_restart_requested();
    Ok(())
}

/// A connection to the broker at `url` that takes at most `prefetch` unacknowledged
/// messages per consumer.
pub async fn connect(url: &str, prefetch: u16) -> anyhow::Result<Arc<dyn Transport>> {
    let amqp = Amqp::connect(url, prefetch)
        .await
        .with_context(|| format!("cannot reach the broker at {url} ([DEFAULT] transport_url)"))?;
    Ok(Arc::new(amqp))
}

/// Announces the process as `service` on the control plane, then waits until `workers` have
/// drained (after a `shutdown`, or when each has ended). Fails if a worker failed, so a
/// supervisor sees a failed process.
pub async fn serve(
    transport: Arc<dyn Transport>,
    service: &str,
    workers: Workers,
    lifecycle: Arc<dyn Lifecycle>,
) -> anyhow::Result<()> {
    crate::start_control(
        transport,
        Identity::new(service),
        workers.clone(),
        lifecycle,
    )
    .await?;
    workers.drained().await;
    tracing::info!(service, "stopped");
    workers.outcome()
}
