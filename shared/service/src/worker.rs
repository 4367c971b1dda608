//! Background work in one shape. A [`Worker`] is a loop that runs until told to stop and
//! then finishes what it has in hand; [`Workers`] is a process's set of them: it starts
//! them, stops them all at once, waits for them to drain, counts the work in flight and
//! tells `glance-control status` how each one is.
//!
//! Every service runs its background work this way: the import worker and its stale-task
//! sweep, the upload sweep, the cache's consumers and its eviction listener, the scrubber's
//! consumer and wakeups, the registry's request loop and glare's blob sweep. Two kinds cover
//! nearly all of them: [`Consumer`] takes jobs from a work queue, [`Periodic`] runs a pass
//! on a timer.
//!
//! Workers are tokio tasks, not actors. Each is one long loop whose only input from the
//! rest of the process is "stop", which one watch channel says to all of them at once;
//! a mailbox per worker would add a hop and nothing else. The control plane, which does
//! take commands, is the actor ([`crate::ControlActor`]), and it holds a [`Workers`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use glance_bus::{consume_work, Outcome, Subscription};
use glance_proto::{Headers, Work};
use tokio::sync::{watch, Notify};

use crate::InFlight;

/// What a worker is given to run with.
pub struct WorkerContext {
    /// Turns true when the worker must stop taking work.
    pub stop: watch::Receiver<bool>,
    /// The process's count of work in progress; a worker holds a guard per job.
    pub in_flight: InFlight,
}

impl WorkerContext {
    pub fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once stop is asked for.
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }
}

/// A piece of a service's background work.
pub trait Worker: Send + 'static {
    /// What `glance-control status` calls it (unique within a process: repeats get `#2`...).
    fn name(&self) -> String;

    /// Works until `ctx.stop` turns true, then finishes the work in hand and returns. An
    /// error ends this worker only; it is logged and reported as `failed`.
    fn run(self: Box<Self>, ctx: WorkerContext) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// How a worker is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    Running,
    /// Returned after a stop (or its input ended).
    Finished,
    Failed(String),
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerState::Running => f.write_str("running"),
            WorkerState::Finished => f.write_str("finished"),
            WorkerState::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A process's workers (cheap to clone; every clone is the same set).
#[derive(Clone)]
pub struct Workers(Arc<Shared>);

struct Shared {
    stop: watch::Sender<bool>,
    in_flight: InFlight,
    states: Mutex<BTreeMap<String, WorkerState>>,
    /// How many workers have not returned yet.
    running: watch::Sender<usize>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::with_in_flight(InFlight::default())
    }
}

