//! glance-download: what an import from the Glance of another region needs besides the
//! ordinary import path (Glance's `get_glance_endpoint`, `_ImportMetadata` and
//! `_DownloadGlanceImage`): finding the region's image endpoint in the caller's catalog,
//! reading the remote image's record, and checking the downloaded bytes against it.
//!
//! The worker (`worker.rs`) stages the bytes through the pipeline like web-download's, so
//! the import plugins and the stores see them as any other staged import.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use glance_domain::{ContainerFormat, DiskFormat};
use glance_proto::tasks::SecretToken;
use serde_json::Value;

use super::filter::UriFilter;
use super::pipeline::Stored;

/// A remote image record is a few KiB; more than this is not one.
const RECORD_CAP: usize = 1 << 20;

/// Members of Glance's image record that are not properties: the core attributes and the
/// links, which a prefix of `extra_properties` (`os_` say) never copies as if they were.
fn is_core(key: &str) -> bool {
    glance_domain::Image::CORE_ATTRIBUTES.contains(&key)
        || ["file", "schema", "self"].contains(&key)
}

/// The URL of the `image` service for `interface` in `region` (compared without case, as
/// Glance does) in a service catalog: a Keystone v3 token's (`interface`, `region_id`,
/// `url` per endpoint) or keystonemiddleware's `X-Service-Catalog` (`region`,
/// `publicURL`, `internalURL`, `adminURL`).
pub fn endpoint_in_catalog(catalog: &Value, region: &str, interface: &str) -> Option<String> {
    let v2_key = format!("{interface}URL");
    catalog
        .as_array()?
        .iter()
        .filter(|s| s.get("type").and_then(Value::as_str) == Some("image"))
        .filter_map(|s| s.get("endpoints").and_then(Value::as_array))
        .flatten()
        .filter(|e| {
            ["region_id", "region"].iter().any(|k| {
                e.get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.eq_ignore_ascii_case(region))
            })
        })
        .find_map(|e| match e.get("interface").and_then(Value::as_str) {
            Some(i) if i == interface => e.get("url").and_then(Value::as_str),
            Some(_) => None,
            None => e.get(&v2_key).and_then(Value::as_str),
        })
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// What glance-download takes from the remote image's record.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteImage {
    pub disk_format: Option<DiskFormat>,
    pub container_format: Option<ContainerFormat>,
    pub size: u64,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    /// The properties whose names start with a prefix of `extra_properties`.
    pub properties: BTreeMap<String, String>,
}

impl RemoteImage {
    /// Reads the record as Glance's `_ImportMetadata` does: the image must be active; the
    /// properties named by `prefixes` are copied (never `os_glance_*`, Glance's reserved
    /// namespace, nor core fields); the size must be known.
    pub fn from_record(
        record: &Value,
        image_id: &str,
        prefixes: &[String],
    ) -> Result<Self, String> {
        let status = record.get("status").and_then(Value::as_str);
        if status != Some("active") {
            let shown = match record.get("status") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "None".into(),
            };
            return Err(format!(
                "Source image status should be active instead of {shown}"
            ));
        }
        let mut properties = BTreeMap::new();
        if let Some(fields) = record.as_object() {
            for (key, value) in fields {
                if !prefixes.iter().any(|p| key.starts_with(p.as_str())) {
                    continue;
                }
                if key.starts_with("os_glance") || is_core(key) {
                    tracing::warn!(property = %key, "glance-download: not copying a reserved or core field");
                    continue;
                }
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                properties.insert(key.clone(), value);
            }
        }
        let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
        let disk_format = match text("disk_format") {
            None => None,
            Some(f) => Some(f.parse().map_err(|_| {
                format!("Remote image {image_id} has disk_format {f}, which is not enabled here")
            })?),
        };
        let container_format = match text("container_format") {
            None => None,
            Some(f) => Some(f.parse().map_err(|_| {
                format!(
                    "Remote image {image_id} has container_format {f}, which is not enabled here"
                )
            })?),
        };
        let size = record
            .get("size")
            .and_then(|s| {
                s.as_u64()
                    .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
            })
            .ok_or_else(|| {
                format!("Size attribute of remote image {image_id} could not be determined.")
            })?;
        Ok(Self {
            disk_format,
            container_format,
            size,
            checksum: text("checksum"),
            os_hash_algo: text("os_hash_algo"),
            os_hash_value: text("os_hash_value"),
            properties,
        })
    }

    /// The algorithm to hash the download with so that its multihash can be compared with
    /// the remote one: the remote's, when we can compute it.
    pub fn comparable_algo(&self) -> Option<&str> {
        self.os_hash_algo
            .as_deref()
            .filter(|a| matches!(*a, "sha1" | "sha256" | "sha384" | "sha512" | "md5"))
    }

    /// Checks the staged download: its size as Glance does (with Glance's message), then
    /// the md5 checksum and the multihash the remote record gives (Glance stops at the
    /// size; see docs/parity.md).
    pub fn verify(&self, stored: &Stored, task_id: &str) -> Result<(), String> {
        if stored.size != self.size {
            return Err(format!(
                "Task {task_id} failed because downloaded data size {} is different from expected {}",
                stored.size, self.size
            ));
        }
        if let Some(expected) = &self.checksum {
            if *expected != stored.md5 {
                return Err(format!(
                    "Task {task_id} failed because downloaded data checksum {} is different from expected {expected}",
                    stored.md5
                ));
            }
        }
        if let (Some(algo), Some(expected)) = (self.comparable_algo(), &self.os_hash_value) {
            if *expected != stored.multihash {
                return Err(format!(
                    "Task {task_id} failed because downloaded data {algo} multihash {} is different from expected {expected}",
                    stored.multihash
                ));
            }
        }
        Ok(())
    }
}

