//! This node's image cache, as the API's HTTP edge sees it: the `/v2/cache` routes and
//! Glance's older `/v2/cached_images` and `/v2/queued_images` ones, and serving hits and
//! teeing misses on download (see `data::download`). The node itself (prefetch requests to
//! its cache workers, eviction when other nodes delete or change an image, the answer to
//! "which nodes hold this image?") is `glance-cache-node`'s [`NodeCache`].
//!
//! Every call acts on the node that received it, as in Glance; prefetch may name the whole
//! fleet (`cache.prefetch.all`).

mod handlers;
mod legacy;
mod serve;

pub use serve::{serve_hit, start_tee};

use std::sync::Arc;

use glance_cache::CacheSettings;
use glance_domain::RequestContext;

pub use glance_cache_node::{EnqueueError, NodeCache};

use crate::error::{ApiError, ApiResult};
use crate::policy::Target;
use crate::AppState;

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

impl From<EnqueueError> for ApiError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Cache(e) => io_error(e),
            EnqueueError::Bus(e) => e.into(),
        }
    }
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
