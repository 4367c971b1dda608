//! Requests to the registry, the one owner of the database.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use glance_domain::{Image, ImageId, ImageStatus, MemberStatus, RequestContext, Visibility};
use serde::{Deserialize, Serialize};

use crate::{names::REGISTRY_QUEUE, Rpc};

/// Why the registry refused a request. Expected outcomes (not found, a lost race) are values
/// the API maps to HTTP; `Internal` is everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", content = "message", rename_all = "snake_case")]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(Missing),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Duplicate(String),
    #[error("{0}")]
    Invalid(String),
    #[error("registry failure: {0}")]
    Internal(String),
    /// The database cannot take writes for now (its volume is full): try again later.
    #[error("{0}")]
    Unavailable(String),
}

impl RegistryError {
    /// Whether the same request may succeed later unchanged (the database cannot take
    /// writes for now); everything else is an answer.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable(_))
    }

    /// An image that is not there (or that the caller may not see).
    pub fn image_not_found(id: impl std::fmt::Display) -> Self {
        RegistryError::NotFound(Missing::Image { id: id.to_string() })
    }
}

/// What the registry did not find: the kind of record and its id, shown in Glance's words
/// for it, so every caller reports the same message without knowing which request it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Missing {
    #[error("No image found with ID {id}")]
    Image { id: String },
    #[error("Task with the given ID {id} not found")]
    Task { id: String },
    #[error("{member} not found in the member list of the image {image}.")]
    Member { image: String, member: String },
    #[error("Artifact with id={id} not found.")]
    Artifact { id: String },
    /// A metadata definition (namespace, object, property, tag, resource type), in the
    /// message Glance gives for that kind.
    #[error("{message}")]
    Metadef { message: String },
}

pub type RegistryResult<T> = Result<T, RegistryError>;

/// One image, if the caller may see it. Deleted images are hidden unless `include_deleted`
/// (used by admins and the scrubber).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetImage {
    pub ctx: RequestContext,
    pub id: ImageId,
    #[serde(default)]
    pub include_deleted: bool,
}

impl Rpc for GetImage {
    const NAME: &'static str = "registry.get_image";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Image>;
}

/// Several [`GetImage`]s in one message, answered in order, each on its own (one may be
/// `NotFound` while the others are found). The API coalesces concurrent image-shows into
/// these so a busy bus carries one request and one reply, and the database runs one query,
/// for many callers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetImages {
    pub items: Vec<GetImage>,
}

impl Rpc for GetImages {
    const NAME: &'static str = "registry.get_images";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = Vec<RegistryResult<Image>>;
}

/// Many image lists in one message, answered in order, each with its own caller's view. The
/// API sends these under load, as [`GetImages`] for shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListImagesMany {
    pub items: Vec<ListImages>,
}

impl Rpc for ListImagesMany {
    const NAME: &'static str = "registry.list_images_many";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = Vec<RegistryResult<Vec<Image>>>;
}

/// Insert a new image. A duplicate id is `Duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateImage {
    pub ctx: RequestContext,
    pub image: Image,
}

impl Rpc for CreateImage {
    const NAME: &'static str = "registry.create_image";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Image>;
}

/// Replace an image's record (attributes, properties, tags, locations) with `image`.
/// With `from_state`, the save only happens if the stored status still equals it: the
/// compare-and-set Glance uses to make status changes race-free. With `unmodified_since`,
/// only if the stored record's `updated_at` still equals it: nobody saved it since it was
/// read (how a lock property is taken without a status change, e.g. copy-image's). A lost
/// race is `Conflict`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveImage {
    pub ctx: RequestContext,
    pub image: Image,
    #[serde(default)]
    pub from_state: Option<ImageStatus>,
    #[serde(default)]
    pub unmodified_since: Option<DateTime<Utc>>,
    /// Takes or releases the image's upload lease in the same compare-and-set.
    #[serde(default)]
    pub lease: crate::leases::LeaseChange,
}

