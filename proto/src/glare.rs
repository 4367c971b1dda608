//! The artifact repository's requests to the registry (`glance-glare`'s records).
//!
//! The registry stores artifacts and applies visibility (non-admins see their project's
//! artifacts and public ones) and uniqueness (name + version per type, among the owner's
//! private artifacts and among all public ones); the glare service owns every other rule
//! (types, fields, lifecycle, policy), so the registry never needs to know a type.

use glance_domain::{Artifact, RequestContext};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::registry::RegistryResult;
use crate::{names::REGISTRY_QUEUE, Rpc};

/// Insert a new artifact. The same type, name and version already among the owner's
/// private artifacts (or among public ones, for a public artifact) is `Duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateArtifact {
    pub ctx: RequestContext,
    pub artifact: Artifact,
}

impl Rpc for CreateArtifact {
    const NAME: &'static str = "registry.glare.create";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Artifact>;
}

/// One artifact the caller may see, of `type_name` unless that is `None` (the `all` type).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetArtifact {
    pub ctx: RequestContext,
    #[serde(default)]
    pub type_name: Option<String>,
    pub id: Uuid,
}

impl Rpc for GetArtifact {
    const NAME: &'static str = "registry.glare.get";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Artifact>;
}

/// Replace an artifact's record, if its stored `revision` still equals `artifact.revision`
/// (else `Conflict`: someone saved it since it was read). Replies with the saved record
/// (its revision bumped). A name, version or visibility that would collide is `Duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveArtifact {
    pub ctx: RequestContext,
    pub artifact: Artifact,
}

impl Rpc for SaveArtifact {
    const NAME: &'static str = "registry.glare.save";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Artifact>;
}

/// Remove an artifact's record, if its revision is still `revision`; replies with the
/// record as it was, so the caller removes the blobs it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteArtifact {
    pub ctx: RequestContext,
    pub id: Uuid,
    pub revision: i64,
}

impl Rpc for DeleteArtifact {
    const NAME: &'static str = "registry.glare.delete";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Artifact>;
}

/// Every artifact of `type_name` (every type when `None`) the caller may see, oldest
/// first, but those left `deleted` by a delayed delete unless `include_deleted`, only
/// `owner`'s when set, and only those named in `names` when it is not empty. Glare's
/// filters, sorting and paging are the glare service's: they depend on each type's fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListArtifacts {
    pub ctx: RequestContext,
    #[serde(default)]
    pub type_name: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub include_deleted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

impl Rpc for ListArtifacts {
    const NAME: &'static str = "registry.glare.list";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Artifact>>;
}

/// Quotas by project, then by quota name (`max_artifact_number[:type]`,
/// `max_uploaded_data[:type]`); -1 is no limit.
pub type Quotas = std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>;

/// Replace the quotas of every project named (a project's old quotas all go).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetQuotas {
    pub ctx: RequestContext,
    pub values: Quotas,
}

impl Rpc for SetQuotas {
    const NAME: &'static str = "registry.glare.set_quotas";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<()>;
}

/// The quotas set for `project_id`, or for every project when `None`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListQuotas {
    pub ctx: RequestContext,
    #[serde(default)]
    pub project_id: Option<String>,
}

impl Rpc for ListQuotas {
    const NAME: &'static str = "registry.glare.list_quotas";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Quotas>;
}