/// `GET url` (a remote image's record) as the caller, read to at most [`RECORD_CAP`]
/// bytes. Errors read like urllib's, which Glance's task message shows.
pub async fn read_record(
    client: &reqwest::Client,
    filter: &UriFilter,
    url: &str,
    token: Option<&SecretToken>,
    read_timeout: Duration,
) -> Result<Value, String> {
    if !filter.allows_str(url) {
        return Err(format!("URI does not pass filtering: {url}"));
    }
    let mut request = client.get(url).header("accept", "application/json");
    if let Some(token) = token {
        request = request.header("x-auth-token", token.expose());
    }
    let response = tokio::time::timeout(read_timeout, request.send())
        .await
        .map_err(|_| format!("no response from {url} in time"))?
        .map_err(|e| super::fetch::describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "HTTP Error {}: {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        let next = tokio::time::timeout(read_timeout, stream.next())
            .await
            .map_err(|_| format!("{url} stalled"))?;
        match next {
            None => break,
            Some(Err(e)) => return Err(super::fetch::describe(&e)),
            Some(Ok(chunk)) => {
                if body.len() + chunk.len() > RECORD_CAP {
                    return Err(format!("{url} answered more than {RECORD_CAP} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url} did not answer an image: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Vec<String> {
        ["hw_", "trait:", "os_distro", "os_secure_boot", "os_type"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_v3_catalog_and_an_x_service_catalog_both_name_the_regions_endpoint() {
        let v3 = json!([
            {"type": "identity", "endpoints": [{"interface": "public", "region_id": "RegionTwo", "url": "http://ks"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://one:9292"},
                {"interface": "internal", "region_id": "RegionTwo", "region": "RegionTwo", "url": "http://two-int:9292"},
                {"interface": "public", "region_id": "RegionTwo", "region": "RegionTwo", "url": "http://two:9292/"}
            ]}
        ]);
        assert_eq!(
            endpoint_in_catalog(&v3, "regiontwo", "public").as_deref(),
            Some("http://two:9292")
        );
        assert_eq!(
            endpoint_in_catalog(&v3, "RegionTwo", "internal").as_deref(),
            Some("http://two-int:9292")
        );
        assert_eq!(endpoint_in_catalog(&v3, "RegionThree", "public"), None);
        let v2 = json!([{"type": "image", "endpoints": [
            {"region": "RegionTwo", "publicURL": "http://two:9292", "adminURL": "http://two-adm"}
        ]}]);
        assert_eq!(
            endpoint_in_catalog(&v2, "RegionTwo", "admin").as_deref(),
            Some("http://two-adm")
        );
        assert_eq!(endpoint_in_catalog(&v2, "RegionTwo", "internal"), None);
    }

    #[test]
    fn only_an_active_remote_image_is_imported() {
        let err =
            RemoteImage::from_record(&json!({"status": "queued"}), "i", &defaults()).unwrap_err();
        assert_eq!(
            err,
            "Source image status should be active instead of queued"
        );
    }

    #[test]
    fn the_listed_prefixes_are_copied_and_nothing_else() {
        let record = json!({
            "status": "active", "size": 3, "disk_format": "qcow2", "container_format": "bare",
            "hw_disk_bus": "scsi", "os_distro": "cirros", "os_type": "linux",
            "trait:CUSTOM_X": "required", "owner_specified.openstack.md5": "x",
            "os_glance_import_task": "t", "os_hidden": false, "name": "n"
        });
        let prefixes = [defaults(), vec!["os_".into()]].concat();
        let remote = RemoteImage::from_record(&record, "i", &prefixes).unwrap();
        let keys: Vec<&str> = remote.properties.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["hw_disk_bus", "os_distro", "os_type", "trait:CUSTOM_X"]
        );
        assert_eq!(remote.disk_format, Some(DiskFormat::Qcow2));
        assert_eq!(remote.size, 3);
    }

    #[test]
    fn a_record_without_a_size_is_refused_with_glances_message() {
        let err = RemoteImage::from_record(&json!({"status": "active"}), "abc", &[]).unwrap_err();
        assert_eq!(
            err,
            "Size attribute of remote image abc could not be determined."
        );
    }

    #[test]
    fn a_download_of_another_size_or_digest_fails_the_check() {
        let remote = RemoteImage::from_record(
            &json!({"status": "active", "size": 3, "checksum": "900150983cd24fb0d6963f7d28e17f72",
                    "os_hash_algo": "sha512", "os_hash_value": "beef"}),
            "i",
            &[],
        )
        .unwrap();
        let mut stored = Stored {
            location: "l".into(),
            size: 4,
            md5: "900150983cd24fb0d6963f7d28e17f72".into(),
            os_hash_algo: "sha512".into(),
            multihash: "beef".into(),
            virtual_size: None,
        };
        assert_eq!(
            remote.verify(&stored, "t1").unwrap_err(),
            "Task t1 failed because downloaded data size 4 is different from expected 3"
        );
        stored.size = 3;
        assert!(remote.verify(&stored, "t1").is_ok());
        stored.multihash = "dead".into();
        assert!(remote
            .verify(&stored, "t1")
            .unwrap_err()
            .contains("multihash"));
        stored.md5 = "0".into();
        assert!(remote
            .verify(&stored, "t1")
            .unwrap_err()
            .contains("checksum"));
    }
}
