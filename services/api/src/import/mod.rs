//! Interoperable image import (Glance's `/stage`, `/import` and `/info/*`), the multiple
//! stores it targets, and the import worker that runs imports as tasks.
//!
//! The API validates an import, creates its task, takes the image's import lock and
//! publishes one durable [`ImportImage`](glance_proto::tasks::ImportImage) message; an
//! [`ImportWorker`] in any API process (or the all-in-one) runs it.

pub mod config;
pub mod fetch;
pub mod filter;
pub mod handlers;
pub mod pipeline;
pub mod registry;
pub mod remove;
pub mod stage;
pub mod worker;

use actix_web::web;
use glance_bus::Bus;
use glance_store::Stores;

pub use config::ImportConfig;
pub use registry::TaskClient;
pub use worker::{ImportWorker, StopImports};

use crate::not_allowed;

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

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2/images/{id}/stage")
            .route(web::put().to(stage::stage))
            .default_service(not_allowed("PUT")),
    )
    .service(
        web::resource("/v2/images/{id}/import")
            .route(web::post().to(handlers::import))
            .default_service(not_allowed("POST")),
    )
    .service(
        web::resource("/v2/info/import")
            .route(web::get().to(handlers::info_import))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/v2/info/stores")
            .route(web::get().to(handlers::info_stores))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/v2/info/stores/detail")
            .route(web::get().to(handlers::info_stores_detail))
            .default_service(not_allowed("GET")),
    )
    .service(
        web::resource("/v2/info/usage")
            .route(web::get().to(handlers::info_usage))
            .default_service(crate::no_other_methods()),
    )
    .service(
        web::resource("/v2/stores/{store_id}/{id}")
            .route(web::delete().to(remove::delete_from_store))
            .default_service(not_allowed("DELETE")),
    );
}
