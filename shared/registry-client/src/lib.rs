//! The registry as its callers see it. A request to the registry can end three ways: its
//! answer, a refusal (`RegistryError`: not found, a conflict, a database that cannot write
//! for now) or no answer at all (`BusError`: the broker or every registry away). Callers
//! used to unwrap the two layers at each call (`bus.call(..).await??`) and then inspect
//! HTTP error types to decide whether to retry; [`RegistryClient::call`] gives one
//! [`CallError`] that says itself what was missing and whether a retry may help.

use glance_bus::{Bus, BusError};
use glance_proto::registry::{Missing, RegistryError, RegistryResult};
use glance_proto::Rpc;

/// Why a registry request did not give its answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The request was not answered (nobody in time, the broker away) or could not be
    /// carried.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The registry answered with a refusal.
    #[error(transparent)]
    Refused(#[from] RegistryError),
}

impl CallError {
    /// Whether the same request may succeed later unchanged: no answer in time, the broker
    /// away, or a database that cannot take writes for now.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Bus(e) => e.is_transient(),
            CallError::Refused(e) => e.is_transient(),
        }
    }

    /// What the registry did not find, if that was the refusal.
    pub fn missing(&self) -> Option<&Missing> {
        match self {
            CallError::Refused(RegistryError::NotFound(missing)) => Some(missing),
            _ => None,
        }
    }
}

/// Requests to the registry over a bus. Cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    bus: Bus,
}

impl RegistryClient {
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    /// Sends `req` to the registry (under `request_id`, so its log lines can be found) and
    /// gives its answer.
    pub async fn call<R, T>(&self, request_id: Option<String>, req: &R) -> Result<T, CallError>
    where
        R: Rpc<Reply = RegistryResult<T>>,
    {
        Ok(self.bus.call(request_id, req).await??)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use glance_bus::{InProcess, Router};
    use glance_domain::{Image, ImageId, RequestContext};
    use glance_proto::names::REGISTRY_QUEUE;
    use glance_proto::registry::GetImage;

    use super::*;

    fn get(id: ImageId) -> GetImage {
        GetImage {
            ctx: RequestContext::admin("req-test".to_owned()),
            id,
            include_deleted: false,
        }
    }

    #[tokio::test]
    async fn a_refusal_says_what_was_missing_and_no_answer_says_try_again() {
        let transport = InProcess::new();
        let client = RegistryClient::new(
            Bus::new(Arc::new(transport.clone())).with_timeout(Duration::from_millis(200)),
        );
        let id = ImageId::new();

        let unanswered = client.call(None, &get(id)).await.unwrap_err();
        assert!(unanswered.is_transient(), "{unanswered:?}");
        assert!(unanswered.missing().is_none());

        let router = Router::new().route::<GetImage, _, _>(|r| async move {
            Err::<Image, _>(RegistryError::image_not_found(r.id))
        });
        transport.serve_inline(REGISTRY_QUEUE, router);
        let refused = client.call(None, &get(id)).await.unwrap_err();
        assert!(!refused.is_transient());
        assert_eq!(
            refused.missing(),
            Some(&Missing::Image { id: id.to_string() })
        );
        assert_eq!(refused.to_string(), format!("No image found with ID {id}"));
    }
}
