//! The long-running worker: consume the node's prefetch queue, prune and clean on a timer,
//! answer `glance-control cache-worker ...`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use glance_bus::{consume_work, Bus, Outcome, Transport};
use glance_cache::{blocking, CacheSettings, ImageCache};
use glance_proto::cache::{queue_bindings, queue_name, Prefetch};
use glance_service::{InFlight, Lifecycle};
use tokio::sync::watch;

use crate::Fetcher;

/// Consumes this node's prefetch queue until `stop` turns true, with periodic pruning and
/// cleaning. Returns once the work in hand is finished.
pub async fn run(
    transport: Arc<dyn Transport>,
    fetcher: Fetcher,
    settings: CacheSettings,
    in_flight: InFlight,
    stop: watch::Receiver<bool>,
) -> Result<(), glance_bus::BusError> {
    let node = settings.node_id.clone();
    let queue = queue_name(&node);
    transport
        .declare_work_queue(&queue, &queue_bindings(&node))
        .await?;
    let sub = transport.subscribe(&queue).await?;
    tracing::info!(%queue, "cache worker consuming");
    spawn_maintenance(fetcher.cache.clone(), &settings, stop.clone());
    consume_work::<Prefetch, _, _>(
        sub,
        settings.worker_concurrency,
        stop,
        move |work, headers| {
            let fetcher = fetcher.clone();
            let in_flight = in_flight.clone();
            async move {
                let _guard = in_flight.enter();
                Outcome::from(fetcher.fetch(work.image_id, headers.request_id).await)
            }
        },
    )
    .await;
    Ok(())
}

/// Prunes every `prune_interval` and cleans every `clean_interval` (0 = never).
fn spawn_maintenance(cache: ImageCache, settings: &CacheSettings, stop: watch::Receiver<bool>) {
    let jobs: [(Duration, bool); 2] = [
        (settings.prune_interval, true),
        (settings.clean_interval, false),
    ];
    for (every, prune) in jobs {
        if every.is_zero() {
            continue;
        }
        let (cache, max, stall, mut stop) = (
            cache.clone(),
            settings.max_size,
            settings.stall_time,
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopped = async {
                    // A dropped sender (the embedded worker) never stops.
                    if stop.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped => return,
                }
                let cache = cache.clone();
                let result = blocking(move || {
                    if prune {
                        cache.prune(max).map(|r| format!("{r:?}"))
                    } else {
                        cache.clean(stall).map(|r| format!("{r:?}"))
                    }
                })
                .await;
                match result {
                    Ok(report) => tracing::debug!(%report, prune, "cache maintenance"),
                    Err(e) => tracing::warn!(error = %e, prune, "cache maintenance failed"),
                }
            }
        });
    }
}

/// Runs a worker inside the embedded all-in-one, on its in-process bus: queueing an image
/// fills the cache with no other process. Stops with the returned sender.
pub fn spawn_embedded(
    bus: Bus,
    store: Arc<dyn glance_store::Store>,
    cache: ImageCache,
    settings: CacheSettings,
) -> watch::Sender<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let fetcher = Fetcher {
        bus: bus.clone(),
        store,
        cache,
        rate_limit: settings.fetch_rate_limit,
    };
    let transport = bus.transport().clone();
    tokio::spawn(async move {
        if let Err(e) = run(transport, fetcher, settings, InFlight::default(), stop_rx).await {
            tracing::error!(error = %e, "embedded cache worker stopped");
        }
    });
    stop_tx
}

/// How `glance-control cache-worker ...` reaches a worker process.
pub struct WorkerLifecycle {
    pub cache: ImageCache,
    pub node: String,
    pub stop: watch::Sender<bool>,
}

impl Lifecycle for WorkerLifecycle {
    /// The node, its queue depth (images queued here, fetched or not yet) and the bytes
    /// its cache holds.
    fn detail(&self) -> BTreeMap<String, String> {
        let queued = self.cache.list_queued().map_or(0, |q| q.len());
        let bytes = self.cache.size().unwrap_or(0);
        BTreeMap::from([
            ("node".into(), self.node.clone()),
            ("queue_depth".into(), queued.to_string()),
            ("bytes_cached".into(), bytes.to_string()),
        ])
    }

    fn reload(&self) -> Result<String, String> {
        Ok("cache worker options take effect on restart".into())
    }

    fn shutdown(&self, graceful: bool) {
        let _ = self.stop.send(true);
        if !graceful {
            std::process::exit(0);
        }
    }
}
