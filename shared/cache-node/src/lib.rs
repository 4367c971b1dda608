//! A node's image cache as the API process drives it: the node's durable prefetch queue and
//! the requests published to its cache workers, and the node's listeners, which run on the
//! API's worker runtime: `cache-eviction` drops entries that other nodes' notifications
//! make wrong, `cache-who-has` answers "which nodes hold this image?". The HTTP routes over
//! it stay in the API (`services/api/src/cache`).

mod eviction;

use std::sync::Arc;
use std::time::Duration;

use glance_bus::{Bus, BusError};
use glance_cache::{blocking, CacheSettings, ImageCache};
use glance_domain::ImageId;
use glance_proto::cache::{
    prefetch_key, queue_bindings, queue_name, Holding, Prefetch, WhoHas, NODES_TOPIC,
    PREFETCH_ALL_KEY,
};
use glance_proto::Envelope;

/// How long [`NodeCache::holders`] waits for nodes to answer.
const NODES_WINDOW: Duration = Duration::from_secs(1);
use glance_service::{Task, Worker, WorkerContext, Workers};

pub use eviction::EVICTING_EVENTS;

/// Why a prefetch request was not queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The cache directory would not record the request.
    #[error("image cache: {0}")]
    Cache(std::io::Error),
    /// The request could not be published to the node's workers.
    #[error(transparent)]
    Bus(BusError),
}

/// The cache of this API node and its way to the node's workers.
pub struct NodeCache {
    pub cache: ImageCache,
    pub settings: CacheSettings,
    bus: Bus,
    declared: tokio::sync::OnceCell<()>,
}

impl NodeCache {
    /// Opens the cache directory if one is configured.
    pub fn open(settings: &CacheSettings, bus: Bus) -> std::io::Result<Option<Arc<Self>>> {
        let Some(dir) = &settings.dir else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Self {
            cache: ImageCache::open(dir)?,
            settings: settings.clone(),
            bus,
            declared: tokio::sync::OnceCell::new(),
        })))
    }

    pub fn node_id(&self) -> &str {
        &self.settings.node_id
    }

    /// Declares this node's durable prefetch queue (once per process): requests wait there
    /// for a worker even when none is running yet.
    pub async fn ensure_queue(&self) -> Result<(), BusError> {
        self.declared
            .get_or_try_init(|| async {
                let node = self.node_id();
                self.bus
                    .transport()
                    .declare_work_queue(&queue_name(node), &queue_bindings(node))
                    .await
            })
            .await
            .map(|_| ())
    }

    /// Asks this node's workers (or every node's, with `all_nodes`) to fetch `id`.
    pub async fn request_prefetch(
        &self,
        id: ImageId,
        all_nodes: bool,
        request_id: &str,
    ) -> Result<(), BusError> {
        self.ensure_queue().await?;
        let key = if all_nodes {
            PREFETCH_ALL_KEY.to_owned()
        } else {
            prefetch_key(self.node_id())
        };
        self.bus
            .publish_work(
                &key,
                Some(request_id.to_owned()),
                &Prefetch { image_id: id },
            )
            .await
    }

    /// Queues `id` here and asks the workers for it. As in Glance, a request for an image
    /// already queued is sent again (a message may have been dead-lettered); one already
    /// cached is not, unless the whole fleet is asked.
    pub async fn enqueue(
        &self,
        id: ImageId,
        all_nodes: bool,
        request_id: &str,
    ) -> Result<(), EnqueueError> {
        let cache = self.cache.clone();
        let (cached, newly_queued) = blocking(move || -> std::io::Result<(bool, bool)> {
            if cache.is_cached(id) {
                return Ok((true, false));
            }
            Ok((false, cache.queue(id)?))
        })
        .await
        .map_err(EnqueueError::Cache)?;
        if cached && !all_nodes {
            return Ok(());
        }
        if let Err(e) = self.request_prefetch(id, all_nodes, request_id).await {
            if newly_queued {
                let cache = self.cache.clone();
                let _ = blocking(move || cache.delete_queued(id)).await;
            }
            return Err(EnqueueError::Bus(e));
        }
        Ok(())
    }

    /// The nodes whose caches hold `id`, as many as answer within a second (Glance's
    /// `GET /v2/cache/nodes/{id}`), sorted.
    pub async fn holders(&self, id: ImageId, request_id: &str) -> Result<Vec<String>, BusError> {
        let request = Envelope::new(
            WhoHas::KIND,
            Some(request_id.to_owned()),
            &WhoHas { image_id: id },
        )
        .map_err(|e| BusError::Malformed(e.to_string()))?;
        let replies = self
            .bus
            .transport()
            .scatter(NODES_TOPIC, request, NODES_WINDOW)
            .await?;
        let mut holders: Vec<String> = replies
            .into_iter()
            .filter_map(|r| serde_json::from_value::<Holding>(r.payload).ok())
            .filter(|h| h.cached)
            .map(|h| h.node)
            .collect();
        holders.sort();
        holders.dedup();
        Ok(holders)
    }

    /// Starts what runs for the life of the node: the prefetch queue, and on `workers` the
    /// `cache-eviction` listener (other nodes' notifications) and the `cache-who-has` one.
    pub async fn start(self: Arc<Self>, workers: &Workers) -> Result<(), BusError> {
        self.ensure_queue().await?;
        workers.spawn(eviction::listener(self.clone()).await?);
        workers.spawn(eviction::who_has_responder(self).await?);
        Ok(())
    }

    /// The `cache-start` worker: [`NodeCache::start`], retried while the bus is down. It
    /// finishes once the node's listeners run.
    pub fn starter(self: Arc<Self>, workers: Workers) -> impl Worker {
        Task::new("cache-start", move |mut ctx: WorkerContext| async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match self.clone().start(&workers).await {
                    Ok(()) => {
                        tracing::info!(node = self.node_id(), "image cache node started");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "image cache node could not start; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = ctx.stopped() => return Ok(()),
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
    }
}