impl Rpc for SaveImage {
    const NAME: &'static str = "registry.save_image";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Image>;
}

/// Mark an image deleted (status `deleted`, or `pending_delete` under delayed delete).
/// Replies with the record as it was deleted, so the caller can remove its data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteImage {
    pub ctx: RequestContext,
    pub id: ImageId,
    pub status: ImageStatus,
}

impl Rpc for DeleteImage {
    const NAME: &'static str = "registry.delete_image";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Image>;
}

/// A page of the images the caller may see.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListImages {
    pub ctx: RequestContext,
    #[serde(default)]
    pub filters: ImageFilters,
    /// Sort keys in order; the registry appends `created_at desc, id desc` as tie-breakers
    /// when they are missing, so pagination by marker is total.
    #[serde(default)]
    pub sort: Vec<SortKey>,
    pub limit: u32,
    #[serde(default)]
    pub marker: Option<ImageId>,
}

impl Rpc for ListImages {
    const NAME: &'static str = "registry.list_images";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Image>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortDir {
    Asc,
    Desc,
}

/// Columns an image list may be sorted by (Glance's allowed `sort_key`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortColumn {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    VirtualSize,
    Id,
    CreatedAt,
    UpdatedAt,
    MinDisk,
    MinRam,
    Owner,
    Visibility,
}

impl SortColumn {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    pub column: SortColumn,
    pub dir: SortDir,
}

/// Comparison operators Glance accepts on `created_at` / `updated_at` (`gt:2024-...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmpOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Which shared images a caller sees by their membership status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatusFilter {
    Pending,
    Accepted,
    Rejected,
    All,
}

impl MemberStatusFilter {
    pub fn matches(self, status: MemberStatus) -> bool {
        match self {
            MemberStatusFilter::All => true,
            MemberStatusFilter::Pending => status == MemberStatus::Pending,
            MemberStatusFilter::Accepted => status == MemberStatus::Accepted,
            MemberStatusFilter::Rejected => status == MemberStatus::Rejected,
        }
    }
}

/// Visibility filter: one visibility, or `all` (which still applies the caller's rights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisibilityFilter {
    Public,
    Private,
    Shared,
    Community,
    All,
}

impl From<Visibility> for VisibilityFilter {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => VisibilityFilter::Public,
            Visibility::Private => VisibilityFilter::Private,
            Visibility::Shared => VisibilityFilter::Shared,
            Visibility::Community => VisibilityFilter::Community,
        }
    }
}

/// Glance's list filters. Lists (`in:a,b`) mean "any of"; several tags mean "all of".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageFilters {
    #[serde(default)]
    pub ids: Option<Vec<ImageId>>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    #[serde(default)]
    pub statuses: Option<Vec<ImageStatus>>,
    #[serde(default)]
    pub visibility: Option<VisibilityFilter>,
    #[serde(default)]
    pub owners: Option<Vec<String>>,
    #[serde(default)]
    pub container_formats: Option<Vec<String>>,
    #[serde(default)]
    pub disk_formats: Option<Vec<String>>,
    #[serde(default)]
    pub size_min: Option<i64>,
    #[serde(default)]
    pub size_max: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub protected: Option<bool>,
    /// `None` hides hidden images (Glance's default); `Some(b)` selects `os_hidden = b`.
    #[serde(default)]
    pub os_hidden: Option<bool>,
    #[serde(default)]
    pub member_status: Option<MemberStatusFilter>,
    #[serde(default)]
    pub created_at: Vec<(CmpOp, DateTime<Utc>)>,
    #[serde(default)]
    pub updated_at: Vec<(CmpOp, DateTime<Utc>)>,
    /// Extra-property equality filters (`?hw_disk_bus=scsi`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// A project an image is shared with (Glance's `ImageMember`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMember {
    pub image_id: ImageId,
    pub member_id: String,
    pub status: MemberStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The members of an image the caller may see: all of them for the owner or an admin,
