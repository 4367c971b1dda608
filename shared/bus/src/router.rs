use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use glance_proto::{Envelope, Rpc};
use tracing::Instrument;

use crate::{BusError, Delivery, Transport};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler =
    Arc<dyn Fn(Envelope) -> BoxFuture<Result<serde_json::Value, BusError>> + Send + Sync>;

/// Maps message types to typed handlers.
#[derive(Clone, Default)]
pub struct Router {
    handlers: HashMap<&'static str, Handler>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes requests of type `R` to `handler`.
    pub fn route<R, F, Fut>(mut self, handler: F) -> Self
    where
        R: Rpc,
        F: Fn(R) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R::Reply> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            R::NAME,
            Arc::new(move |env: Envelope| {
                let handler = handler.clone();
                Box::pin(async move {
                    let req: R = serde_json::from_value(env.payload)
                        .map_err(|e| BusError::Malformed(e.to_string()))?;
                    let reply = handler(req).await;
                    serde_json::to_value(&reply).map_err(|e| BusError::Malformed(e.to_string()))
                })
            }),
        );
        self
    }

    /// Runs the handler for `env`, returning the reply envelope.
    pub async fn dispatch(&self, env: &Envelope) -> Result<Envelope, BusError> {
        let handler = self
            .handlers
            .get(env.headers.kind.as_str())
            .ok_or_else(|| BusError::NoHandler(env.headers.kind.clone()))?
            .clone();
        let payload = handler(env.clone()).await?;
        Ok(Envelope {
            payload,
            ..env
                .reply(&())
                .map_err(|e| BusError::Malformed(e.to_string()))?
        })
    }
}

/// Consumes `queue` until the transport closes, running up to `concurrency` requests at once.
/// Each request is handled in its own task under a span carrying the request id.
pub async fn serve(
    transport: Arc<dyn Transport>,
    queue: &str,
    router: Router,
    concurrency: usize,
) -> Result<(), BusError> {
    let sub = transport.subscribe(queue).await?;
    serve_subscription(sub, router, concurrency).await;
    Ok(())
}

/// Handles deliveries from an existing subscription until it ends.
pub async fn serve_subscription(
    mut sub: Box<dyn crate::Subscription>,
    router: Router,
    concurrency: usize,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let router = Arc::new(router);
    while let Some(Delivery {
        envelope,
        responder,
    }) = sub.next().await
    {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        let router = router.clone();
        let span = tracing::info_span!(
            "bus.handle",
            kind = %envelope.headers.kind,
            request_id = envelope.headers.request_id.as_deref().unwrap_or("-"),
        );
        tokio::spawn(
            async move {
                let _permit = permit;
                match router.dispatch(&envelope).await {
                    Ok(reply) => {
                        if let Err(e) = responder.reply(reply).await {
                            tracing::warn!(error = %e, "could not send reply");
                        }
                    }
                    Err(e) => {
                        // A message we can never handle must not loop forever.
                        tracing::error!(error = %e, "dropping unhandleable message");
                        let _ = responder.reject(false).await;
                    }
                }
            }
            .instrument(span),
        );
    }
}
