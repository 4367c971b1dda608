//! `GET /v2/images/{id}/file`: the stored bytes, whole or one `Range`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::TryStreamExt;
use glance_domain::ImageStatus;

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
    if image.status == ImageStatus::Deactivated && !ctx.is_admin {
        return Err(ApiError::Forbidden(
            "The requested image has been deactivated. Image data download is prohibited.".into(),
        ));
    }
    let Some(location) = image.locations.first() else {
        return Ok(HttpResponse::NoContent().finish());
    };
    let size = match image.size {
        Some(s) if s >= 0 => s as u64,
        _ => state
            .store
            .size(&location.url)
            .await
            .map_err(|e| ApiError::NotFound(format!("Image data for {id} is missing: {e}")))?,
    };
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(spec) => Some(parse_range(spec, size)?),
        None => None,
    };
    let stream = state
        .store
        .read(&location.url, range.clone())
        .await
        .map_err(|e| ApiError::NotFound(format!("Image data for {id} is missing: {e}")))?
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()));

    let mut res = match &range {
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
    let len = range.map(|r| r.end - r.start).unwrap_or(size);
    Ok(res.no_chunking(len).streaming(stream))
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
