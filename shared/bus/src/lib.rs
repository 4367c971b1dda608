//! The bus between the services.
//!
//! [`Transport`] is the seam: an in-process implementation ([`InProcess`]) for the embedded
//! all-in-one mode, and an AMQP one for the distributed mode. On top of it, [`Bus`] gives
//! typed request/reply for any [`glance_proto::Rpc`], and [`Router`] + [`serve`] dispatch
//! incoming requests to typed handlers. Contract tests run the same suite against every
//! transport.

pub mod amqp;
mod coalesce;
mod deliveries;
mod in_process;
pub mod router;
mod topic;
mod transport;
pub mod work;

pub use amqp::Amqp;
pub use coalesce::Coalescer;
pub use in_process::InProcess;
pub use router::{serve, serve_until, Router};
pub use topic::topic_matches;
pub use transport::{Delivery, Responder, Subscription, Transport};
pub use work::{consume_work, Outcome};

use std::sync::Arc;
use std::time::Duration;

use glance_proto::{Envelope, Event, Rpc, Work};

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("no reply from {queue} within {timeout:?}")]
    Timeout { queue: String, timeout: Duration },
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("no handler for message type {0}")]
    NoHandler(String),
    #[error("no queue is bound to work key {0}: is any worker configured for it?")]
    NoRoute(String),
}

impl BusError {
    /// Whether the same call may succeed later unchanged: nobody answered in time, or the
    /// broker was away. The other errors are a bug or a missing worker, and stay.
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Timeout { .. } | BusError::Unavailable(_))
    }
}

/// Typed access to a transport. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    transport: Arc<dyn Transport>,
    timeout: Duration,
}

impl Bus {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Whether requests to `queue` are answered in this process, without a message.
    pub fn is_inline(&self, queue: &str) -> bool {
        self.transport.inline_router(queue).is_some()
    }

    /// Sends `req` to its service's queue and waits for the typed reply.
    pub async fn call<R: Rpc>(
        &self,
        request_id: Option<String>,
        req: &R,
    ) -> Result<R::Reply, BusError> {
        if let Some(router) = self.transport.inline_router(R::QUEUE) {
            let call = router.call_typed(req.clone());
            match tokio::time::timeout(self.timeout, call).await {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => return Err(BusError::NoHandler(R::NAME.to_owned())),
                Err(_) => {
                    return Err(BusError::Timeout {
                        queue: R::QUEUE.to_owned(),
                        timeout: self.timeout,
                    })
                }
            }
        }
        let env = Envelope::new(R::NAME, request_id, req)
            .map_err(|e| BusError::Malformed(e.to_string()))?;
        let reply = self.transport.request(R::QUEUE, env, self.timeout).await?;
        serde_json::from_value(reply.payload).map_err(|e| BusError::Malformed(e.to_string()))
    }

    /// Publishes `work` for a worker pool under routing `key` (durable, confirmed).
    pub async fn publish_work<W: Work>(
        &self,
        key: &str,
        request_id: Option<String>,
        work: &W,
    ) -> Result<(), BusError> {
        let env = Envelope::new(W::NAME, request_id, work)
            .map_err(|e| BusError::Malformed(e.to_string()))?;
        self.transport.publish_work(key, env).await
    }

    /// Publishes `event` on the event exchange under its own topic.
    pub async fn publish_event<E: Event>(
        &self,
        request_id: Option<String>,
        event: &E,
    ) -> Result<(), BusError> {
        let env = Envelope::new(event.topic(), request_id, event)
            .map_err(|e| BusError::Malformed(e.to_string()))?;
        self.transport.publish_event(event.topic(), env).await
    }
}
