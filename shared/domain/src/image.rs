use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{wire_enum, ContainerFormat, DiskFormat, ImageStatus, InvalidValue};

/// An image id: always a UUID, rendered in Glance's lower-case hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

/// Artifacts' ids are UUIDs too; their blobs' data and scrub jobs are named by them.
impl From<Uuid> for ImageId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl Default for ImageId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for ImageId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidValue::new("image id", s))
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    Public,
    Private,
    Shared,
    Community,
}

wire_enum!(Visibility, "visibility", {
    Public => "public",
    Private => "private",
    Shared => "shared",
    Community => "community",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
}

wire_enum!(MemberStatus, "member status", {
    Pending => "pending",
    Accepted => "accepted",
    Rejected => "rejected",
});

/// Where an image's bytes live: a store-specific URL (`file:///...`) and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub url: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default = "Location::default_status")]
    pub status: String,
}

impl Location {
    fn default_status() -> String {
        "active".into()
    }
}

/// An image record as the registry keeps it: Glance's core attributes, its extra properties,
/// tags and locations. `properties` never holds a core attribute name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub id: ImageId,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub owner: Option<String>,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub min_disk: i32,
    pub min_ram: i32,
    pub disk_format: Option<DiskFormat>,
    pub container_format: Option<ContainerFormat>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub locations: Vec<Location>,
}

impl Image {
    /// A fresh `queued` image with Glance's defaults (visibility `shared`, nothing stored).
    pub fn new(id: ImageId, owner: Option<String>, now: DateTime<Utc>) -> Self {
        Self {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            owner,
            size: None,
            virtual_size: None,
            min_disk: 0,
            min_ram: 0,
            disk_format: None,
            container_format: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            locations: Vec::new(),
        }
    }

    /// Core attribute names: these are columns, never extra properties.
    pub const CORE_ATTRIBUTES: &'static [&'static str] = &[
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "owner",
        "size",
        "virtual_size",
        "min_disk",
        "min_ram",
        "disk_format",
        "container_format",
        "created_at",
        "updated_at",
        "tags",
        "locations",
        "stores",
        "direct_url",
        "self",
        "file",
        "schema",
        "deleted",
        "deleted_at",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_id_must_be_a_uuid() {
        assert!("not-a-uuid".parse::<ImageId>().is_err());
        let id: ImageId = "8A0B2A7C-1D7E-4E2B-9A57-6F1C2E3D4B5A".parse().unwrap();
        assert_eq!(id.to_string(), "8a0b2a7c-1d7e-4e2b-9a57-6f1c2e3d4b5a");
    }

    #[test]
    fn a_new_image_is_queued_and_shared() {
        let img = Image::new(ImageId::new(), Some("p1".into()), Utc::now());
        assert_eq!(img.status, ImageStatus::Queued);
        assert_eq!(img.visibility, Visibility::Shared);
        assert_eq!(img.size, None);
    }
}