impl Workers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Workers whose jobs count in `in_flight`, a counter the process already reports (the
    /// API's requests, say), so `status` shows one figure for all its work.
    pub fn with_in_flight(in_flight: InFlight) -> Self {
        Self(Arc::new(Shared {
            stop: watch::channel(false).0,
            in_flight,
            states: Mutex::default(),
            running: watch::channel(0).0,
        }))
    }

    pub fn in_flight(&self) -> InFlight {
        self.0.in_flight.clone()
    }

    /// Starts `worker` on the current tokio runtime. One started after [`Workers::stop`]
    /// is told to stop at once.
    pub fn spawn(&self, worker: impl Worker) {
        let name = self.register(worker.name());
        let ctx = WorkerContext {
            stop: self.0.stop.subscribe(),
            in_flight: self.0.in_flight.clone(),
        };
        self.0.running.send_modify(|n| *n += 1);
        let shared = self.0.clone();
        let run = Box::new(worker).run(ctx);
        tokio::spawn(async move {
            // A panic ends the task, not the count: the guard reports it on unwinding.
            let mut guard = Finish {
                shared,
                name,
                state: WorkerState::Failed("panicked".into()),
            };
            guard.state = match run.await {
                Ok(()) => WorkerState::Finished,
                Err(e) => {
                    tracing::error!(worker = %guard.name, error = %format!("{e:#}"), "worker failed");
                    WorkerState::Failed(format!("{e:#}"))
                }
            };
        });
    }

    fn register(&self, name: String) -> String {
        let mut states = self.0.states.lock().expect("worker table");
        let mut unique = name.clone();
        let mut n = 1;
        while states.contains_key(&unique) {
            n += 1;
            unique = format!("{name}#{n}");
        }
        states.insert(unique.clone(), WorkerState::Running);
        unique
    }

    /// Tells every worker to stop taking work.
    pub fn stop(&self) {
        self.0.stop.send_replace(true);
    }

    /// Resolves once every worker has returned (at once if none runs).
    pub async fn drained(&self) {
        let mut running = self.0.running.subscribe();
        let _ = running.wait_for(|n| *n == 0).await;
    }

    /// After [`Workers::drained`], how the process should end: an error naming each worker
    /// that failed, so a supervisor sees a failed process and not a clean exit.
    pub fn outcome(&self) -> anyhow::Result<()> {
        let failed: Vec<String> = self
            .states()
            .into_iter()
            .filter_map(|(name, state)| match state {
                WorkerState::Failed(why) => Some(format!("{name}: {why}")),
                _ => None,
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("worker(s) failed: {}", failed.join("; "))
        }
    }

    /// Each worker and how it is.
    pub fn states(&self) -> BTreeMap<String, WorkerState> {
        self.0.states.lock().expect("worker table").clone()
    }

    /// The states as `status` detail: `worker.<name>` = `running`, `finished`, `failed: ..`.
    pub fn detail(&self) -> BTreeMap<String, String> {
        self.states()
            .into_iter()
            .map(|(name, state)| (format!("worker.{name}"), state.to_string()))
            .collect()
    }
}

/// Records how a worker ended, and that it did, even when it panicked.
struct Finish {
    shared: Arc<Shared>,
    name: String,
    state: WorkerState,
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Ok(mut states) = self.shared.states.lock() {
            states.insert(self.name.clone(), self.state.clone());
        }
        self.shared
            .running
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

type Handler<W> = Arc<dyn Fn(W, Headers) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// Takes `W` jobs from a work queue, `concurrency` at a time, each counted in flight, and
/// acknowledges, retries or dead-letters each by its [`Outcome`]. On stop it takes no more
/// (the broker hands the rest to other consumers) and returns once its jobs are done.
pub struct Consumer<W> {
    name: String,
    subscription: Box<dyn Subscription>,
    concurrency: usize,
    handler: Handler<W>,
}

impl<W: Work + Send + 'static> Consumer<W> {
    /// `subscription` is made by the caller, so the queue is bound before its start returns.
    pub fn new<F, Fut>(
        name: impl Into<String>,
        subscription: Box<dyn Subscription>,
        concurrency: usize,
        handler: F,
    ) -> Self
    where
        F: Fn(W, Headers) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        Self {
            name: name.into(),
            subscription,
            concurrency,
            handler: Arc::new(move |work, headers| Box::pin(handler(work, headers))),
        }
    }
}

impl<W: Work + Send + 'static> Worker for Consumer<W> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(self: Box<Self>, ctx: WorkerContext) -> BoxFuture<'static, anyhow::Result<()>> {
        let Consumer {
            name,
            subscription,
            concurrency,
            handler,
        } = *self;
        Box::pin(async move {
            tracing::info!(worker = %name, concurrency, "consuming");
            let in_flight = ctx.in_flight.clone();
            consume_work::<W, _, _>(subscription, concurrency, ctx.stop, move |work, headers| {
                let busy = in_flight.enter();
                let job = handler(work, headers);
                async move {
                    let _busy = busy;
                    job.await
                }
            })
            .await;
            tracing::info!(worker = %name, "stopped consuming");
            Ok(())
        })
    }
}

type Job = Box<dyn FnMut() -> BoxFuture<'static, ()> + Send>;

/// Runs a pass at start and then one interval after each pass ends, so passes never
/// overlap however long one takes. A stop ends the wait, never a pass.
pub struct Periodic {
    name: String,
    every: Box<dyn Fn() -> Duration + Send>,
    nudge: Option<Arc<Notify>>,
    first_after: Option<Duration>,
    job: Job,
}

impl Periodic {
    pub fn new<F, Fut>(name: impl Into<String>, every: Duration, mut job: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            name: name.into(),
            every: Box::new(move || every),
            nudge: None,
            first_after: None,
            job: Box::new(move || Box::pin(job())),
        }
    }

    /// The interval read before each wait, so a configuration reload applies.
    pub fn every_with(mut self, every: impl Fn() -> Duration + Send + 'static) -> Self {
        self.every = Box::new(every);
        self
    }

    /// A pass also runs when `nudge` is notified (one pass for any number of nudges during
    /// a pass).
    pub fn nudged_by(mut self, nudge: Arc<Notify>) -> Self {
        self.nudge = Some(nudge);
        self
    }

    /// The first pass waits `delay` instead of running at start.
    pub fn first_after(mut self, delay: Duration) -> Self {
        self.first_after = Some(delay);
        self
    }
}

impl Worker for Periodic {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(self: Box<Self>, mut ctx: WorkerContext) -> BoxFuture<'static, anyhow::Result<()>> {
        let Periodic {
            every,
            nudge,
            first_after,
            mut job,
            ..
        } = *self;
        let nudge = nudge.unwrap_or_default();
        Box::pin(async move {
            let mut wait = first_after;
            loop {
                if let Some(wait) = wait {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = nudge.notified() => {}
                        _ = ctx.stopped() => return Ok(()),
                    }
                }
                if ctx.is_stopping() {
                    return Ok(());
                }
                job().await;
                wait = Some(every());
            }
        })
    }
}

