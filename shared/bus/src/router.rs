use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use glance_proto::{Envelope, Rpc};

use crate::{BusError, Delivery, Transport};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler =
    Arc<dyn Fn(serde_json::Value) -> BoxFuture<Result<serde_json::Value, BusError>> + Send + Sync>;
type Any = Box<dyn std::any::Any + Send>;
type TypedHandler = Arc<dyn Fn(Any) -> BoxFuture<Any> + Send + Sync>;

/// Maps message types to typed handlers.
#[derive(Clone, Default)]
pub struct Router {
    handlers: HashMap<&'static str, Handler>,
    /// The same handlers without serialization, for callers in the same process.
    typed: HashMap<&'static str, TypedHandler>,
    in_flight: Arc<std::sync::atomic::AtomicU64>,
    /// Requests dispatched since start, for telling how work spreads over replicas.
    served: Arc<std::sync::atomic::AtomicU64>,
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
        let typed = handler.clone();
        self.typed.insert(
            R::NAME,
            Arc::new(move |req: Any| {
                let handler = typed.clone();
                Box::pin(async move {
                    let req = *req
                        .downcast::<R>()
                        .expect("typed request of the routed type");
                    Box::new(handler(req).await) as Any
                })
            }),
        );
        self.handlers.insert(
            R::NAME,
            Arc::new(move |payload: serde_json::Value| {
                let handler = handler.clone();
                Box::pin(async move {
                    let req: R = serde_json::from_value(payload)
                        .map_err(|e| BusError::Malformed(e.to_string()))?;
                    let reply = handler(req).await;
                    serde_json::to_value(&reply).map_err(|e| BusError::Malformed(e.to_string()))
                })
            }),
        );
        self
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.in_flight.clone()
    }

    /// How many requests this router has dispatched from the bus since it was made.
    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs the handler for `req` directly, without serializing anything; `None` if no
    /// handler is routed for `R`.
    pub async fn call_typed<R: Rpc>(&self, req: R) -> Option<R::Reply> {
        let handler = self.typed.get(R::NAME)?.clone();
        let _busy = InFlightGuard::enter(&self.in_flight);
        let reply = handler(Box::new(req)).await;
        Some(
            *reply
                .downcast::<R::Reply>()
                .expect("typed reply of the routed type"),
        )
    }

    /// Runs the handler for `env`, returning the reply envelope.
    pub async fn dispatch(&self, env: Envelope) -> Result<Envelope, BusError> {
        let handler = self
            .handlers
            .get(env.headers.kind.as_str())
            .ok_or_else(|| BusError::NoHandler(env.headers.kind.clone()))?
            .clone();
        let _busy = InFlightGuard::enter(&self.in_flight);
        self.served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Envelope { headers, payload } = env;
        let reply = handler(payload).await?;
        let request = Envelope {
            headers,
            payload: serde_json::Value::Null,
        };
        Ok(request.reply_value(reply))
    }
}

/// Counts a request as in flight until dropped, so a cancelled call is not counted forever.
struct InFlightGuard(Arc<std::sync::atomic::AtomicU64>);

impl InFlightGuard {
    fn enter(counter: &Arc<std::sync::atomic::AtomicU64>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
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
    let (_keep, stop) = tokio::sync::watch::channel(false);
    serve_until(transport, queue, router, concurrency, stop).await
}

/// Like [`serve`], until `stop` turns true: then it takes no more messages, waits for the
/// ones in flight to finish, and returns (the graceful half of `glance-control shutdown`).
pub async fn serve_until(
    transport: Arc<dyn Transport>,
    queue: &str,
    router: Router,
    concurrency: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BusError> {
    let sub = transport.subscribe(queue).await?;
    serve_subscription_until(sub, router, concurrency, stop).await;
    Ok(())
}

/// Handles deliveries from an existing subscription until it ends.
pub async fn serve_subscription(
    sub: Box<dyn crate::Subscription>,
    router: Router,
    concurrency: usize,
) {
    let (_keep, stop) = tokio::sync::watch::channel(false);
    serve_subscription_until(sub, router, concurrency, stop).await
}

async fn serve_subscription_until(
    sub: Box<dyn crate::Subscription>,
    router: Router,
    concurrency: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let router = Arc::new(router);
    crate::deliveries::run(sub, concurrency, stop, "handle", |delivery: Delivery| {
        let router = router.clone();
        async move {
            let Delivery {
                envelope,
                responder,
            } = delivery;
            match router.dispatch(envelope).await {
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
    })
    .await
}
