//! What Glance's paste pipeline does before its router sees a request: CORS answers `OPTIONS`,
//! version negotiation maps `/v2.N/...` onto `/v2/...` and answers everything else with the
//! version document, and the context middleware refuses callers without identity on every
//! versioned path, routed or not (Glance's `versionnegotiation` and `context` filters).

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, Uri};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::{identity, versions, AppState};

/// Accept-header versioning: `Accept: application/vnd.openstack.images-v2`.
const VND_MIME_TYPE: &str = "application/vnd.openstack.images-";

/// The version names Glance's negotiation accepts, all meaning API v2; 2.14, 2.16 and 2.18
/// only with an image cache, 2.8 and 2.10 to 2.13 only with several stores.
fn allowed_version(name: &str, cache: bool, multi_store: bool) -> bool {
    let Some(minor) = name.strip_prefix("v2") else {
        return false;
    };
    let Some(minor) = minor.strip_prefix('.') else {
        return minor.is_empty();
    };
    if minor.len() > 1 && minor.starts_with('0') {
        return false;
    }
    match minor.parse::<u32>() {
        Ok(0..=7 | 9 | 15 | 17) => true,
        Ok(14 | 16 | 18) => cache,
        Ok(8 | 10..=13) => multi_store,
        _ => false,
    }
}

pub async fn front_door(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        // webob answers a HEAD's error in its default type, HTML, whatever was accepted.
        return crate::error::ERROR_FORMAT
            .scope(crate::error::ErrorFormat::Html, negotiate(req, next))
            .await;
    }
    negotiate(req, next).await
}

async fn negotiate(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let path = req.path().to_owned();
    let trimmed = path.trim_start_matches('/');
    let (first, rest) = trimmed
        .find('/')
        .map_or((trimmed, ""), |i| (&trimmed[..i], &trimmed[i..]));
    if first == "versions" {
        let res = versions::list(req.request().clone(), state).await;
        return Ok(req.into_response(res));
    }
    // oslo.middleware's healthcheck sits in front of Glance's pipeline: no version, no
    // identity.
    // The API's description, like the version document, is for anyone who can reach it
    // (crate::openapi).
    if path == "/healthcheck" || crate::openapi::PATHS.contains(&path.as_str()) {
        return next.call(req).await;
    }
    // CORS's preflight answer, for any path.
    if req.method() == Method::OPTIONS {
        return Ok(req.into_response(HttpResponse::Ok().finish()));
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (version, rest) = match accept.strip_prefix(VND_MIME_TYPE) {
        Some(version) => (version, path.as_str()),
        None => (first, rest),
    };
    let config = state.config();
    if !allowed_version(
        version,
        config.cache_enabled,
        state.import.stores.is_multi(),
    ) {
        let res = versions::multiple_choices(req.request().clone(), state.clone()).await;
        return Ok(req.into_response(res));
    }
    let routed = format!("/v2{rest}");
    if routed != path {
        let uri = match req.uri().query() {
            Some(q) => format!("{routed}?{q}"),
            None => routed,
        };
        if let Ok(uri) = uri.parse::<Uri>() {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    // The caller is resolved here once (Keystone validation included) and the handlers'
    // `Caller` reuses it.
    if let Err(e) = identity::resolve_once(req.request(), &config).await {
        return Ok(req.error_response(e));
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::allowed_version;

    #[test]
    fn only_the_minor_versions_glance_knows_are_negotiated() {
        for v in ["v2", "v2.0", "v2.9", "v2.15", "v2.17"] {
            assert!(allowed_version(v, false, false), "{v}");
        }
        for v in [
            "v1", "v2.", "v2.19", "v3", "", "v2.00", "v2.x", "images", "v2+json",
        ] {
            assert!(!allowed_version(v, true, true), "{v}");
        }
        assert!(!allowed_version("v2.18", false, true));
        assert!(allowed_version("v2.18", true, false));
        assert!(!allowed_version("v2.11", true, false));
        assert!(allowed_version("v2.11", false, true));
    }
}
