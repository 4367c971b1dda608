//! The artifact API's one error type and its HTTP mapping, in Glare's JSON shape:
//! `{"code", "title", "explanation", "error": {"message", "type"}}`. Unlike Glare, an
//! unexpected failure is a JSON 500 too, never an HTML page.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use glance_api::error::ApiError;
use glance_bus::BusError;
use glance_proto::registry::RegistryError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum GlareError {
    #[error("{0}")]
    BadRequest(String),
    /// 401; the `WWW-Authenticate` challenge, when Keystone names one.
    #[error("The request you have made requires authentication.")]
    Unauthorized(Option<String>),
    /// 403, with Glare's error type (`Forbidden`, `PolicyException`).
    #[error("{message}")]
    Forbidden { message: String, kind: &'static str },
    /// 404, with Glare's error type (`NotFound`, `ArtifactNotFound`, `TypeNotFound`).
    #[error("{message}")]
    NotFound { message: String, kind: &'static str },
    #[error("The method is not allowed for this resource.")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
}

pub type GlareResult<T> = Result<T, GlareError>;

impl GlareError {
    pub fn forbidden(message: impl Into<String>) -> Self {
        GlareError::Forbidden {
            message: message.into(),
            kind: "Forbidden",
        }
    }

    /// A policy rule refused the caller (Glare's `PolicyException`).
    pub fn policy(rule: &str) -> Self {
        GlareError::Forbidden {
            message: format!("Policy check for {rule} failed with user credentials."),
            kind: "PolicyException",
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        GlareError::NotFound {
            message: message.into(),
            kind: "NotFound",
        }
    }

    pub fn artifact_not_found(id: &str) -> Self {
        GlareError::NotFound {
            message: format!("Artifact with id={id} not found."),
            kind: "ArtifactNotFound",
        }
    }

    pub fn type_not_found(name: &str) -> Self {
        GlareError::NotFound {
            message: format!("Glare type with name '{name}' was not found."),
            kind: "TypeNotFound",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            GlareError::BadRequest(_) => "BadRequest",
            GlareError::Unauthorized(_) => "Unauthorized",
            GlareError::Forbidden { kind, .. } | GlareError::NotFound { kind, .. } => kind,
            GlareError::MethodNotAllowed(_) => "MethodNotAllowed",
            GlareError::NotAcceptable(_) => "NotAcceptable",
            GlareError::Conflict(_) => "Conflict",
            GlareError::TooLarge(_) => "RequestEntityTooLarge",
            GlareError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            GlareError::Unavailable(_) => "ServiceUnavailable",
            GlareError::NotImplemented(_) => "NotImplemented",
            GlareError::Internal(_) => "InternalServerError",
        }
    }

    fn explanation(&self) -> &'static str {
        match self.status_code() {
            StatusCode::UNAUTHORIZED => "The request you have made requires authentication.",
            StatusCode::FORBIDDEN => "Access was denied to this resource.",
            StatusCode::NOT_FOUND => "The resource could not be found.",
            StatusCode::METHOD_NOT_ALLOWED => "The method is not allowed for this resource.",
            StatusCode::CONFLICT => "There was a conflict when trying to complete your request.",
            StatusCode::PAYLOAD_TOO_LARGE => "The body of your request was too large.",
            StatusCode::SERVICE_UNAVAILABLE => {
                "The server is currently unavailable. Please try again at a later time."
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                "The server has either erred or is incapable of performing the requested \
                 operation."
            }
            _ => {
                "The server could not comply with the request since it is either malformed \
                 or otherwise incorrect."
            }
        }
    }
}

impl From<RegistryError> for GlareError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(missing) => GlareError::NotFound {
                message: missing.to_string(),
                kind: "ArtifactNotFound",
            },
            RegistryError::Conflict(msg) | RegistryError::Duplicate(msg) => {
                GlareError::Conflict(msg)
            }
            RegistryError::Invalid(msg) => GlareError::BadRequest(msg),
            RegistryError::Internal(msg) => GlareError::Internal(msg),
            RegistryError::Unavailable(msg) => GlareError::Unavailable(msg),
        }
    }
}

impl From<glance_registry_client::CallError> for GlareError {
    fn from(e: glance_registry_client::CallError) -> Self {
        match e {
            glance_registry_client::CallError::Bus(e) => e.into(),
            glance_registry_client::CallError::Refused(e) => e.into(),
        }
    }
}

impl From<BusError> for GlareError {
    fn from(e: BusError) -> Self {
        if e.is_transient() {
            GlareError::Unavailable(format!(
                "The artifact registry is unavailable, try again later ({e})"
            ))
        } else {
            GlareError::Internal(e.to_string())
        }
    }
}

/// The image API's identity layer reports who is not let in; here it speaks Glare.
impl From<ApiError> for GlareError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => GlareError::Unauthorized(None),
            ApiError::TokenRejected(challenge) => GlareError::Unauthorized(Some(challenge)),
            ApiError::ServiceUnavailable(msg) | ApiError::RegistryUnreachable(msg) => {
                GlareError::Unavailable(msg)
            }
            ApiError::Forbidden(msg) => GlareError::forbidden(msg),
            other => GlareError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for GlareError {
    fn status_code(&self) -> StatusCode {
        match self {
            GlareError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GlareError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            GlareError::Forbidden { .. } => StatusCode::FORBIDDEN,
            GlareError::NotFound { .. } => StatusCode::NOT_FOUND,
            GlareError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GlareError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            GlareError::Conflict(_) => StatusCode::CONFLICT,
            GlareError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GlareError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GlareError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GlareError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            GlareError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            GlareError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                self.explanation().to_owned()
            }
            other => other.to_string(),
        };
        let mut builder = HttpResponse::build(status);
        match self {
            GlareError::MethodNotAllowed(allow) => {
                builder.insert_header((header::ALLOW, *allow));
            }
            GlareError::Unauthorized(Some(challenge)) => {
                builder.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
            _ => {}
        }
        builder.json(json!({
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or(""),
            "explanation": self.explanation(),
            "error": {"message": message, "type": self.kind()},
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn errors_have_glares_json_shape() {
        let res = GlareError::artifact_not_found("abc").error_response();
        assert_eq!(res.status(), 404);
        let body = res.into_body().try_into_bytes().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            doc,
            json!({"code": 404, "title": "Not Found",
                   "explanation": "The resource could not be found.",
                   "error": {"message": "Artifact with id=abc not found.",
                             "type": "ArtifactNotFound"}})
        );
    }
}
