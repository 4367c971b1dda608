//! Which fields of a v2 image travel between servers, how two images differ, and the
//! JSON-patch that makes the target like the source.
//!
//! v1 sent everything as `x-image-meta-*` headers and left out a `dontreplicate` list. In v2
//! the server computes some fields itself and refuses writes to them, so those are never
//! copied, whatever `-D` says: they are checked after an upload instead.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// Computed or owned by the server: never sent, compared only as data checks.
pub const SERVER_FIELDS: &[&str] = &[
    "id",
    "checksum",
    "size",
    "status",
    "os_hash_algo",
    "os_hash_value",
    "virtual_size",
    "file",
    "self",
    "schema",
    "locations",
    "direct_url",
    "stores",
    "created_at",
    "updated_at",
];

/// Attributes every v2 image has; they can be replaced but never removed.
const CORE: &[&str] = &[
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "protected",
    "os_hidden",
    "min_ram",
    "min_disk",
    "owner",
    "tags",
];

/// The fields left alone in one run: the server's, Glance's reserved `os_glance_*`
/// properties, and what `-D` names (v1 names mapped to v2).
#[derive(Debug, Clone)]
pub struct Policy {
    skip: BTreeSet<String>,
    /// `-D properties`: leave every extra property alone.
    skip_properties: bool,
}

impl Policy {
    pub fn new(dontreplicate: &str) -> Self {
        let mut skip: BTreeSet<String> = SERVER_FIELDS.iter().map(|s| s.to_string()).collect();
        let mut skip_properties = false;
        for word in dontreplicate.split_whitespace() {
            match word {
                "is_public" => {
                    skip.insert("visibility".into());
                }
                "location" => {
                    skip.insert("locations".into());
                }
                "properties" => skip_properties = true,
                other => {
                    skip.insert(other.to_owned());
                }
            }
        }
        Policy {
            skip,
            skip_properties,
        }
    }

    /// Leave `owner` alone from now on (the target refused to let us set it).
    pub fn skip_owner(&mut self) {
        self.skip.insert("owner".into());
    }

    pub fn owner_copied(&self) -> bool {
        !self.skip.contains("owner")
    }

    pub fn copies(&self, key: &str) -> bool {
        !(self.skip.contains(key)
            || key.starts_with("os_glance")
            || ["deleted", "deleted_at", "location"].contains(&key)
            || (self.skip_properties && !CORE.contains(&key)))
    }

    /// The fields of `image` that replication carries.
    pub fn copyable(&self, image: &Value) -> Map<String, Value> {
        image
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| self.copies(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The body of `POST /v2/images` that recreates `image` with its id: the copyable
    /// fields that have a value.
    pub fn create_body(&self, image: &Value) -> Value {
        let mut body: Map<String, Value> = self
            .copyable(image)
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .collect();
        body.insert("id".into(), image["id"].clone());
        Value::Object(body)
    }

    /// What must change on `target` for its copyable fields to equal `source`'s.
    pub fn diff(&self, source: &Value, target: &Value) -> Vec<Change> {
        let src = self.copyable(source);
        let dst = self.copyable(target);
        let mut changes = Vec::new();
        for (k, v) in &src {
            match dst.get(k) {
                Some(t) if same(k, v, t) => {}
                Some(_) => changes.push(Change::Replace(k.clone(), v.clone())),
                None if v.is_null() => {}
                None => changes.push(Change::Add(k.clone(), v.clone())),
            }
        }
        for k in dst.keys() {
            if !src.contains_key(k) && !CORE.contains(&k.as_str()) {
                changes.push(Change::Remove(k.clone()));
            }
        }
        changes
    }
}

/// Tags are a set: their order is the server's business.
fn same(key: &str, a: &Value, b: &Value) -> bool {
    if key == "tags" {
        let set = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|t| t.to_string())
                .collect()
        };
        return set(a) == set(b);
    }
    a == b
}

/// One field to change on the target.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Add(String, Value),
    Replace(String, Value),
    Remove(String),
}

impl Change {
    pub fn field(&self) -> &str {
        match self {
            Change::Add(k, _) | Change::Replace(k, _) | Change::Remove(k) => k,
        }
    }
}

/// RFC 6901: `~` and `/` in a name are escaped in a JSON pointer.
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The `application/openstack-images-v2.1-json-patch` body for `changes`.
pub fn patch(changes: &[Change]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| match c {
                Change::Add(k, v) => json!({"op": "add", "path": pointer(k), "value": v}),
                Change::Replace(k, v) => {
                    json!({"op": "replace", "path": pointer(k), "value": v})
                }
                Change::Remove(k) => json!({"op": "remove", "path": pointer(k)}),
            })
            .collect(),
    )
}

/// The fields named in `changes`, for messages.
pub fn names(changes: &[Change]) -> String {
    changes
        .iter()
        .map(Change::field)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Value {
        json!({
            "id": "0b8d2a9e-2f43-4c6b-9a57-5a7c1f0e8d11", "name": "cirros", "status": "active",
            "size": 10, "checksum": "abc", "disk_format": "raw", "container_format": "bare",
            "visibility": "public", "min_ram": 0, "min_disk": 0, "protected": false,
            "os_hidden": false, "owner": null, "tags": ["a", "b"], "hw_disk_bus": "scsi",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "self": "/v2/images/x", "file": "/v2/images/x/file", "schema": "/v2/schemas/image",
            "os_glance_importing_to_stores": "", "stores": "file"
        })
    }

    #[test]
    fn server_computed_and_reserved_fields_are_never_copied() {
        let body = Policy::new(crate::cli::DEFAULT_DONTREPLICATE).create_body(&image());
        let keys: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in ["status", "size", "checksum", "created_at", "self", "stores"] {
            assert!(!keys.contains(k), "{k} copied");
        }
        assert!(!keys.contains("os_glance_importing_to_stores"));
        assert!(!keys.contains("owner"), "null values are not sent");
        for k in ["id", "name", "visibility", "tags", "hw_disk_bus", "min_ram"] {
            assert!(keys.contains(k), "{k} missing");
        }
    }

    #[test]
    fn v1_names_in_dontreplicate_map_to_v2_fields() {
        let p = Policy::new("is_public properties");
        let body = p.create_body(&image());
        assert!(body.get("visibility").is_none());
        assert!(body.get("hw_disk_bus").is_none());
        assert!(body.get("name").is_some());
    }

    #[test]
    fn identical_images_need_no_change_whatever_the_tag_order() {
        let p = Policy::new(crate::cli::DEFAULT_DONTREPLICATE);
        let mut other = image();
        other["tags"] = json!(["b", "a"]);
        other["updated_at"] = json!("2027-01-01T00:00:00Z");
        other["status"] = json!("queued");
        assert!(p.diff(&image(), &other).is_empty());
    }

    #[test]
    fn differences_become_add_replace_and_remove() {
        let p = Policy::new(crate::cli::DEFAULT_DONTREPLICATE);
        let mut target = image();
        target["min_ram"] = json!(512);
        target["extra"] = json!("only-here");
        target.as_object_mut().unwrap().remove("hw_disk_bus");
        let changes = p.diff(&image(), &target);
        assert_eq!(
            changes,
            vec![
                Change::Add("hw_disk_bus".into(), json!("scsi")),
                Change::Replace("min_ram".into(), json!(0)),
                Change::Remove("extra".into()),
            ]
        );
        assert_eq!(
            patch(&changes)[2],
            json!({"op": "remove", "path": "/extra"})
        );
    }

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
    }
}
