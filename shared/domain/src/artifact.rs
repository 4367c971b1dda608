//! Glare's artifacts: typed, versioned records with binary blobs (Heat templates, Murano
//! packages, images, ...), served by `glance-glare` and kept by the registry.
//!
//! The columns every artifact has are typed here; the type's own fields, `description`,
//! `tags`, `metadata` and the blobs travel as a JSON object (`fields`) that the glare
//! service validates against the type before anything is saved.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{wire_enum, InvalidValue};

/// Glare's lifecycle: `drafted` -> `active` <-> `deactivated`; `deleted` only by a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactStatus {
    Drafted,
    Active,
    Deactivated,
    Deleted,
}

wire_enum!(ArtifactStatus, "artifact status", {
    Drafted => "drafted",
    Active => "active",
    Deactivated => "deactivated",
    Deleted => "deleted",
});

impl ArtifactStatus {
    /// Whether a status change through an update may go from `self` to `to` (Glare's
    /// table; staying put is always allowed). `deleted` is never reached by an update.
    pub fn can_change_to(self, to: ArtifactStatus) -> bool {
        use ArtifactStatus::*;
        self == to
            || matches!(
                (self, to),
                (Drafted, Active) | (Active, Deactivated) | (Deactivated, Active)
            )
    }
}

/// `private` (the default) or `public`; publishing is one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactVisibility {
    Private,
    Public,
}

wire_enum!(ArtifactVisibility, "artifact visibility", {
    Private => "private",
    Public => "public",
});

/// One artifact as the registry stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: Uuid,
    pub type_name: String,
    pub name: String,
    /// Normalised semver (`1.0` is stored as `1.0.0`).
    pub version: Semver,
    /// The project that created it.
    pub owner: String,
    pub visibility: ArtifactVisibility,
    pub status: ArtifactStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub activated_at: Option<DateTime<Utc>>,
    /// Everything else, by field name: `description`, `tags`, `metadata`, the type's own
    /// fields and its blobs (see the glare service's `types` module).
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Bumped by every save; a save names the revision it read (compare-and-set).
    #[serde(default)]
    pub revision: i64,
}

impl Artifact {
    /// Every blob this artifact holds, as stored: the value of each blob field and of each
    /// key of each blob dict of its type. Only the type's blob fields are read, so a
    /// metadata key named `location` is never taken for data.
    pub fn blobs(&self) -> Vec<&serde_json::Value> {
        use crate::artifact_types::{ArtifactType, Kind};
        use serde_json::Value;
        let Some(t) = ArtifactType::find(&self.type_name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in t.fields {
            match (f.kind, self.fields.get(f.name)) {
                (Kind::Blob, Some(blob)) if blob.is_object() => out.push(blob),
                (Kind::BlobDict, Some(Value::Object(map))) => out.extend(map.values()),
                _ => {}
            }
        }
        out
    }

    /// The store locations of every internal blob (external ones have none).
    pub fn blob_locations(&self) -> Vec<String> {
        self.blobs()
            .into_iter()
            .filter_map(|b| b.get("location")?.as_str().map(str::to_owned))
            .collect()
    }

    /// The upload ids of the blobs still `saving`: their partial data in a store's
    /// incoming area is named by them.
    pub fn saving_uploads(&self) -> Vec<String> {
        self.blobs()
            .into_iter()
            .filter(|b| b["status"] == "saving")
            .filter_map(|b| b["upload_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Bytes held in this artifact's blobs, for the data quotas.
    pub fn blob_bytes(&self) -> i64 {
        self.blobs()
            .into_iter()
            .filter_map(|b| b.get("size")?.as_i64())
            .sum()
    }
}

/// A semantic version (semver 2.0): `major.minor.patch[-pre][+build]`, ordered as semver
/// says (`2.0.0-beta` < `2.0.0` < `10.0.0`; build metadata does not order). Glare accepts
/// `1` and `1.0` for `1.0.0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Semver {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Vec<String>,
    pub build: Option<String>,
}

impl FromStr for Semver {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidValue::new("version", s);
        let (rest, build) = match s.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (s, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let ident_ok =
            |id: &str| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let numbers: Vec<&str> = core.split('.').collect();
        if numbers.is_empty() || numbers.len() > 3 {
            return Err(bad());
        }
        let mut parsed = [0u64; 3];
        for (i, n) in numbers.iter().enumerate() {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            parsed[i] = n.parse().map_err(|_| bad())?;
        }
        let pre: Vec<String> = match pre {
            Some(pre) => {
                let ids: Vec<&str> = pre.split('.').collect();
                if !ids.iter().all(|id| ident_ok(id)) {
                    return Err(bad());
                }
                ids.into_iter().map(str::to_owned).collect()
            }
            None => Vec::new(),
        };
        if let Some(build) = build {
            if !build.split('.').all(ident_ok) {
                return Err(bad());
            }
        }
        Ok(Semver {
            major: parsed[0],
            minor: parsed[1],
            patch: parsed[2],
            pre,
            build: build.map(str::to_owned),
        })
    }
}

impl fmt::Display for Semver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre.join("."))?;
        }
        if let Some(build) = &self.build {
            write!(f, "+{build}")?;
        }
        Ok(())
    }
}

