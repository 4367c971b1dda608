//! The download path's use of the cache: serve a hit from the entry file, or tee a miss
//! into a new entry while it streams to the client.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use glance_cache::{blocking, read_file, tee, Expected, TeeOutcome, WhenBehind};
use glance_domain::Image;
use tokio::sync::oneshot;

use super::NodeCache;
use crate::data::download::{data_response, parse_range};
use crate::error::ApiResult;

pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// An incomplete file written to within this long means a tee or fetch is under way, so a
/// concurrent first download does not start a second copy.
const IN_PROGRESS: Duration = Duration::from_secs(30);

/// Serves `image` from this node's cache when it holds a verified copy of the image's
/// current data: the same status, headers and range handling as the store path. An entry
/// that no longer matches the record (the data changed) is evicted and `None` returned.
pub async fn serve_hit(
    node: &NodeCache,
    image: &Image,
    range: Option<&str>,
) -> ApiResult<Option<HttpResponse>> {
    let cache = node.cache.clone();
    let id = image.id;
    let expected = Expected::of(image);
    let opened = blocking(move || {
        let entry = cache.entry(id)?;
        if entry.checksum.is_none() && entry.os_hash_value.is_none() {
            // Not verified (no record yet, or a file put there by hand): not served.
            return None;
        }
        let same = |have: &Option<String>, want: &Option<String>| match (have, want) {
            (Some(h), Some(w)) => h.eq_ignore_ascii_case(w),
            _ => true,
        };
        let matches = same(&entry.checksum, &expected.md5)
            && same(&entry.os_hash_value, &expected.hash_value)
            && expected.size.is_none_or(|s| s == entry.size);
        if !matches {
            tracing::info!(image_id = %id, "cached data no longer matches the image; evicted");
            let _ = cache.delete_cached(id);
            return None;
        }
        let file = std::fs::File::open(cache.path(id)).ok()?;
        let size = file.metadata().ok()?.len();
        (size == entry.size).then_some((file, size))
    })
    .await;
    let Some((file, size)) = opened else {
        return Ok(None);
    };
    let range = range.map(|spec| parse_range(spec, size)).transpose()?;
    // A hit is a whole image served from the cache, as Glance counts them (Glance serves
    // no range from its cache; we do, without counting it).
    if range.is_none() {
        let cache = node.cache.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = cache.record_hit(id) {
                tracing::warn!(image_id = %id, error = %e, "cannot record a cache hit");
            }
        });
    }
    tracing::debug!(image_id = %id, "served from the image cache");
    let body = read_file(file, range.clone().unwrap_or(0..size))
        .map(|r| r.map_err(actix_web::error::ErrorInternalServerError));
    let len = range.as_ref().map(|r| r.end - r.start).unwrap_or(size);
    Ok(Some(
        data_response(image, range.as_ref(), size)
            .no_chunking(len)
            .streaming(body),
    ))
}

/// Tees a whole download of `image` into a new entry, unless the image cannot be verified
/// or another writer is already caching it; otherwise passes the stream on untouched.
/// The client never waits for the cache: a writer that falls behind is given up, and once
/// the download is over the image is queued for this node's cache workers instead, which
/// fetch it from the store at their own pace (`request_id` is the download's).
pub async fn start_tee<S>(
    node: &Arc<NodeCache>,
    image: &Image,
    stream: S,
    request_id: &str,
) -> BodyStream
where
    S: Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
{
    let expected = Expected::of(image);
    if !expected.verifiable() {
        return Box::pin(stream);
    }
    let cache = node.cache.clone();
    let id = image.id;
    let writer = blocking(move || {
        if cache.is_cached(id) || cache.is_being_cached(id, IN_PROGRESS) {
            return None;
        }
        cache
            .writer(id, expected)
            .map_err(|e| tracing::warn!(image_id = %id, error = %e, "cannot start a cache entry"))
            .ok()
    })
    .await;
    let Some(writer) = writer else {
        return Box::pin(stream);
    };
    let (teed, outcome) = tee(stream, writer, WhenBehind::GiveUp);
    // Dropped with the body: when the download is over, or the client gone.
    let (over, download_over) = oneshot::channel::<()>();
    let teed = teed.map(move |chunk| {
        let _while_streaming = &over;
        chunk
    });
    // The cache workers fetch only active images (a deactivated one is an admin's download).
    let prefetch = image.status == glance_domain::ImageStatus::Active;
    let (node, request_id) = (node.clone(), request_id.to_owned());
    tokio::spawn(async move {
        if let (Ok(TeeOutcome::FellBehind), true) = (outcome.await, prefetch) {
            let _ = download_over.await;
            if let Err(e) = node.enqueue(id, false, &request_id).await {
                tracing::warn!(image_id = %id, error = %e,
                    "the cache fill was given up and the image could not be queued for a prefetch");
            }
        }
    });
    Box::pin(teed)
}
