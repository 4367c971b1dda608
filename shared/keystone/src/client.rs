//! The Identity API v3 calls: issue a password token, validate a token.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::TokenInfo;

/// Why a call to Keystone did not give an answer we could use. Each names the URL, so a log
/// line says which endpoint to look at.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    /// No HTTP answer: refused, reset, timed out, or the name did not resolve.
    #[error("cannot reach Keystone at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// Keystone refused our own credentials or service token (401).
    #[error("Keystone at {url} refused our credentials (401): {message}")]
    Unauthorized { url: String, message: String },
    /// Our identity may not do this (403), e.g. a service user without the role to
    /// validate other users' tokens.
    #[error("Keystone at {url} forbids the call (403): {message}")]
    Forbidden { url: String, message: String },
    /// The token under validation is unknown, expired or revoked (404).
    #[error("the token is not valid: {message}")]
    InvalidToken { message: String },
    /// Any other answer, a 5xx among them.
    #[error("Keystone at {url} answered {status}: {message}")]
    Unexpected {
        url: String,
        status: u16,
        message: String,
    },
}

impl KeystoneError {
    /// Keystone could not be asked, or failed: the caller should get 503, not 401.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Unexpected { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Password credentials and the scope to ask for: a project when `project_name` or
/// `project_id` is set, else an unscoped token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordAuth {
    pub username: String,
    pub password: String,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
}

impl PasswordAuth {
    fn body(&self) -> serde_json::Value {
        let domain = |id: &Option<String>, name: &Option<String>| match (id, name) {
            (Some(id), _) => Some(json!({ "id": id })),
            (None, Some(name)) => Some(json!({ "name": name })),
            (None, None) => None,
        };
        let mut user = json!({ "name": self.username, "password": self.password });
        if let Some(d) = domain(&self.user_domain_id, &self.user_domain_name) {
            user["domain"] = d;
        }
        let mut auth = json!({
            "identity": { "methods": ["password"], "password": { "user": user } }
        });
        if let Some(id) = &self.project_id {
            auth["scope"] = json!({ "project": { "id": id } });
        } else if let Some(name) = &self.project_name {
            let mut project = json!({ "name": name });
            if let Some(d) = domain(&self.project_domain_id, &self.project_domain_name) {
                project["domain"] = d;
            }
            auth["scope"] = json!({ "project": project });
        }
        json!({ "auth": auth })
    }
}

/// A token Keystone just issued, and what it says.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub info: TokenInfo,
}

/// A client of one Keystone's Identity API v3.
#[derive(Debug, Clone)]
pub struct Identity {
    http: reqwest::Client,
    /// The API root, ending in `/v3`.
    v3: String,
}

impl Identity {
    /// `auth_url` as operators write it: with or without `/v3`, with or without a
    /// trailing slash.
    pub fn new(auth_url: &str, timeout: Duration) -> Result<Self, KeystoneError> {
        let root = auth_url.trim().trim_end_matches('/');
        let v3 = if root.ends_with("/v3") {
            root.to_owned()
        } else {
            format!("{root}/v3")
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("glance-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KeystoneError::Unreachable {
                url: v3.clone(),
                message: e.to_string(),
            })?;
        Ok(Self { http, v3 })
    }

    /// The Identity API root this client calls (`.../v3`).
    pub fn url(&self) -> &str {
        &self.v3
    }