/// Any future that watches the stop signal itself, as a worker: for loops of their own
/// shape (a request server, an event listener).
pub struct Task<F> {
    name: String,
    start: F,
}

impl<F, Fut> Task<F>
where
    F: FnOnce(WorkerContext) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    pub fn new(name: impl Into<String>, start: F) -> Self {
        Self {
            name: name.into(),
            start,
        }
    }
}

impl<F, Fut> Worker for Task<F>
where
    F: FnOnce(WorkerContext) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(self: Box<Self>, ctx: WorkerContext) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin((self.start)(ctx))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use glance_bus::{Bus, InProcess, Transport};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Job(u32);

    impl Work for Job {
        const NAME: &'static str = "test.job";
    }

    fn counter() -> Arc<AtomicUsize> {
        Arc::default()
    }

    #[tokio::test]
    async fn a_stop_waits_for_the_jobs_in_hand_and_counts_them_in_flight() {
        let transport: Arc<dyn Transport> = Arc::new(InProcess::new());
        transport
            .declare_work_queue("test.q", &["test.job".to_owned()])
            .await
            .unwrap();
        let sub = transport.subscribe("test.q").await.unwrap();
        let (started, done) = (counter(), counter());
        let release = Arc::new(Notify::new());
        let workers = Workers::new();
        workers.spawn(Consumer::<Job>::new("jobs", sub, 2, {
            let (started, done, release) = (started.clone(), done.clone(), release.clone());
            move |_job, _| {
                let (started, done, release) = (started.clone(), done.clone(), release.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    done.fetch_add(1, Ordering::SeqCst);
                    Outcome::Done
                }
            }
        }));
        let bus = Bus::new(transport.clone());
        bus.publish_work("test.job", None, &Job(1)).await.unwrap();
        bus.publish_work("test.job", None, &Job(2)).await.unwrap();
        while started.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(workers.in_flight().get(), 2);

        workers.stop();
        let drained = workers.drained();
        tokio::pin!(drained);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut drained)
                .await
                .is_err(),
            "drained with two jobs still running"
        );
        release.notify_waiters();
        drained.await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert_eq!(workers.in_flight().get(), 0);
        assert_eq!(workers.states()["jobs"], WorkerState::Finished);
    }

    #[tokio::test]
    async fn a_periodic_pass_runs_at_start_on_a_nudge_and_never_after_a_stop() {
        let passes = counter();
        let nudge = Arc::new(Notify::new());
        let workers = Workers::new();
        workers.spawn(
            Periodic::new("tick", Duration::from_secs(3600), {
                let passes = passes.clone();
                move || {
                    let passes = passes.clone();
                    async move {
                        passes.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
            .nudged_by(nudge.clone()),
        );
        while passes.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        nudge.notify_one();
        while passes.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        workers.stop();
        workers.drained().await;
        nudge.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 2);
        assert_eq!(workers.detail()["worker.tick"], "finished");
    }

    #[tokio::test]
    async fn a_failed_or_panicked_worker_is_reported_and_does_not_hold_the_drain() {
        let workers = Workers::new();
        workers.spawn(Task::new("broken", |_| async {
            anyhow::bail!("the disk is gone")
        }));
        workers.spawn(Task::new("broken", |_| async { panic!("a bug") }));
        workers.spawn(Task::new("waits", |mut ctx: WorkerContext| async move {
            ctx.stopped().await;
            Ok(())
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let states = workers.states();
        assert_eq!(
            states["broken"],
            WorkerState::Failed("the disk is gone".into())
        );
        assert_eq!(states["broken#2"], WorkerState::Failed("panicked".into()));
        assert_eq!(states["waits"], WorkerState::Running);
        workers.stop();
        workers.drained().await;
        assert_eq!(workers.states()["waits"], WorkerState::Finished);
        let outcome = workers.outcome().unwrap_err().to_string();
        assert!(outcome.contains("broken: the disk is gone"), "{outcome}");
    }

    #[tokio::test]
    async fn a_worker_started_after_the_stop_stops_at_once() {
        let workers = Workers::new();
        workers.stop();
        let passes = counter();
        workers.spawn(Periodic::new("late", Duration::from_secs(1), {
            let passes = passes.clone();
            move || {
                let passes = passes.clone();
                async move {
                    passes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
        workers.drained().await;
        assert_eq!(passes.load(Ordering::SeqCst), 0);
    }
}
