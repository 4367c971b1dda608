//! web-download: fetching an image over HTTP without becoming an SSRF proxy.
//!
//! Every hop, the first URL and each redirect target, must pass `[import_filtering_opts]`;
//! redirects are followed by reqwest under a policy that checks them, so a permitted URL
//! cannot bounce the worker to a forbidden one. Connect and read stalls time out, and the
//! size cap is enforced by the pipeline as bytes arrive (a `Content-Length` over the cap is
//! refused before reading).

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::config::WorkerConfig;
use super::filter::UriFilter;
use super::pipeline::PipelineError;

pub fn client(filter: &UriFilter, worker: &WorkerConfig) -> reqwest::Client {
    build(filter, worker, false)
}

/// The client of glance-download: [`client`]'s filtering and timeouts, but redirects are
/// followed only within the origin (scheme, host, port) of the first URL, so the caller's
/// token, sent to the other region's Glance, is never sent anywhere else.
pub fn same_origin_client(filter: &UriFilter, worker: &WorkerConfig) -> reqwest::Client {
    build(filter, worker, true)
}

fn build(filter: &UriFilter, worker: &WorkerConfig, same_origin: bool) -> reqwest::Client {
    let filter = filter.clone();
    let max = worker.max_redirects;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let first = attempt.previous().first().map(|u| u.origin());
        if attempt.previous().len() > max {
            attempt.error(format!("more than {max} redirects"))
        } else if same_origin && first.is_some_and(|o| o != attempt.url().origin()) {
            let to = attempt.url().to_string();
            attempt.error(format!("redirect to {to} leaves the remote Glance"))
        } else if !filter.allows(attempt.url()) {
            let to = attempt.url().to_string();
            attempt.error(format!("redirect to {to} does not pass filtering"))
        } else {
            attempt.follow()
        }
    });
    let agent = if same_origin {
        "glance-download"
    } else {
        "web-download"
    };
    reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(worker.connect_timeout)
        .user_agent(format!("glance-rs/{} {agent}", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with rustls builds")
}

/// Starts the download of `uri` and returns its body as a stream, each read bounded by
/// `read_timeout`.
pub async fn open(
    client: &reqwest::Client,
    filter: &UriFilter,
    uri: &str,
    cap: u64,
    read_timeout: Duration,
) -> Result<impl Stream<Item = Result<Bytes, PipelineError>> + Send, PipelineError> {
    open_request(client.get(uri), filter, uri, cap, read_timeout).await
}

/// [`open`] for a request already built (with headers) for `uri`.
pub async fn open_request(
    request: reqwest::RequestBuilder,
    filter: &UriFilter,
    uri: &str,
    cap: u64,
    read_timeout: Duration,
) -> Result<impl Stream<Item = Result<Bytes, PipelineError>> + Send, PipelineError> {
    if !filter.allows_str(uri) {
        return Err(PipelineError::Source(format!(
            "URI {uri} does not pass filtering"
        )));
    }
    let response = tokio::time::timeout(read_timeout, request.send())
        .await
        .map_err(|_| PipelineError::Source(format!("no response from {uri} in time")))?
        .map_err(|e| PipelineError::Source(describe(&e)))?;
    if !response.status().is_success() {
        return Err(PipelineError::Source(format!(
            "{uri} answered {}",
            response.status()
        )));
    }
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(PipelineError::TooLarge(cap));
    }
    let body = response.bytes_stream();
    Ok(futures::stream::unfold(body, move |mut body| async move {
        match tokio::time::timeout(read_timeout, body.next()).await {
            Err(_) => Some((
                Err(PipelineError::Source("the download stalled".into())),
                body,
            )),
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), body)),
            Ok(Some(Err(e))) => Some((Err(PipelineError::Source(describe(&e))), body)),
        }
    }))
}

/// reqwest's error with its causes (a refused redirect says why only in its source).
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
