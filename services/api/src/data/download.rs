//! `GET /v2/images/{id}/file`: the stored bytes, whole or one `Range`, from this node's
//! image cache when it holds them (a whole download of a miss fills it).

use actix_web::http::header;
use std::ops::Range;

use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use futures::TryStreamExt;
use glance_domain::{Image, ImageId, ImageStatus};

use crate::error::{ApiError, ApiResult};
use crate::identity::Caller;
use crate::images::handlers::image_id;
use crate::AppState;

pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    crate::gateway::authorize_modify(
        &state.config().access.policy,
        &ctx,
        &image,
        "download_image",
    )?;
    if image.status == ImageStatus::Deactivated && !ctx.is_admin {
        return Err(ApiError::Forbidden(
            "The requested image has been deactivated. Image data download is prohibited.".into(),
        ));
    }
    let Some(location) = image.locations.first() else {
        return Ok(HttpResponse::NoContent().finish());
    };
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    // As Glance's cache middleware: a deactivated image (only an admin gets here) is never
    // served from the cache, but its whole download fills it like any other.
    let cache = state
        .cache
        .as_ref()
        .filter(|_| matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated));
    if let Some(node) = cache.filter(|_| image.status == ImageStatus::Active) {
        if let Some(hit) = crate::cache::serve_hit(node, &image, range_header).await? {
            return Ok(hit);
        }
    }
    let size = match image.size {
        Some(s) if s >= 0 => s as u64,
        _ => state
            .store
            .size(&location.url)
            .await
            .map_err(|e| read_failed(id, e))?,
    };
    let range = range_header
        .map(|spec| parse_range(spec, size))
        .transpose()?;
    let stream = state
        .store
        .read(&location.url, range.clone())
        .await
        .map_err(|e| read_failed(id, e))?
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()));
    // A whole download also fills this node's cache on the way.
    let stream = match cache.filter(|_| range.is_none()) {
        Some(node) => crate::cache::start_tee(node, &image, stream, &ctx.request_id).await,
        None => Box::pin(stream),
    };
    let len = range.as_ref().map(|r| r.end - r.start).unwrap_or(size);
    let stream = {
        let gateway = state.gateway.clone();
        let image = image.clone();
        let peer = req.peer_addr().map(|a| a.ip().to_string());
        // Glance's `image.send`, once the body has gone (or the client has).
        CountedBody::new(stream, move |sent| {
            actix_web::rt::spawn(async move {
                gateway
                    .notifier()
                    .image_sent(&ctx, &image, sent, len, peer.as_deref())
                    .await;
            });
        })
    };

    Ok(data_response(&image, range.as_ref(), size)
        .no_chunking(len)
        .streaming(stream))
}

/// The head of an image data response: 200, or 206 with `Content-Range` for a range of
/// the `size` bytes; the octet-stream type and the image's MD5.
pub(crate) fn data_response(
    image: &Image,
    range: Option<&Range<u64>>,
    size: u64,
) -> HttpResponseBuilder {
    let mut res = match range {
        Some(r) => {
            let mut b = HttpResponse::PartialContent();
            b.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{}", r.start, r.end - 1, size),
            ));
            b
        }
        None => HttpResponse::Ok(),
    };
    res.content_type("application/octet-stream");
    if let Some(md5) = &image.checksum {
        res.insert_header(("Content-MD5", md5.as_str()));
    }
    res
}

/// A body stream that counts the bytes it yields and reports the count once, when it is
/// dropped: at the end of the body, or when the client went away mid-way.
struct CountedBody<S, F: FnOnce(u64)> {
    inner: S,
    sent: u64,
    on_end: Option<F>,
}

impl<S, F: FnOnce(u64)> CountedBody<S, F> {
    fn new(inner: S, on_end: F) -> Self {
        Self {
            inner,
            sent: 0,
            on_end: Some(on_end),
        }
    }
}

impl<S, F> futures::Stream for CountedBody<S, F>
where
    S: futures::Stream<Item = Result<bytes::Bytes, actix_web::Error>> + Unpin,
    F: FnOnce(u64) + Unpin,
{
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let next = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &next {
            self.sent += chunk.len() as u64;
        }
        next
    }
}

impl<S, F: FnOnce(u64)> Drop for CountedBody<S, F> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent);
        }
    }
}

/// One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) clamped to `size`, as a half-open
/// range. Several ranges, or one that starts past the end, are not satisfiable.
pub fn parse_range(spec: &str, size: u64) -> ApiResult<std::ops::Range<u64>> {
    let unsatisfiable = || ApiError::RangeNotSatisfiable { size };
    let spec = spec
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(unsatisfiable());
    }
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            if n == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size)
        }
        (s, "") => (s.parse().map_err(|_| unsatisfiable())?, size),
        (s, e) => {
            let s: u64 = s.parse().map_err(|_| unsatisfiable())?;
            let e: u64 = e.parse().map_err(|_| unsatisfiable())?;
            if e < s {
                return Err(unsatisfiable());
            }
            (s, (e + 1).min(size))
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(start..end)
}

/// What a failed store read answers: 404 only for data that is truly absent; anything else
/// is the store failing, a 500 whose cause goes to the log.
fn read_failed(id: ImageId, e: glance_store::StoreError) -> ApiError {
    match e {
        glance_store::StoreError::NotFound(_) => {
            ApiError::NotFound(format!("Image data for {id} is missing: {e}"))
        }
        e => ApiError::Internal(format!("reading the data of image {id} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_to_the_image() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), 0..10);
        assert_eq!(parse_range("bytes=90-200", 100).unwrap(), 90..100);
        assert_eq!(parse_range("bytes=95-", 100).unwrap(), 95..100);
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), 90..100);
    }

    #[test]
    fn a_range_past_the_end_is_not_satisfiable() {
        for spec in [
            "bytes=100-",
            "bytes=5-2",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=-0",
        ] {
            assert!(
                matches!(
                    parse_range(spec, 100),
                    Err(ApiError::RangeNotSatisfiable { size: 100 })
                ),
                "{spec}"
            );
        }
    }
}
