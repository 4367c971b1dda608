use std::time::Duration;

use async_trait::async_trait;
use glance_proto::Envelope;

use crate::BusError;

/// What a transport must do. Implementations: [`crate::InProcess`], and AMQP.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends a request to `queue` and waits up to `timeout` for the correlated reply.
    async fn request(
        &self,
        queue: &str,
        request: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, BusError>;

    /// Starts consuming `queue`. Several subscriptions to one queue compete: each message
    /// goes to one of them.
    async fn subscribe(&self, queue: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// Publishes `request` to every subscriber of `topic` and gathers the replies that
    /// arrive within `window` (scatter-gather, for control commands).
    async fn scatter(
        &self,
        topic: &str,
        request: Envelope,
        window: Duration,
    ) -> Result<Vec<Envelope>, BusError>;

    /// Receives every message published to one of `topics` (each subscriber gets its own
    /// copy, unlike a queue).
    async fn subscribe_topics(&self, topics: &[String]) -> Result<Box<dyn Subscription>, BusError>;

    /// Declares the durable work queue `queue` (with its dead-letter queue) and binds it to
    /// the work exchange under each of `bindings` (topic patterns: `*` one word, `#` any).
    /// Idempotent; publishers and consumers may both call it.
    async fn declare_work_queue(&self, queue: &str, bindings: &[String]) -> Result<(), BusError>;

    /// Publishes work under routing `key`: persistent, confirmed by the broker before this
    /// returns. Every queue bound to a matching pattern gets one copy, which one of its
    /// consumers takes (see [`Transport::subscribe`]). Fails with `NoRoute` when no queue is
    /// bound, so work is never silently dropped.
    async fn publish_work(&self, key: &str, work: Envelope) -> Result<(), BusError>;

    /// Publishes a notification on the event exchange under `topic` (e.g. `image.delete`).
    /// Nobody listening is not an error.
    async fn publish_event(&self, topic: &str, event: Envelope) -> Result<(), BusError>;

    /// Receives events whose topic matches one of `patterns`. With `queue: None` this
    /// subscriber gets its own copy of each (a private queue, gone with the process); with
    /// `Some(name)` a durable queue is shared by every subscriber naming it (competing
    /// consumers, messages kept while none is running).
    async fn subscribe_events(
        &self,
        patterns: &[String],
        queue: Option<&str>,
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// A router in this process that answers `queue` directly, if the transport has one
    /// (the embedded bus); callers may then skip serialization altogether.
    fn inline_router(&self, _queue: &str) -> Option<crate::Router> {
        None
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, or `None` when the transport is closed.
    async fn next(&mut self) -> Option<Delivery>;
}

/// A message taken from a queue. It must be answered (`reply`) or settled (`ack`/`reject`);
/// dropping it unsettled returns it to the queue where the transport can.
pub struct Delivery {
    pub envelope: Envelope,
    pub responder: Box<dyn Responder>,
}

#[async_trait]
pub trait Responder: Send {
    /// Sends `reply` to the requester (if it asked for one) and acknowledges the delivery.
    async fn reply(self: Box<Self>, reply: Envelope) -> Result<(), BusError>;
    /// Acknowledges without a reply: the work is done and durable.
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    /// Gives the message back (`requeue`) or drops it to the dead-letter queue.
    async fn reject(self: Box<Self>, requeue: bool) -> Result<(), BusError>;
    /// How many times this message was given back before this delivery (0 the first time).
    fn retries(&self) -> i64 {
        0
    }
}
