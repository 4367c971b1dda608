//! Glance's older cache-management routes (its `cachemanage` filter), which
//! `glance-cache-manage` and operators' scripts speak: `/v2/cached_images` and
//! `/v2/queued_images`, under the `manage_image_cache` policy.

use actix_web::{web, HttpRequest, HttpResponse};
use glance_cache::{blocking, ImageCache};
use glance_domain::ImageId;

use super::handlers::{all_nodes, cached_images, parse_id, queued_images};
use super::{authorize, io_error, node};
use crate::error::ApiResult;
use crate::identity::Caller;
use crate::routing::{no_other_methods, Resource, Routes};
use crate::AppState;

const RULE: &str = "manage_image_cache";

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/v2/cached_images")
            .get(list_cached)
            .delete(delete_all_cached)
            .others(no_other_methods()),
    )
    .add(
        Resource::new("/v2/cached_images/{id}")
            .delete(delete_cached)
            .others(no_other_methods()),
    )
    .add(
        Resource::new("/v2/queued_images")
            .get(list_queued)
            .delete(delete_all_queued)
            .others(no_other_methods()),
    )
    .add(
        Resource::new("/v2/queued_images/{id}")
            .put(queue)
            .delete(delete_queued)
            .others(no_other_methods()),
    );
}

async fn list_cached(state: web::Data<AppState>, Caller(ctx): Caller) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, RULE)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "cached_images": cached_images(&state).await?,
    })))
}

async fn list_queued(state: web::Data<AppState>, Caller(ctx): Caller) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, RULE)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "queued_images": queued_images(&state).await?,
    })))
}

async fn delete_all_cached(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    delete_all(&state, caller, ImageCache::delete_all_cached).await
}

async fn delete_all_queued(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    delete_all(&state, caller, ImageCache::delete_all_queued).await
}

async fn delete_cached(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    delete_one(&state, caller, &path, ImageCache::delete_cached).await
}

async fn delete_queued(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    delete_one(&state, caller, &path, ImageCache::delete_queued).await
}

/// Empties the cache or the queue with `delete`: `{"num_deleted": n}`.
async fn delete_all(
    state: &AppState,
    Caller(ctx): Caller,
    delete: fn(&ImageCache) -> std::io::Result<u64>,
) -> ApiResult<HttpResponse> {
    authorize(state, &ctx, RULE)?;
    let cache = node(state)?.cache.clone();
    let n = blocking(move || delete(&cache)).await.map_err(io_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "num_deleted": n })))
}

/// Removes the image named in the path from the cache or the queue with `delete` (204).
async fn delete_one(
    state: &AppState,
    Caller(ctx): Caller,
    raw_id: &str,
    delete: fn(&ImageCache, ImageId) -> std::io::Result<bool>,
) -> ApiResult<HttpResponse> {
    authorize(state, &ctx, RULE)?;
    let id = parse_id(raw_id)?;
    let cache = node(state)?.cache.clone();
    blocking(move || delete(&cache, id))
        .await
        .map_err(io_error)?;
    // Glance's legacy cache API answers these with 200 and a JSON `null`.
    Ok(HttpResponse::Ok().json(serde_json::Value::Null))
}

/// As in Glance, queueing here does not look the image up (the worker does, and drops a
/// request for an image that is not there or not active); unlike Glance, the request
/// reaches the node's workers at once instead of waiting for a prefetcher run.
async fn queue(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, RULE)?;
    let id = parse_id(&path)?;
    let node = node(&state)?.clone();
    node.enqueue(id, all_nodes(&req), &ctx.request_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::Value::Null))
}