impl Ord for Semver {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release comes before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => cmp_pre(&self.pre, &other.pre),
            })
            .then_with(|| self.build.cmp(&other.build))
    }
}

impl PartialOrd for Semver {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Semver's pre-release precedence: numeric identifiers numerically and below alphanumeric
/// ones, which compare as ASCII; a longer list wins a tie.
fn cmp_pre(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

impl Serialize for Semver {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Semver {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Semver {
        s.parse().unwrap()
    }

    #[test]
    fn blobs_are_read_from_the_types_blob_fields_only() {
        let now = Utc::now();
        let fields = serde_json::json!({
            "image": {"status": "active", "location": "file:///s/a", "size": 10},
            "metadata": {"status": "saving", "location": "file:///etc", "upload_id": "x"},
        });
        let mut a = Artifact {
            id: Uuid::new_v4(),
            type_name: "images".into(),
            name: "n".into(),
            version: v("1"),
            owner: "p".into(),
            visibility: ArtifactVisibility::Private,
            status: ArtifactStatus::Drafted,
            created_at: now,
            updated_at: now,
            activated_at: None,
            fields: fields.as_object().unwrap().clone(),
            revision: 0,
        };
        assert_eq!(a.blob_locations(), ["file:///s/a"]);
        assert_eq!(a.blob_bytes(), 10);
        assert!(a.saving_uploads().is_empty());
        a.fields["image"] = serde_json::json!({"status": "saving", "upload_id": "u1"});
        assert_eq!(a.saving_uploads(), ["u1"]);
        assert!(a.blob_locations().is_empty());
    }

    #[test]
    fn short_versions_are_normalised_to_three_numbers() {
        assert_eq!(v("1.0").to_string(), "1.0.0");
        assert_eq!(v("2").to_string(), "2.0.0");
        assert_eq!(v("2.0.0-beta").to_string(), "2.0.0-beta");
        assert_eq!(v("1.2.3-rc.1+build.5").to_string(), "1.2.3-rc.1+build.5");
    }

    #[test]
    fn versions_order_as_semver_not_as_strings() {
        assert!(v("2.0.0-beta") < v("2.0.0"));
        assert!(v("2.0.0") < v("10.0.0"));
        assert!(v("1.0.0-alpha") < v("1.0.0-alpha.1"));
        assert!(v("1.0.0-alpha.1") < v("1.0.0-beta"));
        assert!(v("1.0.0-2") < v("1.0.0-10"));
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in [
            "",
            "a.b.c",
            "1.2.3.4",
            "1..2",
            "1.0.0-",
            "1.0.0-be$ta",
            "-1.0",
        ] {
            assert!(bad.parse::<Semver>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_glares_status_changes_are_allowed() {
        use ArtifactStatus::*;
        assert!(Drafted.can_change_to(Active));
        assert!(Active.can_change_to(Deactivated));
        assert!(Deactivated.can_change_to(Active));
        assert!(!Active.can_change_to(Drafted));
        assert!(!Deactivated.can_change_to(Drafted));
        assert!(!Drafted.can_change_to(Deleted));
    }
}
