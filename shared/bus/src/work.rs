//! Consuming work queues: typed handlers, bounded concurrency, ack only when the work is
//! done, and a graceful stop.

use std::future::Future;
use std::sync::Arc;

use glance_proto::{Headers, Work};
use tracing::Instrument;

use crate::{Delivery, Subscription};

/// What became of one piece of work.
#[derive(Debug)]
pub enum Outcome {
    /// Done and durable: acknowledge.
    Done,
    /// Failed for a reason that may pass (a store error, a peer down): requeue. The
    /// transport bounds the attempts, then dead-letters the message.
    Retry(String),
    /// Can never succeed (malformed, refers to nothing): dead-letter it now.
    Reject(String),
}

/// Handles `W` messages from `sub` with at most `concurrency` at a time until `stop` turns
/// true or the subscription ends; then stops taking messages and waits for those in hand.
///
/// A handler that panics or a process that dies leaves its message unacknowledged, so the
/// broker gives it to another consumer.
pub async fn consume_work<W, F, Fut>(
    mut sub: Box<dyn Subscription>,
    concurrency: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handler: F,
) where
    W: Work,
    F: Fn(W, Headers) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let handler = Arc::new(handler);
    loop {
        if *stop.borrow() {
            break;
        }
        let stopped = async {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        // Take a permit before the message, so a busy worker leaves messages to others.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closes"),
            _ = stopped => continue,
        };
        let stopped = async {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let next = tokio::select! {
            next = sub.next() => next,
            _ = stopped => continue,
        };
        let Some(Delivery {
            envelope,
            responder,
        }) = next
        else {
            break;
        };
        let span = tracing::info_span!(
            "bus.work",
            kind = %envelope.headers.kind,
            request_id = envelope.headers.request_id.as_deref().unwrap_or("-"),
        );
        if envelope.headers.kind != W::NAME {
            tracing::error!(parent: &span, expected = W::NAME, "unexpected message type dead-lettered");
            let _ = responder.reject(false).await;
            continue;
        }
        let work: W = match serde_json::from_value(envelope.payload) {
            Ok(work) => work,
            Err(e) => {
                tracing::error!(parent: &span, error = %e, "malformed work dead-lettered");
                let _ = responder.reject(false).await;
                continue;
            }
        };
        let handler = handler.clone();
        let headers = envelope.headers;
        tokio::spawn(
            async move {
                let _permit = permit;
                match handler(work, headers).await {
                    Outcome::Done => {
                        if let Err(e) = responder.ack().await {
                            tracing::warn!(error = %e, "could not acknowledge; it will be redelivered");
                        }
                    }
                    Outcome::Retry(why) => {
                        tracing::warn!(reason = %why, "work failed; requeued");
                        let _ = responder.reject(true).await;
                    }
                    Outcome::Reject(why) => {
                        tracing::error!(reason = %why, "work rejected; dead-lettered");
                        let _ = responder.reject(false).await;
                    }
                }
            }
            .instrument(span),
        );
    }
    drop(sub);
    let _ = permits.acquire_many(concurrency as u32).await;
}
