//! The image cache's contracts: prefetch work routed to one API node's cache workers (or to
//! every node's), and the scatter query "which nodes hold this image?".

use serde::{Deserialize, Serialize};

use glance_domain::ImageId;

use crate::Work;

/// Routing key that reaches every node's prefetch queue (warm a whole fleet).
pub const PREFETCH_ALL_KEY: &str = "cache.prefetch.all";

/// Routing key of one node's prefetch queue.
pub fn prefetch_key(node: &str) -> String {
    format!("cache.prefetch.{node}")
}

/// The durable prefetch queue of one node, shared by that node's cache workers.
pub fn queue_name(node: &str) -> String {
    format!("glance.v1.cache.{node}")
}

/// The bindings of a node's prefetch queue: its own key and the fleet-wide one.
pub fn queue_bindings(node: &str) -> Vec<String> {
    vec![prefetch_key(node), PREFETCH_ALL_KEY.to_owned()]
}

/// Fetch one image into a node's cache. Idempotent: a worker skips an image already cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefetch {
    pub image_id: ImageId,
}

impl Work for Prefetch {
    const NAME: &'static str = "cache.prefetch";
}

/// Control-exchange topic every API node with a cache answers [`WhoHas`] on.
pub const NODES_TOPIC: &str = "cache.nodes";

/// Scattered to every API node: does your cache hold this image?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoHas {
    pub image_id: ImageId,
}

impl WhoHas {
    pub const KIND: &'static str = "cache.who_has";
}

/// One node's answer to [`WhoHas`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub node: String,
    pub cached: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_queue_hears_its_own_key_and_the_fleet_key() {
        let b = queue_bindings("api-1");
        assert_eq!(b, vec!["cache.prefetch.api-1", "cache.prefetch.all"]);
        assert_eq!(queue_name("api-1"), "glance.v1.cache.api-1");
    }
}
