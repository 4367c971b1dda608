//! Interoperable image import (Glance's `/stage`, `/import` and `/info/*`), the multiple
//! stores it targets, and the import worker that runs imports as tasks.
//!
//! The API validates an import, creates its task, takes the image's import lock and
//! publishes one durable [`ImportImage`](glance_proto::tasks::ImportImage) message; an
//! [`ImportWorker`] in any API process (or the all-in-one) runs it.

pub mod config;
pub mod download;
pub mod fetch;
pub mod filter;
pub mod handlers;
pub mod pipeline;
pub mod plugins;
pub mod registry;
pub mod remove;
pub mod stage;
pub mod worker;

use glance_bus::Bus;
use glance_store::Stores;

pub use config::ImportConfig;
pub use registry::TaskClient;

use crate::routing::{no_other_methods, not_allowed, Resource, Routes};

/// What imports share across requests and the worker: the stores and the task records.
pub struct ImportState {
    pub stores: Stores,
    pub tasks: TaskClient,
    pub bus: Bus,
}

impl ImportState {
    pub fn new(bus: Bus, stores: Stores) -> Self {
        Self {
            tasks: TaskClient::new(bus.clone()),
            stores,
            bus,
        }
    }
}

/// The store an upload (`PUT /file`) writes to: `None` without `enabled_backends`, else the
/// one `X-Image-Meta-Store` names or the default.
pub fn upload_target(
    req: &actix_web::HttpRequest,
    state: &crate::AppState,
) -> crate::error::ApiResult<Option<glance_store::Backend>> {
    let stores = &state.import.stores;
    if !stores.is_multi() {
        return Ok(None);
    }
    match req.headers().get("x-image-meta-store") {
        None => Ok(Some(stores.default_backend().clone())),
        Some(v) => {
            let id = v.to_str().unwrap_or_default();
            stores.get(id).cloned().map(Some).ok_or_else(|| {
                crate::error::ApiError::BadRequest(format!("Store for identifier {id} not found"))
            })
        }
    }
}

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/v2/images/{id}/stage")
            .put(stage::stage)
            .others(not_allowed("PUT")),
    )
    .add(
        Resource::new("/v2/images/{id}/import")
            .post(handlers::import)
            .others(not_allowed("POST")),
    )
    .add(
        Resource::new("/v2/info/import")
            .get(handlers::info_import)
            .others(not_allowed("GET")),
    )
    .add(
        Resource::new("/v2/info/stores")
            .get(handlers::info_stores)
            .others(not_allowed("GET")),
    )
    .add(
        Resource::new("/v2/info/stores/detail")
            .get(handlers::info_stores_detail)
            .others(not_allowed("GET")),
    )
    .add(
        Resource::new("/v2/info/usage")
            .get(handlers::info_usage)
            .others(no_other_methods()),
    )
    .add(
        Resource::new("/v2/stores/{store_id}/{id}")
            .delete(remove::delete_from_store)
            .others(not_allowed("DELETE")),
    );
}

/// Removes the staged data of image `id` once nothing needs it. What will not go is
/// logged, not lost track of: the data sweep removes staged files that no upload or import
/// owns.
pub(crate) async fn remove_staged(
    staging: &glance_store::FilesystemStore,
    id: glance_domain::ImageId,
) {
    use glance_store::Store;
    if let Err(e) = staging.delete(&staging.location_of(id)).await {
        tracing::warn!(image_id = %id, error = %e,
            "could not remove staged data; the data sweep will");
    }
}

/// Runs `op` again while it fails transiently (the registry or its database away for a
/// moment: a restart, a failover), backing off up to 2 s between tries, for up to 30 s.
pub(crate) async fn persist<T, F, Fut>(what: &str, mut op: F) -> Result<T, crate::error::ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::error::ApiError>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, retry_in = ?pause, "{what} failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}
