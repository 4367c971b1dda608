//! The daemon: two workers on the process's [`Workers`]. `scrub-jobs` consumes the scrub
//! queue; `scrub-wakeup` (with wakeups) every `wakeup_time` schedules the due images and
//! artifacts as scrub jobs and refreshes the backlog.
//!
//! A wakeup pass runs to its end before the next wait begins, so passes never overlap
//! however long one takes (Glance's daemon let them).

use glance_proto::scrub::{ScrubImage, SCRUB_KEY, SCRUB_QUEUE};
use glance_service::{Consumer, Periodic, Workers};

use crate::Scrubber;

/// Starts consuming scrub jobs and, if `wakeups`, the wakeup pass (the embedded mode
/// without delayed delete only needs the consumer, for data an immediate delete could not
/// remove). The queue is bound when this returns.
pub async fn start(
    scrubber: Scrubber,
    wakeups: bool,
    workers: &Workers,
) -> Result<(), glance_bus::BusError> {
    let transport = scrubber.bus.transport();
    // Declared before the first wakeup publishes to it.
    transport
        .declare_work_queue(SCRUB_QUEUE, &[SCRUB_KEY.to_owned()])
        .await?;
    let subscription = transport.subscribe(SCRUB_QUEUE).await?;
    let pool = scrubber.config.pool_size;
    tracing::info!(queue = SCRUB_QUEUE, pool, "scrubber consuming");
    let jobs = scrubber.clone();
    workers.spawn(Consumer::<ScrubImage>::new(
        "scrub-jobs",
        subscription,
        pool,
        move |job, _| {
            let scrubber = jobs.clone();
            async move { scrubber.scrub(&job).await }
        },
    ));
    if wakeups {
        let every = scrubber.config.wakeup_time;
        workers.spawn(Periodic::new("scrub-wakeup", every, move || {
            let scrubber = scrubber.clone();
            async move { scrubber.wake().await }
        }));
    }
    Ok(())
}

impl Scrubber {
    /// One wakeup: schedule what is due, then measure what is left.
    async fn wake(&self) {
        if let Err(e) = self.schedule_due().await {
            tracing::error!(error = %e, "could not schedule scrub jobs; retrying next wakeup");
        }
        if let Err(e) = self.refresh_backlog().await {
            tracing::warn!(error = %e, "could not measure the scrub backlog");
        }
    }
}
