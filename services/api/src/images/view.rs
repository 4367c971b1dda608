//! How an image looks on the wire (Glance's `ImagesResponseSerializer._format_image`).

use chrono::{DateTime, SecondsFormat, Utc};
use glance_domain::Image;
use serde_json::{Map, Value};

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The JSON of one image: extra properties flat beside the core attributes, unset core
/// attributes as `null`, plus the `self`, `file` and `schema` links.
pub fn image_json(image: &Image) -> Value {
    let mut m = Map::with_capacity(24 + image.properties.len());
    for (k, v) in &image.properties {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    let id = image.id.to_string();
    m.insert("name".into(), opt_str(image.name.as_deref()));
    m.insert(
        "disk_format".into(),
        opt_str(image.disk_format.map(|f| f.as_str())),
    );
    m.insert(
        "container_format".into(),
        opt_str(image.container_format.map(|f| f.as_str())),
    );
    m.insert("visibility".into(), image.visibility.as_str().into());
    m.insert(
        "size".into(),
        image.size.map(Value::from).unwrap_or(Value::Null),
    );
    m.insert(
        "virtual_size".into(),
        image.virtual_size.map(Value::from).unwrap_or(Value::Null),
    );
    m.insert("status".into(), image.status.as_str().into());
    m.insert("checksum".into(), opt_str(image.checksum.as_deref()));
    m.insert("protected".into(), image.protected.into());
    m.insert("min_ram".into(), image.min_ram.into());
    m.insert("min_disk".into(), image.min_disk.into());
    m.insert("owner".into(), opt_str(image.owner.as_deref()));
    m.insert("os_hidden".into(), image.os_hidden.into());
    m.insert(
        "os_hash_algo".into(),
        opt_str(image.os_hash_algo.as_deref()),
    );
    m.insert(
        "os_hash_value".into(),
        opt_str(image.os_hash_value.as_deref()),
    );
    m.insert("id".into(), Value::String(id.clone()));
    m.insert("created_at".into(), timestamp(&image.created_at).into());
    m.insert("updated_at".into(), timestamp(&image.updated_at).into());
    m.insert(
        "tags".into(),
        Value::Array(image.tags.iter().cloned().map(Value::String).collect()),
    );
    m.insert("self".into(), format!("/v2/images/{id}").into());
    m.insert("file".into(), format!("/v2/images/{id}/file").into());
    m.insert("schema".into(), "/v2/schemas/image".into());
    Value::Object(m)
}

fn opt_str(v: Option<&str>) -> Value {
    v.map(|s| Value::String(s.to_owned()))
        .unwrap_or(Value::Null)
}

/// The same document as [`image_json`], serialized straight from the record: no
/// intermediate JSON tree, which is most of the cost of rendering a list page.
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
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_domain::{DiskFormat, ImageId};

    #[test]
    fn the_streamed_view_equals_the_json_tree() {
        let mut img = Image::new(ImageId::new(), Some("p".into()), chrono::Utc::now());
        img.name = Some("n".into());
        img.disk_format = Some(DiskFormat::Qcow2);
        img.size = Some(5);
        img.tags = vec!["a".into()];
        img.properties.insert("hw_disk_bus".into(), "scsi".into());
        let streamed: Value = serde_json::to_value(ImageView(&img)).unwrap();
        assert_eq!(streamed, image_json(&img));
    }
}
