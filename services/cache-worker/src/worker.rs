//! The long-running worker: consume the node's prefetch queue, prune and clean on a timer,
//! answer `glance-control cache-worker ...`.

use std::collections::BTreeMap;
use std::sync::Arc;

use glance_bus::{Bus, Outcome, Transport};
use glance_cache::{blocking, CacheSettings, ImageCache};
use glance_proto::cache::{queue_bindings, queue_name, Prefetch};
use glance_service::{Consumer, Lifecycle, Periodic, Workers};

use crate::Fetcher;

/// Starts this node's workers on `workers`: `cache-prefetch` consumes the node's prefetch
/// queue (bound when this returns); `cache-prune` and `cache-clean` run every
/// `prune_interval` and `clean_interval` (0 = never).
pub async fn start(
    transport: Arc<dyn Transport>,
    fetcher: Fetcher,
    settings: &CacheSettings,
    workers: &Workers,
) -> Result<(), glance_bus::BusError> {
    let node = &settings.node_id;
    let queue = queue_name(node);
    transport
        .declare_work_queue(&queue, &queue_bindings(node))
        .await?;
    let subscription = transport.subscribe(&queue).await?;
    tracing::info!(%queue, "cache worker consuming");
    let cache = fetcher.cache.clone();
    workers.spawn(Consumer::<Prefetch>::new(
        "cache-prefetch",
        subscription,
        settings.worker_concurrency,
        move |work, headers| {
            let fetcher = fetcher.clone();
            async move { Outcome::from(fetcher.fetch(work.image_id, headers.request_id).await) }
        },
    ));
    let (max, stall) = (settings.max_size, settings.stall_time);
    if !settings.prune_interval.is_zero() {
        let cache = cache.clone();
        workers.spawn(Periodic::new(
            "cache-prune",
            settings.prune_interval,
            move || {
                maintain(cache.clone(), "prune", move |c| {
                    c.prune(max).map(|r| format!("{r:?}"))
                })
            },
        ));
    }
    if !settings.clean_interval.is_zero() {
        workers.spawn(Periodic::new(
            "cache-clean",
            settings.clean_interval,
            move || {
                maintain(cache.clone(), "clean", move |c| {
                    c.clean(stall).map(|r| format!("{r:?}"))
                })
            },
        ));
    }
    Ok(())
}

/// One pruning or cleaning pass, off the async threads; what it did is logged.
async fn maintain(
    cache: ImageCache,
    what: &'static str,
    pass: impl FnOnce(&ImageCache) -> std::io::Result<String> + Send + 'static,
) {
    match blocking(move || pass(&cache)).await {
        Ok(report) => tracing::debug!(%report, what, "cache maintenance"),
        Err(e) => tracing::warn!(error = %e, what, "cache maintenance failed"),
    }
}

/// A worker inside the embedded all-in-one, on its in-process bus: queueing an image fills
/// the cache with no other process.
pub async fn start_embedded(
    bus: Bus,
    store: Arc<dyn glance_store::Store>,
    cache: ImageCache,
    settings: &CacheSettings,
    workers: &Workers,
) -> Result<(), glance_bus::BusError> {
    let transport = bus.transport().clone();
    let fetcher = Fetcher::new(bus, store, cache, settings);
    start(transport, fetcher, settings, workers).await
}

/// How `glance-control cache-worker ...` reaches a worker process.
pub struct WorkerLifecycle {
    pub cache: ImageCache,
    pub node: String,
    pub workers: Workers,
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
        self.workers.stop();
        if !graceful {
            std::process::exit(0);
        }
    }
}
