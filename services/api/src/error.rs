//! The API's one error type and its HTTP mapping: the only place that knows status codes
//! and Glance's error body shapes.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use glance_bus::BusError;
use glance_proto::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    /// 401 from Keystone validation; carries the `WWW-Authenticate` challenge that names
    /// where to get a token.
    #[error("The request you have made requires authentication.")]
    TokenRejected(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("The method is not allowed for this resource.")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("Requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 503 when no registry answered (the bus timed out or was lost): unlike a registry's
    /// own error, the request may still be carried out later.
    #[error("{0}")]
    RegistryUnreachable(String),
    #[error("The server does not support the request method.")]
    NotImplemented,
    /// 415 for a PATCH in another media type: says which ones it takes (`Accept-Patch`).
    #[error("{0}")]
    UnsupportedPatchType(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn image_not_found(id: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("No image found with ID {id}"))
    }

    /// Whether the same request may succeed later unchanged: the registry or its database
    /// was away for a moment.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::ServiceUnavailable(_) | ApiError::RegistryUnreachable(_)
        )
    }
}

impl glance_import::Transient for ApiError {
    fn is_transient(&self) -> bool {
        ApiError::is_transient(self)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(missing) => ApiError::NotFound(missing.to_string()),
            RegistryError::Conflict(msg) | RegistryError::Duplicate(msg) => ApiError::Conflict(msg),
            RegistryError::Invalid(msg) => ApiError::BadRequest(msg),
            RegistryError::Internal(msg) => ApiError::Internal(msg),
            RegistryError::Unavailable(msg) => ApiError::ServiceUnavailable(msg),
        }
    }
}

impl From<glance_request::ParseError> for ApiError {
    fn from(e: glance_request::ParseError) -> Self {
        use glance_request::ParseError;
        match e {
            ParseError::BadRequest(msg) => ApiError::BadRequest(msg),
            ParseError::UnsupportedPatchType(msg) => ApiError::UnsupportedPatchType(msg),
        }
    }
}

impl From<glance_registry_client::CallError> for ApiError {
    fn from(e: glance_registry_client::CallError) -> Self {
        match e {
            glance_registry_client::CallError::Bus(e) => e.into(),
            glance_registry_client::CallError::Refused(e) => e.into(),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        if e.is_transient() {
            ApiError::RegistryUnreachable(format!(
                "The image registry is unavailable, try again later ({e})"
            ))
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::TokenRejected(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::ServiceUnavailable(_) | ApiError::RegistryUnreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ApiError::UnsupportedPatchType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        let mut builder = HttpResponse::build(status);
        match self {
            ApiError::MethodNotAllowed(allow) => {
                builder.insert_header((header::ALLOW, *allow));
            }
            ApiError::RangeNotSatisfiable { size } => {
                builder.insert_header((header::CONTENT_RANGE, format!("bytes */{size}")));
            }
            ApiError::UnsupportedPatchType(_) => {
                builder.insert_header((
                    "accept-patch",
                    "application/openstack-images-v2.0-json-patch, \
                     application/openstack-images-v2.1-json-patch",
                ));
            }
            ApiError::Unauthorized => {
                builder.insert_header((header::WWW_AUTHENTICATE, "Keystone uri=\"\""));
            }
            ApiError::TokenRejected(challenge) => {
                builder.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
            _ => {}
        }
        let message = match self {
            ApiError::Internal(_) => "The server has either erred or is incapable of performing \
                                       the requested operation."
                .to_owned(),
            other => other.to_string(),
        };
        let format = ERROR_FORMAT.try_with(|f| *f).unwrap_or(ErrorFormat::Html);
        let (content_type, body) = render(status, &message, format);
        builder.content_type(content_type).body(body)
    }
}

tokio::task_local! {
    /// The error format the current request asked for, set by the request-id middleware.
    pub static ERROR_FORMAT: ErrorFormat;
}

/// The body formats webob offers for an error, chosen from the request's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Html,
    Json,
    Text,
}

impl ErrorFormat {
    /// webob's negotiation: of the offers `text/html` and `application/json`, the one the
    /// `Accept` header rates highest (ties go to HTML, the first offer); plain text when it
    /// accepts neither or is missing (webob reads a missing header as an empty one).
    pub fn from_accept(accept: Option<&str>) -> Self {
        let accept = accept.unwrap_or_default().to_ascii_lowercase();
        // The quality the header gives `offer`: that of its most specific matching range.
        let quality = |offer: &str| -> f32 {
            let (otype, _) = offer.split_once('/').unwrap_or((offer, ""));
            let mut best: Option<(u8, f32)> = None;
            for range in accept.split(',') {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or_default().trim();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                let specificity = if media == offer {
                    3
                } else if media == format!("{otype}/*") {
                    2
                } else if media == "*/*" {
                    1
                } else {
                    continue;
                };
                if best.is_none_or(|(s, _)| specificity > s) {
                    best = Some((specificity, q));
                }
            }
            best.map_or(0.0, |(_, q)| q)
        };
        let html = quality("text/html");
        let json = quality("application/json");
        if html <= 0.0 && json <= 0.0 {
            ErrorFormat::Text
        } else if json > html {
            ErrorFormat::Json
        } else {
            ErrorFormat::Html
        }
    }
}

/// Renders an error body as Glance (through webob) does.
pub fn render(status: StatusCode, message: &str, format: ErrorFormat) -> (&'static str, String) {
    let code = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let title = status.canonical_reason().unwrap_or("");
    match format {
        ErrorFormat::Json => (
            "application/json",
            serde_json::json!({"message": message, "code": code, "title": title}).to_string(),
        ),
        ErrorFormat::Text => ("text/plain; charset=UTF-8", format!("{code}\n\n{message}\n\n")),
        ErrorFormat::Html => (
            "text/html; charset=UTF-8",
            format!(
                "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {}<br /><br />\n\n\n\n </body>\n</html>",
                html_escape(message)
            ),
        ),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A request body as JSON, or Glance's 400 for one that is not.
pub fn parse_json(body: &[u8]) -> ApiResult<serde_json::Value> {
    Ok(glance_request::parse_json(body)?)
}

#[cfg(test)]
mod tests {
    use super::ErrorFormat::{self, *};

    #[test]
    fn error_bodies_follow_webobs_choice_between_html_and_json() {
        for (accept, want) in [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Html),
            (Some("text/plain"), Text),
            (Some("application/xml"), Text),
            (Some("application/json"), Json),
            (Some("application/json, text/html"), Html),
            (Some("text/html;q=0.5, application/json"), Json),
            (Some("application/*"), Json),
            (Some("*/*;q=0.1, application/json"), Json),
            (Some("text/html;q=0"), Text),
        ] {
            assert_eq!(ErrorFormat::from_accept(accept), want, "{accept:?}");
        }
    }
}
