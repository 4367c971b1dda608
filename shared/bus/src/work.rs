//! Consuming work queues: typed handlers, bounded concurrency, ack only when the work is
//! done, and a graceful stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use glance_proto::{Headers, Work};

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
    sub: Box<dyn Subscription>,
    concurrency: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    handler: F,
) where
    W: Work,
    F: Fn(W, Headers) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let handler = Arc::new(handler);
    crate::deliveries::run(sub, concurrency, stop, "work", |delivery: Delivery| {
        let handler = handler.clone();
        async move {
            let Delivery {
                envelope,
                responder,
            } = delivery;
            if envelope.headers.kind != W::NAME {
                tracing::error!(expected = W::NAME, "unexpected message type dead-lettered");
                let _ = responder.reject(false).await;
                return;
            }
            let work: W = match serde_json::from_value(envelope.payload) {
                Ok(work) => work,
                Err(e) => {
                    tracing::error!(error = %e, "malformed work dead-lettered");
                    let _ = responder.reject(false).await;
                    return;
                }
            };
            match handler(work, envelope.headers).await {
                Outcome::Done => {
                    if let Err(e) = responder.ack().await {
                        tracing::warn!(error = %e, "could not acknowledge; it will be redelivered");
                    }
                }
                Outcome::Retry(why) => {
                    // What failed for a passing reason (a restart, a full volume being
                    // freed) gets time to pass before the next of its few attempts.
                    let pause = retry_pause(responder.retries());
                    tracing::warn!(reason = %why, retry_in = ?pause, "work failed; requeued");
                    tokio::time::sleep(pause).await;
                    let _ = responder.reject(true).await;
                }
                Outcome::Reject(why) => {
                    tracing::error!(reason = %why, "work rejected; dead-lettered");
                    let _ = responder.reject(false).await;
                }
            }
        }
    })
    .await
}

/// How long to hold work that failed for the `retries`-th time before giving it back:
/// 1, 2, 4, 8 s, so the attempts a message has span about fifteen seconds of trouble.
fn retry_pause(retries: i64) -> Duration {
    Duration::from_secs(1 << retries.clamp(0, 3))
}