    /// `POST /v3/auth/tokens` with a password.
    pub async fn issue(&self, auth: &PasswordAuth) -> Result<IssuedToken, KeystoneError> {
        let url = format!("{}/auth/tokens", self.v3);
        let response = self
            .http
            .post(&url)
            .json(&auth.body())
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = response.status();
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            return Err(classify(&url, status, &body));
        }
        let info = TokenInfo::from_document(&body).ok_or_else(|| malformed(&url, status))?;
        let token = token.ok_or_else(|| malformed(&url, status))?;
        Ok(IssuedToken { token, info })
    }

    /// `GET /v3/auth/tokens`: what `subject` says, asked with our `service_token`.
    /// [`KeystoneError::InvalidToken`] when the subject is unknown, expired or revoked;
    /// [`KeystoneError::Unauthorized`] when our own token was refused.
    pub async fn validate(
        &self,
        service_token: &str,
        subject: &str,
        include_catalog: bool,
    ) -> Result<TokenInfo, KeystoneError> {
        let url = if include_catalog {
            format!("{}/auth/tokens", self.v3)
        } else {
            format!("{}/auth/tokens?nocatalog", self.v3)
        };
        let response = self
            .http
            .get(&url)
            .header("x-auth-token", service_token)
            .header("x-subject-token", subject)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if status != StatusCode::OK {
            return Err(classify(&url, status, &body));
        }
        TokenInfo::from_document(&body).ok_or_else(|| malformed(&url, status))
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> KeystoneError {
    // reqwest's Display stops at the outermost error; the cause says "connection refused".
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    KeystoneError::Unreachable {
        url: url.to_owned(),
        message,
    }
}

fn malformed(url: &str, status: StatusCode) -> KeystoneError {
    KeystoneError::Unexpected {
        url: url.to_owned(),
        status: status.as_u16(),
        message: "the answer is not a Keystone token document".into(),
    }
}

/// Keystone's error body is `{"error": {"code", "message", "title"}}`.
fn classify(url: &str, status: StatusCode, body: &[u8]) -> KeystoneError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let url = url.to_owned();
    match status {
        StatusCode::UNAUTHORIZED => KeystoneError::Unauthorized { url, message },
        StatusCode::FORBIDDEN => KeystoneError::Forbidden { url, message },
        StatusCode::NOT_FOUND => KeystoneError::InvalidToken { message },
        other => KeystoneError::Unexpected {
            url,
            status: other.as_u16(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_root_ends_in_v3_however_the_url_is_written() {
        let t = Duration::from_secs(1);
        for url in [
            "http://ks:5000",
            "http://ks:5000/",
            "http://ks:5000/v3",
            "http://ks:5000/v3/",
        ] {
            assert_eq!(Identity::new(url, t).unwrap().url(), "http://ks:5000/v3");
        }
        assert_eq!(
            Identity::new("http://ks/identity", t).unwrap().url(),
            "http://ks/identity/v3"
        );
    }

    #[test]
    fn a_project_scoped_password_body_names_user_and_project_domains() {
        let auth = PasswordAuth {
            username: "glance".into(),
            password: "pw".into(),
            user_domain_name: Some("Default".into()),
            project_name: Some("service".into()),
            project_domain_id: Some("default".into()),
            ..Default::default()
        };
        let body = auth.body();
        let user = &body["auth"]["identity"]["password"]["user"];
        assert_eq!(user["name"], "glance");
        assert_eq!(user["domain"]["name"], "Default");
        assert_eq!(body["auth"]["scope"]["project"]["name"], "service");
        assert_eq!(body["auth"]["scope"]["project"]["domain"]["id"], "default");
    }

    #[test]
    fn without_a_project_the_token_is_unscoped() {
        let auth = PasswordAuth {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert!(auth.body()["auth"].get("scope").is_none());
    }

    #[test]
    fn keystone_answers_map_to_who_is_to_blame() {
        let body = br#"{"error": {"code": 404, "message": "Failed to validate token", "title": "Not Found"}}"#;
        let e = classify("u", StatusCode::NOT_FOUND, body);
        assert!(
            matches!(&e, KeystoneError::InvalidToken { message } if message == "Failed to validate token")
        );
        assert!(!e.is_outage());
        assert!(matches!(
            classify("u", StatusCode::UNAUTHORIZED, b""),
            KeystoneError::Unauthorized { .. }
        ));
        assert!(classify("u", StatusCode::BAD_GATEWAY, b"").is_outage());
        assert!(!classify("u", StatusCode::FORBIDDEN, b"").is_outage());
    }

    #[tokio::test]
    async fn a_closed_port_is_an_outage_that_names_the_url() {
        // Bind then drop: nothing listens on the port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let id =
            Identity::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let e = id.validate("s", "t", false).await.unwrap_err();
        assert!(e.is_outage(), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("127.0.0.1:{port}/v3/auth/tokens")),
            "{e}"
        );
    }
}
