//! Delayed delete and the scrubber: the scrub job on the work queue, and the registry
//! requests the scrubber makes about images waiting in `pending_delete`.
//!
//! A scrub job names an image. Whoever handles it re-reads the image from the registry, so a
//! job is only a hint: a job for an image already scrubbed, restored or never pending is a
//! no-op, and two scrubbers may receive jobs for the same image without harm.

use chrono::{DateTime, Utc};
use glance_domain::{Artifact, Image, ImageId, RequestContext};
use serde::{Deserialize, Serialize};

use crate::names::REGISTRY_QUEUE;
use crate::registry::RegistryResult;
use crate::{Rpc, Work};

/// The durable work queue every scrubber consumes (competing consumers).
pub const SCRUB_QUEUE: &str = "glance.v1.scrub";
/// Routing key of scrub jobs on the work exchange.
pub const SCRUB_KEY: &str = "scrub.image";

/// Remove the data of one image and finish its delete.
///
/// `locations` are extra URLs to remove whatever the image's state: the API lists here the
/// data it failed to remove when it deleted an image at once (no delayed delete), so a
/// transient store error does not leak a file.
///
/// With `artifact`, the id names an artifact of the glare service instead: one left
/// `deleted` by a delayed delete has its blobs removed and then its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrubImage {
    pub image_id: ImageId,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub artifact: bool,
}

impl Work for ScrubImage {
    const NAME: &'static str = "scrub.image";
}

/// `pending_delete` images deleted at or before `deleted_before`, oldest first, with their
/// locations (Glance's `ScrubDBQueue._get_all_images`). Admin only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListPendingDelete {
    pub ctx: RequestContext,
    pub deleted_before: DateTime<Utc>,
    pub limit: u32,
    /// Page after this image (ordered by `deleted_at`, then id).
    #[serde(default)]
    pub marker: Option<ImageId>,
}

impl Rpc for ListPendingDelete {
    const NAME: &'static str = "scrub.list_pending_delete";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Image>>;
}

/// Artifacts left `deleted` by a delayed delete at or before `deleted_before` (their
/// `updated_at`), oldest first, ties by id, after `marker`; every type, every owner (Glare's
/// scrubber's query). Admin only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListDeletedArtifacts {
    pub ctx: RequestContext,
    pub deleted_before: DateTime<Utc>,
    pub limit: u32,
    #[serde(default)]
    pub marker: Option<uuid::Uuid>,
}

impl Rpc for ListDeletedArtifacts {
    const NAME: &'static str = "scrub.list_deleted_artifacts";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Artifact>>;
}

/// How much waits for the scrubber: images in `pending_delete` and their bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScrubBacklog {
    pub ctx: RequestContext,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlog {
    pub images: u64,
    pub bytes: u64,
}

impl Rpc for ScrubBacklog {
    const NAME: &'static str = "scrub.backlog";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Backlog>;
}

/// A scrubber is about to remove the data of a `pending_delete` image: its locations are
/// marked `scrubbing`, after which a restore is refused (the data may be partly gone).
/// Replies whether the image was still `pending_delete`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimScrub {
    pub ctx: RequestContext,
    pub image_id: ImageId,
}

impl Rpc for ClaimScrub {
    const NAME: &'static str = "scrub.claim";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<bool>;
}

/// The data of a `pending_delete` image is gone: mark it `deleted` and soft-delete its
/// children. Only applies while the image is still `pending_delete` (a restore in between
/// wins); replies whether it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishScrub {
    pub ctx: RequestContext,
    pub image_id: ImageId,
}

impl Rpc for FinishScrub {
    const NAME: &'static str = "scrub.finish";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<bool>;
}

/// Bring a `pending_delete` image back to `active` with everything it had: locations,
/// properties, tags and members. Anything but `pending_delete`, or an image a scrubber has
/// started on, is `Conflict`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreImage {
    pub ctx: RequestContext,
    pub image_id: ImageId,
}

impl Rpc for RestoreImage {
    const NAME: &'static str = "scrub.restore";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Image>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrub_job_without_locations_reads_from_older_senders() {
        let id = ImageId::new();
        let job: ScrubImage =
            serde_json::from_value(serde_json::json!({ "image_id": id.to_string() })).unwrap();
        assert_eq!(job.image_id, id);
        assert!(job.locations.is_empty());
    }
}
