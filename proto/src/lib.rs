//! The contracts on the bus.
//!
//! Every message travels inside an [`Envelope`]; its payload is the JSON of a type that
//! implements [`Rpc`] (a request that names its reply) or [`Event`] (fire and forget). Queue
//! and routing names are defined here, once, and carry the contract's major version so two
//! incompatible releases never consume each other's messages.

pub mod cache;
pub mod control;
mod envelope;
pub mod events;
pub mod glare;
pub mod leases;
pub mod metadefs;
pub mod registry;
pub mod scrub;
pub mod tasks;

pub use envelope::{Envelope, Headers};

use serde::{de::DeserializeOwned, Serialize};

/// A request with a typed reply. `NAME` is the envelope's `type` and selects the handler.
pub trait Rpc: Serialize + DeserializeOwned + Clone + Send + 'static {
    const NAME: &'static str;
    /// The queue of the service that answers this request.
    const QUEUE: &'static str;
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// Work for a pool of workers (a prefetch, a scrub, an import): published durably and
/// handled by exactly one consumer of each queue it is routed to. Handlers must be
/// idempotent: a message is redelivered if its worker dies before acknowledging it.
pub trait Work: Serialize + DeserializeOwned + Send + 'static {
    /// The envelope's `type`.
    const NAME: &'static str;
}

/// A notification (Glance's `image.create`, `image.delete`, ...): every bound queue gets a
/// copy; nobody answers.
pub trait Event: Serialize + DeserializeOwned + Send + 'static {
    /// The routing topic, which is also the envelope's `type`.
    fn topic(&self) -> &str;
}

/// Names of queues and exchanges, versioned with the contract.
pub mod names {
    /// Requests to the registry; every registry process consumes it (competing consumers).
    pub const REGISTRY_QUEUE: &str = "glance.v1.registry";
    /// Topic exchange that routes work (prefetch, scrub, import) to durable worker queues.
    pub const WORK_EXCHANGE: &str = "glance.v1.work";
    /// Topic exchange of notifications (`image.*`, `task.*`).
    pub const EVENTS_EXCHANGE: &str = "glance.v1.notifications";
}
