//! A minimal keep-alive HTTP/1.1 client on raw hyper connections: one connection per
//! concurrent client, requests in sequence, bodies drained without parsing.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn empty() -> Body {
    Empty::new().boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// `data` as a stream of `chunk`-byte frames with no length: hyper sends it chunked, like
/// glanceclient's iterator of 64 KiB reads. Slices share `data`, so nothing is copied.
pub fn chunked(data: Bytes, chunk: usize) -> Body {
    let n = data.len().div_ceil(chunk);
    let frames = futures::stream::iter((0..n).map(move |i| {
        let end = ((i + 1) * chunk).min(data.len());
        Ok::<_, Infallible>(Frame::data(data.slice(i * chunk..end)))
    }));
    StreamBody::new(frames).boxed_unsync()
}

pub struct Conn {
    tx: SendRequest<Body>,
    addr: SocketAddr,
    host: String,
    /// Sent with every request (identity headers, for example).
    headers: Vec<(String, String)>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::open_with(addr, Vec::new()).await
    }

    /// A connection that sends `headers` with every request.
    pub async fn open_with(
        addr: SocketAddr,
        headers: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            tx,
            addr,
            host: addr.to_string(),
            headers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> anyhow::Result<Response<Incoming>> {
        self.tx.ready().await.context("connection closed")?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        Ok(self.tx.send_request(req.body(body)?).await?)
    }

    /// GET and collect the whole body.
    pub async fn get_bytes(&mut self, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let resp = self.send(Method::GET, path, None, empty()).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.get_bytes(path).await?;
        expect_json(path, status, &body)
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        json: &serde_json::Value,
    ) -> anyhow::Result<(u16, Bytes)> {
        let body = full(serde_json::to_vec(json)?);
        let resp = self
            .send(Method::POST, path, Some("application/json"), body)
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }
}

/// Reads and discards a body, returning its length.
pub async fn drain(mut body: Incoming) -> anyhow::Result<u64> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok(n)
}

/// The JSON body of a 2xx response, or an error quoting the body.
pub fn expect_json(path: &str, status: u16, body: &[u8]) -> anyhow::Result<serde_json::Value> {
    if !(200..300).contains(&status) {
        bail!("{path} -> {status}: {}", snippet(body));
    }
    serde_json::from_slice(body).with_context(|| format!("{path}: response is not JSON"))
}

/// The start of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(500)]);
    text.replace('\n', " ")
}
