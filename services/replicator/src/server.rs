//! One Glance server spoken to over the Images API v2 (Glance's `ImageService`, ported):
//! list, show, download, create, upload and patch, with the token in `X-Auth-Token`.
//! Image data only ever flows as streams.

use std::io::IsTerminal;

use futures::{Stream, TryStreamExt};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::cli::Server;

/// Largest page a list asks for; servers clamp it to their `api_limit_max`.
const PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot reach {server}: {source}")]
    Unreachable {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path} on {server} answered {status}: {message}")]
    Refused {
        server: String,
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("{server} sent a reply that is not an image document: {0}", server = .1)]
    BadReply(String, String),
}

impl ServerError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ServerError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub struct Glance {
    server: Server,
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Glance {
    pub fn new(server: &Server, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Glance {
            server: server.clone(),
            base: server.base_url(),
            http: reqwest::Client::builder()
                .user_agent(concat!("glance-replicator/", env!("CARGO_PKG_VERSION")))
                .build()?,
            token,
        })
    }

    pub fn name(&self) -> String {
        self.server.to_string()
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        tracing::debug!(server = %self.server, %method, path, "request");
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.header("X-Auth-Token", t),
            None => req,
        }
    }

    /// Sends `req`; any status but 2xx (and 404 when `absent_ok`) is an error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        req: RequestBuilder,
        absent_ok: bool,
    ) -> Result<Option<Response>, ServerError> {
        let res = req
            .send()
            .await
            .map_err(|source| ServerError::Unreachable {
                server: self.name(),
                source,
            })?;
        let status = res.status();
        if status.is_success() {
            return Ok(Some(res));
        }
        if status == StatusCode::NOT_FOUND && absent_ok {
            return Ok(None);
        }
        let body = res.text().await.unwrap_or_default();
        Err(ServerError::Refused {
            server: self.name(),
            method,
            path: path.to_owned(),
            status,
            message: message(&body),
        })
    }

    async fn json(&self, res: Response) -> Result<Value, ServerError> {
        res.json()
            .await
            .map_err(|e| ServerError::BadReply(e.to_string(), self.name()))
    }

    /// Every image the caller may see, hidden ones included (v2 lists `os_hidden` images only
    /// when asked), following `next` links.
    pub async fn list(&self) -> Result<Vec<Value>, ServerError> {
        let mut images: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for hidden in [false, true] {
            let mut path = format!(
                "/v2/images?visibility=all&member_status=all&os_hidden={hidden}&limit={PAGE}"
            );
            loop {
                let res = self
                    .send(Method::GET, &path, self.request(Method::GET, &path), false)
                    .await?
                    .expect("not absent_ok");
                let page = self.json(res).await?;
                for image in page["images"].as_array().into_iter().flatten() {
                    let id = image["id"].as_str().unwrap_or_default().to_owned();
                    if seen.insert(id) {
                        images.push(image.clone());
                    }
                }
                match page["next"].as_str() {
                    Some(next) if page["images"].as_array().is_some_and(|a| !a.is_empty()) => {
                        path = next.to_owned()
                    }
                    _ => break,
                }
            }
        }
        Ok(images)
    }

    /// The image, or `None` when the server has no such image (404).
    pub async fn show(&self, id: &str) -> Result<Option<Value>, ServerError> {
        let path = format!("/v2/images/{id}");
        match self
            .send(Method::GET, &path, self.request(Method::GET, &path), true)
            .await?
        {
            Some(res) => Ok(Some(self.json(res).await?)),
            None => Ok(None),
        }
    }

    /// The image's data as a response to read as a stream; `None` when it has none (204).
    pub async fn download(&self, id: &str) -> Result<Option<Response>, ServerError> {
        let path = format!("/v2/images/{id}/file");
        let res = self
            .send(Method::GET, &path, self.request(Method::GET, &path), false)
            .await?
            .expect("not absent_ok");
        Ok((res.status() != StatusCode::NO_CONTENT).then_some(res))
    }

    pub async fn create(&self, body: &Value) -> Result<Value, ServerError> {
        let path = "/v2/images";
        let req = self.request(Method::POST, path).json(body);
        let res = self
            .send(Method::POST, path, req, false)
            .await?
            .expect("not absent_ok");
        self.json(res).await
    }

    pub async fn patch(&self, id: &str, ops: &Value) -> Result<Value, ServerError> {
        let path = format!("/v2/images/{id}");
        let req = self
            .request(Method::PATCH, &path)
            .header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(ops.to_string());
        let res = self
            .send(Method::PATCH, &path, req, false)
            .await?
            .expect("not absent_ok");
        self.json(res).await
    }

    /// Streams `data` as the image's data (`PUT /v2/images/{id}/file`).
    pub async fn upload<S>(&self, id: &str, data: S, size: Option<u64>) -> Result<(), ServerError>
    where
        S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let path = format!("/v2/images/{id}/file");
        let mut req = self
            .request(Method::PUT, &path)
            .header("Content-Type", "application/octet-stream");
        if let Some(n) = size {
            req = req.header("Content-Length", n);
        }
        self.send(
            Method::PUT,
            &path,
            req.body(reqwest::Body::wrap_stream(data)),
            false,
        )
        .await?;
        Ok(())
    }
}

/// The `message` of a Glance error body, or the body itself.
fn message(body: &str) -> String {
    let doc: Option<Value> = serde_json::from_str(body).ok();
    doc.as_ref()
        .and_then(|v| v["message"].as_str().or(v["title"].as_str()))
        .map(str::to_owned)
        .unwrap_or_else(|| body.trim().chars().take(500).collect())
}

/// A progress bar on stderr for `size` bytes of `what`, when stderr is a terminal.
pub fn progress(what: &str, size: Option<u64>) -> Option<indicatif::ProgressBar> {
    std::io::stderr()
        .is_terminal()
        .then(|| glance_telemetry::progress::bytes(size, what))
}

/// A response's body as a stream of chunks that moves `bar` along.
pub fn body_stream(
    res: Response,
    bar: Option<indicatif::ProgressBar>,
) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    res.bytes_stream()
        .map_err(std::io::Error::other)
        .inspect_ok(move |chunk| {
            if let Some(b) = &bar {
                b.inc(chunk.len() as u64);
            }
        })
}
