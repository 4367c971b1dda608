//! JSON schemas of the Images API v2, as served by Glance at `/v2/schemas/...`.
//!
//! The documents under `services/api/schemas/` were captured verbatim (pretty-printed) from
//! OpenStack Glance 33.0.0; see `schemas/README.md`. `python-glanceclient` builds its models
//! from `GET /v2/schemas/image` and validates JSON patches against it, so they are part of the
//! API contract and must not drift from Glance's.
//!
//! Two views are offered: [`schema`] gives a parsed [`serde_json::Value`] (parsed once), and
//! [`raw`] gives the document text exactly as stored, which keeps Glance's key order
//! (a `serde_json::Value` without the `preserve_order` feature re-serializes keys sorted).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

/// `(name, document text)` for every schema served.
const SOURCES: &[(&str, &str)] = &[
    ("image", include_str!("../schemas/image.json")),
    ("images", include_str!("../schemas/images.json")),
    ("member", include_str!("../schemas/member.json")),
    ("members", include_str!("../schemas/members.json")),
    ("task", include_str!("../schemas/task.json")),
    ("tasks", include_str!("../schemas/tasks.json")),
    (
        "metadefs/namespace",
        include_str!("../schemas/metadefs/namespace.json"),
    ),
    (
        "metadefs/namespaces",
        include_str!("../schemas/metadefs/namespaces.json"),
    ),
    (
        "metadefs/resource_type",
        include_str!("../schemas/metadefs/resource_type.json"),
    ),
    (
        "metadefs/resource_types",
        include_str!("../schemas/metadefs/resource_types.json"),
    ),
    (
        "metadefs/property",
        include_str!("../schemas/metadefs/property.json"),
    ),
    (
        "metadefs/properties",
        include_str!("../schemas/metadefs/properties.json"),
    ),
    (
        "metadefs/object",
        include_str!("../schemas/metadefs/object.json"),
    ),
    (
        "metadefs/objects",
        include_str!("../schemas/metadefs/objects.json"),
    ),
    ("metadefs/tag", include_str!("../schemas/metadefs/tag.json")),
    (
        "metadefs/tags",
        include_str!("../schemas/metadefs/tags.json"),
    ),
];

/// Names of every schema served, for tests.
pub const NAMES: &[&str] = &[
    "image",
    "images",
    "member",
    "members",
    "task",
    "tasks",
    "metadefs/namespace",
    "metadefs/namespaces",
    "metadefs/resource_type",
    "metadefs/resource_types",
    "metadefs/property",
    "metadefs/properties",
    "metadefs/object",
    "metadefs/objects",
    "metadefs/tag",
    "metadefs/tags",
];

static PARSED: LazyLock<HashMap<&'static str, Value>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(name, text)| {
            let value: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("schema {name:?} is not valid JSON: {e}"));
            (*name, value)
        })
        .collect()
});

/// The schema document served at `/v2/schemas/{name}` (name like "image", "images",
/// "metadefs/namespace").
pub fn schema(name: &str) -> Option<&'static Value> {
    PARSED.get(name)
}

/// The schema document text exactly as captured from Glance (pretty-printed, Glance's key
/// order), for serving byte-for-byte.
pub fn raw(name: &str) -> Option<&'static str> {
    SOURCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_sources_agree() {
        let source_names: Vec<&str> = SOURCES.iter().map(|(n, _)| *n).collect();
        assert_eq!(source_names, NAMES);
    }

    #[test]
    fn every_document_parses_and_has_name_and_properties_or_links() {
        for name in NAMES {
            let doc = schema(name).unwrap_or_else(|| panic!("no schema {name:?}"));
            let obj = doc
                .as_object()
                .unwrap_or_else(|| panic!("{name:?} is not an object"));
            assert!(
                obj.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
                "{name:?} has no name"
            );
            assert!(
                obj.get("properties").is_some_and(Value::is_object)
                    || obj.get("links").is_some_and(Value::is_array),
                "{name:?} has neither properties nor links"
            );
            assert!(raw(name).is_some());
        }
    }

    #[test]
    fn schema_names_match_glance() {
        // Glance names some schemas differently from their URL.
        let expected = [
            ("image", "image"),
            ("images", "images"),
            ("member", "member"),
            ("members", "members"),
            ("task", "task"),
            ("tasks", "tasks"),
            ("metadefs/namespace", "namespace"),
            ("metadefs/namespaces", "namespaces"),
            ("metadefs/resource_type", "resource_type_association"),
            ("metadefs/resource_types", "resource_type_associations"),
            ("metadefs/property", "property"),
            ("metadefs/properties", "properties"),
            ("metadefs/object", "object"),
            ("metadefs/objects", "objects"),
            ("metadefs/tag", "tag"),
            ("metadefs/tags", "tags"),
        ];
        for (url_name, doc_name) in expected {
            assert_eq!(
                schema(url_name).unwrap()["name"],
                json!(doc_name),
                "{url_name}"
            );
        }
    }

    #[test]
    fn unknown_names_are_none() {
        assert!(schema("nope").is_none());
        assert!(schema("").is_none());
        assert!(schema("metadefs").is_none());
        assert!(raw("nope").is_none());
    }

    #[test]
    fn image_allows_string_extra_properties() {
        let image = schema("image").unwrap();
        assert_eq!(image["additionalProperties"], json!({"type": "string"}));
    }

    #[test]
    fn image_core_properties_match_schema() {
        let props: Vec<&str> = schema("image").unwrap()["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Every attribute the schema names is a core attribute of the domain, so no user
        // can set one of them as an extra property.
        for p in &props {
            assert!(
                glance_domain::Image::CORE_ATTRIBUTES.contains(p),
                "{p} is in the image schema but not a core attribute"
            );
        }
    }

    #[test]
    fn image_enums() {
        let image = schema("image").unwrap();
        let p = &image["properties"];
        assert_eq!(
            p["disk_format"]["enum"],
            json!([
                null, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop"
            ])
        );
        assert_eq!(
            p["container_format"]["enum"],
            json!([
                null,
                "ami",
                "ari",
                "aki",
                "bare",
                "ovf",
                "ova",
                "docker",
                "compressed"
            ])
        );
        assert_eq!(
            p["visibility"]["enum"],
            json!(["community", "public", "private", "shared"])
        );
        assert_eq!(p["status"]["readOnly"], json!(true));
    }

    #[test]
    fn images_embeds_image_schema() {
        let images = schema("images").unwrap();
        assert_eq!(
            &images["properties"]["images"]["items"],
            schema("image").unwrap()
        );
    }

    #[test]
    fn raw_keeps_glance_key_order() {
        let text = raw("image").unwrap();
        let id = text.find("\"id\"").unwrap();
        let name = text.find("\"name\": {").unwrap();
        let locations = text.find("\"locations\"").unwrap();
        assert!(id < name && name < locations);
    }
}
