//! `/v2/cache` (Glance's `api/v2/cached_images.py`, API 2.14+).

use actix_web::{web, HttpRequest, HttpResponse};
use glance_cache::{blocking, Entry};
use glance_domain::{ImageId, ImageStatus};
use serde::Serialize;

use super::{authorize, io_error, node};
use crate::error::{ApiError, ApiResult};
use crate::identity::Caller;
use crate::routing::{not_allowed, Resource, Routes};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/v2/cache")
            .get(state_of_cache)
            .delete(clear)
            .others(not_allowed("GET, DELETE")),
    )
    .add(
        Resource::new("/v2/cache/clean")
            .post(clean)
            .others(not_allowed("POST")),
    )
    .add(
        Resource::new("/v2/cache/prune")
            .post(prune)
            .others(not_allowed("POST")),
    )
    .add(
        Resource::new("/v2/cache/nodes/{id}")
            .get(nodes)
            .others(not_allowed("GET")),
    )
    .add(
        Resource::new("/v2/cache/{id}")
            .put(queue)
            .delete(delete_entry)
            .others(not_allowed("DELETE, PUT")),
    );
}

/// One cached image as Glance lists it. Glance's `centralized_db` driver also has a
/// `checksum` column, which it never fills; ours holds the entry's verified MD5.
#[derive(Serialize)]
pub(super) struct CachedImage {
    image_id: String,
    hits: u64,
    last_accessed: f64,
    last_modified: f64,
    size: u64,
    checksum: Option<String>,
}

impl From<Entry> for CachedImage {
    fn from(e: Entry) -> Self {
        Self {
            image_id: e.image_id,
            hits: e.hits,
            last_accessed: e.last_accessed,
            last_modified: e.last_modified,
            size: e.size,
            checksum: e.checksum,
        }
    }
}

pub(super) async fn cached_images(state: &AppState) -> ApiResult<Vec<CachedImage>> {
    let cache = node(state)?.cache.clone();
    let entries = blocking(move || cache.list_cached())
        .await
        .map_err(io_error)?;
    Ok(entries.into_iter().map(CachedImage::from).collect())
}

pub(super) async fn queued_images(state: &AppState) -> ApiResult<Vec<String>> {
    let cache = node(state)?.cache.clone();
    let ids = blocking(move || cache.list_queued())
        .await
        .map_err(io_error)?;
    Ok(ids.iter().map(ImageId::to_string).collect())
}

async fn state_of_cache(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, "cache_list")?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "cached_images": cached_images(&state).await?,
        "queued_images": queued_images(&state).await?,
    })))
}

/// `x-image-cache-clear-target`: `cache`, `queue`, or both when absent or empty.
async fn clear(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, "cache_delete")?;
    let target = req
        .headers()
        .get("x-image-cache-clear-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (cached, queued) = match target.as_str() {
        "" => (true, true),
        "cache" => (true, false),
        "queue" => (false, true),
        _ => return Err(ApiError::BadRequest(
            "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string."
                .into(),
        )),
    };
    let cache = node(&state)?.cache.clone();
    blocking(move || -> std::io::Result<()> {
        if cached {
            cache.delete_all_cached()?;
        }
        if queued {
            cache.delete_all_queued()?;
        }
        Ok(())
    })
    .await
    .map_err(io_error)?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) fn parse_id(raw: &str) -> ApiResult<ImageId> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("Image {raw} not found.")))
}

/// Whether the request asks every node to prefetch (`?all_nodes=true` or the header
/// `x-image-cache-all-nodes: true`).
pub(super) fn all_nodes(req: &HttpRequest) -> bool {
    let truthy = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
    let header = req
        .headers()
        .get("x-image-cache-all-nodes")
        .and_then(|v| v.to_str().ok())
        .is_some_and(truthy);
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("all_nodes").map(|v| truthy(v)))
            .unwrap_or(false);
    header || query
}

/// `PUT /v2/cache/{id}`: the image must exist and be active; it is queued here and a
/// prefetch message goes to this node's workers (202).
async fn queue(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let image = match state.gateway.get(&ctx, id).await {
        Ok(image) => image,
        Err(ApiError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("Image {id} not found.")))
        }
        Err(e) => return Err(e),
    };
    authorize(&state, &ctx, "cache_image")?;
    if image.status != ImageStatus::Active {
        return Err(ApiError::BadRequest(
            "Only images with status active can be targeted for queueing".into(),
        ));
    }
    let node = node(&state)?.clone();
    node.enqueue(id, all_nodes(&req), &ctx.request_id).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `DELETE /v2/cache/{id}`: removes the entry and the queue marker (204); an image gone
/// from the registry may still be removed from this node.
async fn delete_entry(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id(&path)?;
    let node = node(&state)?.clone();
    match state.gateway.get(&ctx, id).await {
        Ok(_) => {}
        Err(ApiError::NotFound(_)) => {
            let cache = node.cache.clone();
            let known = blocking(move || cache.is_cached(id) || cache.is_queued(id)).await;
            if !known {
                return Err(ApiError::NotFound(format!("Image {id} not found.")));
            }
        }
        Err(e) => return Err(e),
    }
    authorize(&state, &ctx, "cache_delete")?;
    let cache = node.cache.clone();
    blocking(move || cache.evict(id)).await.map_err(io_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/cache/nodes/{id}`: the ids of the API nodes whose cache holds the image,
/// gathered from every node that answers within a second.
async fn nodes(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, "list_cached_nodes")?;
    let node = node(&state)?.clone();
    let id = parse_id(&path)?;
    match state.gateway.get(&ctx, id).await {
        Ok(_) => {}
        Err(ApiError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("Image {id} not found.")))
        }
        Err(e) => return Err(e),
    }
    let holders = node.holders(id, &ctx.request_id).await?;
    Ok(HttpResponse::Ok().json(holders))
}

async fn clean(state: web::Data<AppState>, Caller(ctx): Caller) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, "cache_clean")?;
    let node = node(&state)?;
    let (cache, stall) = (node.cache.clone(), node.settings.stall_time);
    let report = blocking(move || cache.clean(stall))
        .await
        .map_err(io_error)?;
    Ok(HttpResponse::Ok().json(report))
}

async fn prune(state: web::Data<AppState>, Caller(ctx): Caller) -> ApiResult<HttpResponse> {
    authorize(&state, &ctx, "cache_prune")?;
    let node = node(&state)?;
    let (cache, max) = (node.cache.clone(), node.settings.max_size);
    let report = blocking(move || cache.prune(max)).await.map_err(io_error)?;
    Ok(HttpResponse::Ok().json(report))
}
