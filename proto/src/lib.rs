//! The contracts on the bus.
//!
//! Every message travels inside an [`Envelope`]; its payload is the JSON of a type that
//! implements [`Rpc`] (a request that names its reply) or [`Event`] (fire and forget). Queue
//! and routing names are defined here, once, and carry the contract's major version so two
//! incompatible releases never consume each other's messages.

pub mod control;
mod envelope;
pub mod registry;

pub use envelope::{Envelope, Headers};

use serde::{de::DeserializeOwned, Serialize};

/// A request with a typed reply. `NAME` is the envelope's `type` and selects the handler.
pub trait Rpc: Serialize + DeserializeOwned + Clone + Send + 'static {
    const NAME: &'static str;
    /// The queue of the service that answers this request.
    const QUEUE: &'static str;
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// Names of queues and exchanges, versioned with the contract.
pub mod names {
    /// Requests to the registry; every registry process consumes it (competing consumers).
    pub const REGISTRY_QUEUE: &str = "glance.v1.registry";
}
