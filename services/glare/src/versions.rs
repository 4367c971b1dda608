//! The versions document (`GET /`, `/versions`, 300 without identity) and Glare's
//! microversions: `OpenStack-API-Version: artifact 1.x` (or `Accept:
//! application/vnd.openstack.artifacts-1.x`), default 1.0, `latest` = 1.1, echoed with
//! `Vary` on every answer; above the maximum 406, malformed 400.
//!
//! Glare declares 1.1-only routes (quotas) but never enforces the gates, so every route
//! answers at 1.0 too; we do the same, and say so here rather than break its clients.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use serde_json::json;

use crate::error::GlareError;

pub const MIN: (u32, u32) = (1, 0);
pub const MAX: (u32, u32) = (1, 1);
const HEADER: &str = "openstack-api-version";

/// The version a request was served at, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub u32, pub u32);

fn document() -> serde_json::Value {
    let version = |v: &str, status: &str| {
        json!({
            "version": v,
            "status": status,
            "links": [{"rel": "describedby", "type": "text/html",
                       "href": "http://docs.openstack.org/"}],
            "media-type": format!("application/vnd.openstack.artifacts-{v}"),
        })
    };
    json!({"versions": [version("1.0", "STABLE"), version("1.1", "EXPERIMENTAL")]})
}

pub async fn list() -> HttpResponse {
    HttpResponse::MultipleChoices().json(document())
}

enum Requested {
    Default,
    Latest,
    Version(u32, u32),
    Malformed(String),
}

fn parse_number(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn requested(req: &ServiceRequest) -> Requested {
    let header = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let Some(value) = header {
        // Only the `artifact` service's entry is ours; others are ignored.
        for entry in value.split(',') {
            let mut words = entry.split_whitespace();
            if words.next().map(str::to_ascii_lowercase).as_deref() != Some("artifact") {
                continue;
            }
            let v = words.next().unwrap_or_default();
            if v.eq_ignore_ascii_case("latest") {
                return Requested::Latest;
            }
            return match parse_number(v) {
                Some(n) if n >= MIN => Requested::Version(n.0, n.1),
                _ => Requested::Malformed(v.to_owned()),
            };
        }
    }
    let accept = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for media in accept.split(',') {
        if let Some(v) = media
            .trim()
            .strip_prefix("application/vnd.openstack.artifacts-")
        {
            let v = v.split(';').next().unwrap_or_default().trim();
            return match parse_number(v) {
                Some(n) if n >= MIN => Requested::Version(n.0, n.1),
                _ if v.eq_ignore_ascii_case("latest") => Requested::Latest,
                _ => Requested::Malformed(v.to_owned()),
            };
        }
    }
    Requested::Default
}

fn not_acceptable(v: (u32, u32)) -> HttpResponse {
    let message = format!(
        "Version {}.{} is not supported by the API. Minimum is {}.{} and maximum is {}.{}.",
        v.0, v.1, MIN.0, MIN.1, MAX.0, MAX.1
    );
    HttpResponse::NotAcceptable().json(json!({
        "code": 406,
        "title": "Not Acceptable",
        "explanation": "The server could not comply with the request since it is either \
                        malformed or otherwise incorrect.",
        "error": {"message": message, "type": "InvalidGlobalAPIVersion"},
        "min_version": format!("{}.{}", MIN.0, MIN.1),
        "max_version": format!("{}.{}", MAX.0, MAX.1),
    }))
}

/// Middleware: negotiates the version, refuses what it cannot serve and echoes the
/// version it served at. The versions document is served whatever was asked.
pub async fn negotiate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let is_versions = matches!(req.path(), "/" | "/versions");
    let version = match requested(&req) {
        Requested::Default => MIN,
        Requested::Latest => MAX,
        Requested::Version(major, minor) if (major, minor) <= MAX || is_versions => {
            (major, minor).min(MAX)
        }
        Requested::Version(major, minor) => {
            let (req, _) = req.into_parts();
            return Ok(ServiceResponse::new(req, not_acceptable((major, minor))));
        }
        Requested::Malformed(v) if !is_versions => {
            let err = GlareError::BadRequest(format!(
                "API version string {v} is not valid. Cannot determine API version."
            ));
            let (req, _) = req.into_parts();
            return Ok(ServiceResponse::new(req, err.error_response()));
        }
        Requested::Malformed(_) => MIN,
    };
    req.extensions_mut()
        .insert(ApiVersion(version.0, version.1));
    let mut res = next.call(req).await?.map_into_boxed_body();
    if !is_versions {
        let headers = res.headers_mut();
        headers.insert(
            HeaderName::from_static(HEADER),
            HeaderValue::from_str(&format!("artifact {}.{}", version.0, version.1)).expect("ASCII"),
        );
        headers.insert(
            actix_web::http::header::VARY,
            HeaderValue::from_static(HEADER),
        );
    }
    Ok(res)
}
