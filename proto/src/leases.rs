//! Upload leases: an image being written (`saving`, or `uploading` while its data is being
//! staged) belongs to one live upload, which holds a lease on it and renews it while the
//! bytes flow. A lease that runs out means its holder died or lost the bus; any API node
//! then removes the partial data and puts the image back to `queued`.
//!
//! The lease lives on the image row (the registry owns it); it is taken and released by the
//! status changes that start and end an upload ([`LeaseChange`] on
//! [`crate::registry::SaveImage`]), so an image never enters `saving` unleased.

use glance_domain::{ImageId, ImageStatus, RequestContext};
use serde::{Deserialize, Serialize};

use crate::names::REGISTRY_QUEUE;
use crate::registry::RegistryResult;
use crate::Rpc;

/// What a save does to the image's lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseChange {
    /// Leaves it as it is (every ordinary save).
    #[default]
    Keep,
    /// The save starts an upload: `holder` holds the image for `seconds` from now.
    Take { holder: String, seconds: u32 },
    /// The save ends the upload `holder` runs; it applies only while `holder` still holds
    /// the lease (a lease that ran out and was broken is `Conflict`).
    Release { holder: String },
}

/// Extends `holder`'s lease on `image_id` to `seconds` from now. `Conflict` if the lease is
/// no longer `holder`'s or has already run out: the upload must stop and keep nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewLease {
    pub ctx: RequestContext,
    pub image_id: ImageId,
    pub holder: String,
    pub seconds: u32,
}

impl Rpc for RenewLease {
    const NAME: &'static str = "registry.renew_lease";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<()>;
}

/// Up to `limit` live images whose upload lease ran out (admin only): `saving` or
/// `uploading` with an expired lease, and `saving` with no lease at all that nobody saved
/// for `unleased_after_seconds` (written before leases existed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpiredLeases {
    pub ctx: RequestContext,
    pub unleased_after_seconds: u32,
    pub limit: u32,
}

impl Rpc for ExpiredLeases {
    const NAME: &'static str = "registry.expired_leases";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<ExpiredLease>>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredLease {
    pub image_id: ImageId,
    pub status: ImageStatus,
    /// `None`: a `saving` image that never had a lease.
    pub holder: Option<String>,
}

/// Puts an image whose lease ran out back to `queued` (size cleared, lease dropped), if it
/// is still `status`, still held by `holder` and the lease has still run out. The caller
/// removes the partial data first. `Ok(false)`: someone else got there first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakLease {
    pub ctx: RequestContext,
    pub lease: ExpiredLease,
    pub unleased_after_seconds: u32,
}

impl Rpc for BreakLease {
    const NAME: &'static str = "registry.break_lease";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<bool>;
}

/// For each of `ids`, whether a live upload or import may own files of that image (admin
/// only): the sweep of orphaned files asks this before removing anything.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadStates {
    pub ctx: RequestContext,
    pub ids: Vec<ImageId>,
}

impl Rpc for UploadStates {
    const NAME: &'static str = "registry.upload_states";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<UploadState>>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub image_id: ImageId,
    /// `None`: no such image, or deleted.
    pub status: Option<ImageStatus>,
    /// A lease that has not run out.
    pub live_lease: bool,
    /// An import holds the image (`os_glance_import_task` is set).
    pub importing: bool,
}

impl UploadState {
    /// Whether files in a store's incoming area may belong to a write in progress.
    pub fn may_be_writing(&self) -> bool {
        self.live_lease || self.importing
    }

    /// Whether staged data of this image is still wanted: staged and waiting for its
    /// import, being staged, or being imported.
    pub fn keeps_staged_data(&self) -> bool {
        matches!(
            self.status,
            Some(ImageStatus::Uploading) | Some(ImageStatus::Importing)
        ) || self.may_be_writing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Option<ImageStatus>, live_lease: bool, importing: bool) -> UploadState {
        UploadState {
            image_id: ImageId::new(),
            status,
            live_lease,
            importing,
        }
    }

    #[test]
    fn staged_data_is_kept_while_its_image_waits_for_or_runs_its_import() {
        assert!(state(Some(ImageStatus::Uploading), false, false).keeps_staged_data());
        assert!(state(Some(ImageStatus::Importing), false, true).keeps_staged_data());
        assert!(!state(Some(ImageStatus::Queued), false, false).keeps_staged_data());
        assert!(!state(Some(ImageStatus::Active), false, false).keeps_staged_data());
        assert!(!state(None, false, false).keeps_staged_data());
    }

    #[test]
    fn incoming_data_belongs_to_a_live_lease_or_an_import() {
        assert!(state(Some(ImageStatus::Saving), true, false).may_be_writing());
        assert!(state(Some(ImageStatus::Active), false, true).may_be_writing());
        assert!(!state(Some(ImageStatus::Saving), false, false).may_be_writing());
    }

    #[test]
    fn a_save_from_an_older_api_keeps_the_lease_as_it_is() {
        let save = crate::registry::SaveImage {
            ctx: RequestContext::admin("r"),
            image: glance_domain::Image::new(ImageId::new(), None, chrono::Utc::now()),
            from_state: None,
            unmodified_since: None,
            lease: LeaseChange::Take {
                holder: "h".into(),
                seconds: 5,
            },
        };
        let mut json = serde_json::to_value(&save).unwrap();
        let back: crate::registry::SaveImage = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.lease, save.lease);
        json.as_object_mut().unwrap().remove("lease");
        let old: crate::registry::SaveImage = serde_json::from_value(json).unwrap();
        assert_eq!(old.lease, LeaseChange::Keep);
    }
}
