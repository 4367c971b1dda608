//! This node's image cache, as the API sees it: the `/v2/cache` routes and Glance's older
//! `/v2/cached_images` and `/v2/queued_images` ones, serving hits and teeing misses on
//! download (see `data::download`), prefetch requests published to the node's cache workers,
//! eviction when other nodes delete or change an image, and the answer to "which nodes hold
//! this image?".
//!
//! Every call acts on the node that received it, as in Glance; prefetch may name the whole
//! fleet (`cache.prefetch.all`).

mod eviction;
mod handlers;
mod legacy;
mod serve;

pub use serve::{serve_hit, start_tee};

use std::sync::Arc;
use std::time::Duration;

use glance_bus::{Bus, BusError};
use glance_cache::{blocking, CacheSettings, ImageCache};
use glance_domain::{ImageId, RequestContext};
use glance_proto::cache::{prefetch_key, queue_bindings, queue_name, Prefetch, PREFETCH_ALL_KEY};
use glance_service::{Task, Worker, WorkerContext, Workers};

use crate::error::{ApiError, ApiResult};
use crate::policy::Target;
use crate::AppState;

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
    pub async fn enqueue(&self, id: ImageId, all_nodes: bool, request_id: &str) -> ApiResult<()> {
        let cache = self.cache.clone();
        let (cached, newly_queued) = blocking(move || -> std::io::Result<(bool, bool)> {
            if cache.is_cached(id) {
                return Ok((true, false));
            }
            Ok((false, cache.queue(id)?))
        })
        .await
        .map_err(io_error)?;
        if cached && !all_nodes {
            return Ok(());
        }
        if let Err(e) = self.request_prefetch(id, all_nodes, request_id).await {
            if newly_queued {
                let cache = self.cache.clone();
                let _ = blocking(move || cache.delete_queued(id)).await;
            }
            return Err(e.into());
        }
        Ok(())
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

/// The cache of this node, or Glance's 404 when none is configured.
fn node(state: &AppState) -> ApiResult<&Arc<NodeCache>> {
    state
        .cache
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("Caching via API is not supported at this site.".into()))
}

/// Glance's cache policies (`cache_list`, `cache_image`, `cache_delete`, `cache_clean`,
/// `cache_prune`, `list_cached_nodes`, and `manage_image_cache` for the older routes) all
/// default to admin. A rule not in the policy table falls back to `default`, so each call
/// must pass both its own rule and `manage_image_cache` (admin unless overridden).
fn authorize(state: &AppState, ctx: &RequestContext, rule: &str) -> ApiResult<()> {
    let policy = &state.config().access.policy;
    let target = Target::new().with("project_id", ctx.project_id.clone());
    if policy.check(rule, ctx, &target) && policy.check("manage_image_cache", ctx, &target) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Access was denied to this resource.".into(),
        ))
    }
}

fn io_error(e: std::io::Error) -> ApiError {
    ApiError::Internal(format!("image cache: {e}"))
}

pub fn routes(r: &mut crate::routing::Routes) {
    handlers::routes(r);
    legacy::routes(r);
}

/// The cache options when only the core [`glance_config::Settings`] are at hand: the
/// configured directory, Glance's defaults for the rest.
pub fn settings_from(s: &glance_config::Settings) -> CacheSettings {
    CacheSettings {
        dir: s.image_cache_dir.clone(),
        node_id: glance_cache::default_node_id(&s.bind_port.to_string()),
        ..CacheSettings::default()
    }
}
