//! The daemon: a wakeup loop that every `wakeup_time` schedules the due images as scrub
//! jobs and refreshes the backlog, and the job consumer beside it.
//!
//! The loop awaits each run before it waits for the next tick, and missed ticks are
//! skipped, so runs never overlap however long one takes (Glance's daemon let them).

use std::sync::Arc;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::Scrubber;

/// A running scrubber: the job consumer, and (with wakeups) the wakeup loop.
pub struct Daemon {
    stop: watch::Sender<bool>,
    consumer: JoinHandle<()>,
    wakeups: Option<JoinHandle<()>>,
    nudge: Arc<Notify>,
}

impl Daemon {
    /// Starts consuming scrub jobs and, if `wakeups`, the wakeup loop (the embedded mode
    /// without delayed delete only needs the consumer, for data an immediate delete could
    /// not remove).
    pub async fn start(scrubber: Scrubber, wakeups: bool) -> Result<Daemon, glance_bus::BusError> {
        // Declared before the first wakeup publishes to it.
        scrubber
            .bus
            .transport()
            .declare_work_queue(
                glance_proto::scrub::SCRUB_QUEUE,
                &[glance_proto::scrub::SCRUB_KEY.to_owned()],
            )
            .await?;
        let (stop, stop_rx) = watch::channel(false);
        let consumer = {
            let scrubber = scrubber.clone();
            let stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                if let Err(e) = scrubber.consume(stop_rx).await {
                    tracing::error!(error = %e, "scrub job consumer failed");
                }
            })
        };
        let nudge = Arc::new(Notify::new());
        let wakeups = wakeups.then(|| tokio::spawn(wakeup_loop(scrubber, stop_rx, nudge.clone())));
        Ok(Daemon {
            stop,
            consumer,
            wakeups,
            nudge,
        })
    }

    /// Asks for a run now (ignored while a run is going: it is single-flight).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Waits until stopped and the jobs in hand are done.
    pub async fn run_until_stopped(self) {
        let _ = self.consumer.await;
        if let Some(wakeups) = self.wakeups {
            let _ = wakeups.await;
        }
    }
}

async fn wakeup_loop(scrubber: Scrubber, mut stop: watch::Receiver<bool>, nudge: Arc<Notify>) {
    let mut tick = tokio::time::interval(scrubber.config().wakeup_time);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = nudge.notified() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        }
        if let Err(e) = scrubber.schedule_due().await {
            tracing::error!(error = %e, "could not schedule scrub jobs; retrying next wakeup");
        }
        if let Err(e) = scrubber.refresh_backlog().await {
            tracing::warn!(error = %e, "could not measure the scrub backlog");
        }
    }
}

/// Stops a daemon: no new jobs are taken; those in hand finish.
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}
