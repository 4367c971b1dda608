//! Keeping every node's cache honest: each node listens on a private queue for the image
//! notifications any node publishes, and drops its entry when the image is deleted,
//! deactivated or its data changes. The node also answers `WhoHas` scatters.

use std::sync::Arc;

use glance_bus::{BusError, Delivery, Subscription};
use glance_cache::blocking;
use glance_domain::ImageId;
use glance_proto::cache::{Holding, WhoHas, NODES_TOPIC};
use glance_proto::events::Notification;
use glance_service::{Task, Worker, WorkerContext};

use super::NodeCache;

/// The notifications that can make a cached entry wrong.
pub const EVICTING_EVENTS: &[&str] = &["image.delete", "image.deactivate", "image.update"];

/// What a notification means for an entry holding `cached_checksum`.
fn must_evict(n: &Notification, cached_checksum: Option<&str>) -> bool {
    match n.event_type.as_str() {
        "image.delete" | "image.deactivate" => true,
        "image.update" => {
            let status = n.payload.get("status").and_then(|s| s.as_str());
            let checksum = n.payload.get("checksum").and_then(|s| s.as_str());
            status.is_some_and(|s| s != "active")
                || matches!((checksum, cached_checksum), (Some(new), Some(old)) if new != old)
        }
        _ => false,
    }
}

fn image_of(n: &Notification) -> Option<ImageId> {
    n.payload
        .get("id")
        .or_else(|| n.payload.get("image_id"))
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
}

/// The `cache-eviction` worker: drops this node's entry of an image another node deleted,
/// deactivated or gave new data. Subscribed when this returns.
pub async fn listener(node: Arc<NodeCache>) -> Result<impl Worker, BusError> {
    let patterns: Vec<String> = EVICTING_EVENTS.iter().map(|s| s.to_string()).collect();
    let sub = node
        .bus
        .transport()
        .subscribe_events(&patterns, None)
        .await?;
    Ok(Task::new("cache-eviction", move |ctx| {
        each_delivery(sub, ctx, move |delivery| {
            let node = node.clone();
            async move {
                if let Ok(n) =
                    serde_json::from_value::<Notification>(delivery.envelope.payload.clone())
                {
                    if let Some(id) = image_of(&n) {
                        evict_if_stale(&node, id, n).await;
                    }
                }
                let _ = delivery.responder.ack().await;
            }
        })
    }))
}

async fn evict_if_stale(node: &NodeCache, id: ImageId, n: Notification) {
    let cache = node.cache.clone();
    let evicted = blocking(move || {
        let checksum = cache.entry(id).and_then(|e| e.checksum);
        if (cache.is_cached(id) || cache.is_queued(id)) && must_evict(&n, checksum.as_deref()) {
            return cache.evict(id).unwrap_or(false);
        }
        false
    })
    .await;
    if evicted {
        tracing::info!(image_id = %id, "evicted from the image cache");
    }
}

/// The `cache-who-has` worker: answers `WhoHas` scatters with whether this node holds the
/// image. Subscribed when this returns.
pub async fn who_has_responder(node: Arc<NodeCache>) -> Result<impl Worker, BusError> {
    let sub = node
        .bus
        .transport()
        .subscribe_topics(&[NODES_TOPIC.to_owned()])
        .await?;
    Ok(Task::new("cache-who-has", move |ctx| {
        each_delivery(sub, ctx, move |delivery| {
            let node = node.clone();
            async move {
                let Ok(query) = serde_json::from_value::<WhoHas>(delivery.envelope.payload.clone())
                else {
                    let _ = delivery.responder.reject(false).await;
                    return;
                };
                let cache = node.cache.clone();
                let cached = blocking(move || cache.is_cached(query.image_id)).await;
                let answer = Holding {
                    node: node.node_id().to_owned(),
                    cached,
                };
                match delivery.envelope.reply(&answer) {
                    Ok(env) => {
                        let _ = delivery.responder.reply(env).await;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a WhoHas answer"),
                }
            }
        })
    }))
}

/// Handles each delivery in turn until the subscription ends or the worker is stopped.
async fn each_delivery<F, Fut>(
    mut sub: Box<dyn Subscription>,
    mut ctx: WorkerContext,
    handle: F,
) -> anyhow::Result<()>
where
    F: Fn(Delivery) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        let delivery = tokio::select! {
            next = sub.next() => next,
            _ = ctx.stopped() => return Ok(()),
        };
        match delivery {
            Some(delivery) => handle(delivery).await,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(event_type: &str, payload: serde_json::Value) -> Notification {
        Notification {
            event_type: event_type.into(),
            publisher_id: "image.test".into(),
            priority: "INFO".into(),
            timestamp: String::new(),
            payload,
        }
    }

    #[test]
    fn a_delete_or_deactivation_evicts() {
        assert!(must_evict(
            &note("image.delete", serde_json::json!({})),
            None
        ));
        assert!(must_evict(
            &note("image.deactivate", serde_json::json!({})),
            None
        ));
    }

    #[test]
    fn an_update_evicts_only_when_the_data_or_status_changed() {
        let same = note(
            "image.update",
            serde_json::json!({"status": "active", "checksum": "abc"}),
        );
        assert!(!must_evict(&same, Some("abc")));
        let changed = note(
            "image.update",
            serde_json::json!({"status": "active", "checksum": "def"}),
        );
        assert!(must_evict(&changed, Some("abc")));
        let queued = note("image.update", serde_json::json!({"status": "deactivated"}));
        assert!(must_evict(&queued, Some("abc")));
    }
}