/// otherwise only the caller's own membership. The image must be visible to the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListMembers {
    pub ctx: RequestContext,
    pub image_id: ImageId,
}

impl Rpc for ListMembers {
    const NAME: &'static str = "registry.list_members";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<ImageMember>>;
}

/// Adds project `member_id` to an image, `pending`. An existing live membership is
/// `Duplicate`. Policy (owner only, shared images only, quota) is the API's business.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMember {
    pub ctx: RequestContext,
    pub image_id: ImageId,
    pub member_id: String,
}

impl Rpc for AddMember {
    const NAME: &'static str = "registry.add_member";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<ImageMember>;
}

/// Sets a membership's status; a missing membership is `NotFound`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateMember {
    pub ctx: RequestContext,
    pub image_id: ImageId,
    pub member_id: String,
    pub status: MemberStatus,
}

impl Rpc for UpdateMember {
    const NAME: &'static str = "registry.update_member";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<ImageMember>;
}

/// Soft-deletes a membership; a missing membership is `NotFound`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveMember {
    pub ctx: RequestContext,
    pub image_id: ImageId,
    pub member_id: String,
}

impl Rpc for RemoveMember {
    const NAME: &'static str = "registry.remove_member";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<()>;
}

/// Bytes a project stores (Glance's `_image_get_disk_usage_by_owner`): the size of each of
/// its live images times its locations, skipping `except` (the image being replaced).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageUsage {
    pub ctx: RequestContext,
    pub owner: String,
    #[serde(default)]
    pub except: Option<ImageId>,
}

impl Rpc for StorageUsage {
    const NAME: &'static str = "registry.storage_usage";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_keep_their_code_on_the_wire() {
        let e = RegistryError::Conflict("lost race".into());
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "conflict");
        assert_eq!(serde_json::from_value::<RegistryError>(json).unwrap(), e);
    }

    #[test]
    fn member_messages_survive_the_wire() {
        let member = ImageMember {
            image_id: ImageId::new(),
            member_id: "project-b".into(),
            status: MemberStatus::Accepted,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let json = serde_json::to_value(&member).unwrap();
        assert_eq!(json["status"], "accepted");
        assert_eq!(serde_json::from_value::<ImageMember>(json).unwrap(), member);
        let req: StorageUsage =
            serde_json::from_value(serde_json::json!({"ctx": {"request_id": "r"}, "owner": "p"}))
                .unwrap();
        assert_eq!(req.except, None, "except defaults to none");
    }

    #[test]
    fn sort_columns_parse_from_glance_names() {
        assert_eq!(SortColumn::parse("created_at"), Some(SortColumn::CreatedAt));
        assert_eq!(SortColumn::parse("nonsense"), None);
    }

    #[test]
    fn a_not_found_says_what_was_missing_in_glance_s_words_and_crosses_the_bus_whole() {
        let cases = [
            (
                RegistryError::image_not_found("i-1"),
                "No image found with ID i-1",
            ),
            (
                RegistryError::NotFound(Missing::Task { id: "t-1".into() }),
                "Task with the given ID t-1 not found",
            ),
            (
                RegistryError::NotFound(Missing::Member {
                    image: "i-1".into(),
                    member: "p-2".into(),
                }),
                "p-2 not found in the member list of the image i-1.",
            ),
            (
                RegistryError::NotFound(Missing::Artifact { id: "a-1".into() }),
                "Artifact with id=a-1 not found.",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
            let wire = serde_json::to_value(&error).unwrap();
            assert_eq!(wire["code"], "not_found", "{wire}");
            let back: RegistryError = serde_json::from_value(wire).unwrap();
            assert_eq!(back, error);
            assert!(!error.is_transient());
        }
        assert!(RegistryError::Unavailable("disk full".into()).is_transient());
    }
}
