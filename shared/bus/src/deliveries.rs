//! The consuming loop every server and worker of the bus shares: bounded concurrency, a
//! graceful stop, and a drain of the work in hand before returning.

use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;

use crate::{Delivery, Subscription};

/// Takes deliveries from `sub` and runs `handle` on each in its own task, at most
/// `concurrency` at a time, until `stop` turns true or the subscription ends; then stops
/// taking messages (so the broker hands them to others) and waits for those in hand.
///
/// A permit is taken before the next message, so a busy consumer leaves messages to idle
/// ones. Each task runs in a `bus.<what>` span with the message type and request id.
pub(crate) async fn run<F, Fut>(
    mut sub: Box<dyn Subscription>,
    concurrency: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
    what: &'static str,
    handle: F,
) where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    loop {
        if *stop.borrow() {
            break;
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore never closes"),
            _ = stopped(&mut stop) => continue,
        };
        let next = tokio::select! {
            next = sub.next() => next,
            _ = stopped(&mut stop) => continue,
        };
        let Some(delivery) = next else {
            break;
        };
        let span = tracing::info_span!(
            "bus",
            what,
            kind = %delivery.envelope.headers.kind,
            request_id = delivery.envelope.headers.request_id.as_deref().unwrap_or("-"),
        );
        let task = handle(delivery);
        tokio::spawn(
            async move {
                let _permit = permit;
                task.await
            }
            .instrument(span),
        );
    }
    drop(sub);
    let _ = permits.acquire_many(concurrency as u32).await;
}

/// Resolves when `stop` changes; never, if its sender is gone (it can no longer say stop).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
