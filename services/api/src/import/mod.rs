//! Interoperable image import at the HTTP edge (Glance's `/stage`, `/import` and `/info/*`)
//! and the multiple stores it targets.
//!
//! The API validates an import, creates its task, takes the image's import lock and
//! publishes one durable [`ImportImage`](glance_proto::tasks::ImportImage) message;
//! `glance_import::worker`, started in every API process (or the all-in-one) with the
//! [`importer`] of this one, runs it.

pub mod handlers;
pub mod remove;
pub mod stage;

use std::sync::Arc;

use actix_web::web;
use glance_bus::Bus;
use glance_import::{Importer, Settings};
use glance_registry_client::RegistryClient;
use glance_store::Stores;

pub use glance_import::{ImportConfig, TaskClient};

use crate::routing::{no_other_methods, not_allowed, Resource, Routes};
use crate::AppState;

/// What the import routes share across requests: the stores and the task records.
pub struct ImportState {
    pub stores: Stores,
    pub tasks: TaskClient,
    pub bus: Bus,
}

impl ImportState {
    pub fn new(bus: Bus, stores: Stores) -> Self {
        Self {
            tasks: TaskClient::new(RegistryClient::new(bus.clone())),
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

/// The import worker's view of this API process: its stores, bus and notifier, and the
/// live configuration (a reload applies to the next import).
pub fn importer(state: web::Data<AppState>) -> Arc<Importer> {
    let settings_of = state.clone();
    let settings = move || {
        let config = settings_of.config();
        Settings {
            import: config.import.clone(),
            image_size_cap: config.image_size_cap,
            hashing_algorithm: config.hashing_algorithm.clone(),
            require_image_format_match: config.require_image_format_match,
        }
    };
    Arc::new(Importer::new(
        state.import.stores.clone(),
        state.import.bus.clone(),
        state.gateway.notifier().clone(),
        Arc::new(settings),
    ))
}
