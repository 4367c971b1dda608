//! How an image looks on the wire (Glance's `ImagesResponseSerializer._format_image`).

use chrono::{DateTime, SecondsFormat, Utc};
use glance_domain::Image;

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The JSON of one image (`ImagesResponseSerializer._format_image`): extra properties flat
/// beside the core attributes, unset core attributes as `null`, plus the `self`, `file` and
/// `schema` links. Serialized straight from the record, with no intermediate JSON tree.
pub struct ImageView<'a>(pub &'a Image);

impl serde::Serialize for ImageView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let image = self.0;
        let id = image.id.to_string();
        let mut m = s.serialize_map(Some(24 + image.properties.len()))?;
        for (k, v) in &image.properties {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("name", &image.name)?;
        m.serialize_entry("disk_format", &image.disk_format.map(|f| f.as_str()))?;
        m.serialize_entry(
            "container_format",
            &image.container_format.map(|f| f.as_str()),
        )?;
        m.serialize_entry("visibility", image.visibility.as_str())?;
        m.serialize_entry("size", &image.size)?;
        m.serialize_entry("virtual_size", &image.virtual_size)?;
        m.serialize_entry("status", image.status.as_str())?;
        m.serialize_entry("checksum", &image.checksum)?;
        m.serialize_entry("protected", &image.protected)?;
        m.serialize_entry("min_ram", &image.min_ram)?;
        m.serialize_entry("min_disk", &image.min_disk)?;
        m.serialize_entry("owner", &image.owner)?;
        m.serialize_entry("os_hidden", &image.os_hidden)?;
        m.serialize_entry("os_hash_algo", &image.os_hash_algo)?;
        m.serialize_entry("os_hash_value", &image.os_hash_value)?;
        m.serialize_entry("id", &id)?;
        m.serialize_entry("created_at", &timestamp(&image.created_at))?;
        m.serialize_entry("updated_at", &timestamp(&image.updated_at))?;
        m.serialize_entry("tags", &image.tags)?;
        m.serialize_entry("self", &format!("/v2/images/{id}"))?;
        m.serialize_entry("file", &format!("/v2/images/{id}/file"))?;
        m.serialize_entry("schema", "/v2/schemas/image")?;
        // Multi-store: the stores holding the data, from the locations' `store` metadata
        // (which only multi-store uploads and imports write).
        let stores: Vec<&str> = image
            .locations
            .iter()
            .filter_map(|l| l.metadata.get("store").map(String::as_str))
            .collect();
        if !stores.is_empty() {
            m.serialize_entry("stores", &stores.join(","))?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_domain::{DiskFormat, ImageId};
    use serde_json::{json, Value};

    #[test]
    fn an_image_renders_as_glance_renders_it() {
        let mut img = Image::new(ImageId::new(), Some("p".into()), chrono::Utc::now());
        img.name = Some("n".into());
        img.disk_format = Some(DiskFormat::Qcow2);
        img.size = Some(5);
        img.tags = vec!["a".into()];
        img.properties.insert("hw_disk_bus".into(), "scsi".into());
        let doc: Value = serde_json::to_value(ImageView(&img)).unwrap();
        let id = img.id.to_string();
        assert_eq!(doc["hw_disk_bus"], "scsi");
        assert_eq!(doc["name"], "n");
        assert_eq!(doc["disk_format"], "qcow2");
        assert_eq!(doc["container_format"], Value::Null);
        assert_eq!(doc["size"], 5);
        assert_eq!(doc["virtual_size"], Value::Null);
        assert_eq!(doc["checksum"], Value::Null);
        assert_eq!(doc["tags"], json!(["a"]));
        assert_eq!(doc["self"], format!("/v2/images/{id}"));
        assert_eq!(doc["file"], format!("/v2/images/{id}/file"));
        assert_eq!(doc["schema"], "/v2/schemas/image");
        assert_eq!(doc.as_object().unwrap().len(), 23);
    }
}
