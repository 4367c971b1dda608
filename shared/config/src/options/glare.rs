//! Options of `glance-glare`, the artifact repository (Glare's own names where it has
//! them: `default_api_limit`, `max_api_limit`, `max_artifact_number`, `max_uploaded_data`).

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "glare",
        "enabled",
        Some("true"),
        "glance-all-in-one also serves the artifact API (Glare v1) on [glare] bind_host:bind_port",
    ),
    opt(
        "glare",
        "bind_host",
        Some("127.0.0.1"),
        "Address the artifact API (Glare v1) listens on",
    ),
    opt(
        "glare",
        "bind_port",
        Some("9494"),
        "Port the artifact API (Glare v1) listens on (Glare's default)",
    ),
    opt(
        "glare",
        "default_api_limit",
        Some("25"),
        "Artifacts a list returns when the request sets no limit",
    ),
    opt(
        "glare",
        "max_api_limit",
        Some("1000"),
        "Most artifacts one list returns, whatever limit the request sets",
    ),
    opt(
        "glare",
        "max_artifact_number",
        Some("-1"),
        "Artifacts one project may keep (-1: no limit); PUT /quotas sets it per project",
    ),
    opt(
        "glare",
        "max_uploaded_data",
        Some("-1"),
        "Bytes of blobs one project may keep (-1: no limit); PUT /quotas sets it per project",
    ),
];

/// The typed view of these options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlareSettings {
    pub enabled: bool,
    pub bind_host: String,
    pub bind_port: u16,
    pub default_api_limit: u32,
    pub max_api_limit: u32,
    /// The global quotas: -1 is no limit.
    pub max_artifact_number: i64,
    pub max_uploaded_data: i64,
    /// `[DEFAULT] delayed_delete` (the image API's option, which Glare shares): a delete
    /// leaves the artifact `deleted` for the scrubber to remove, blobs and all.
    pub delayed_delete: bool,
    /// `[artifact_type:<type>] delayed_delete`, Glare's per-type override of it.
    pub delayed_delete_by_type: std::collections::BTreeMap<String, bool>,
}

impl Default for GlareSettings {
    fn default() -> Self {
        Self::from_raw(&crate::RawConfig::defaults()).expect("defaults are valid")
    }
}

impl GlareSettings {
    pub fn from_raw(raw: &crate::RawConfig) -> Result<Self, crate::ConfigError> {
        let r = raw.reader();
        let default_api_limit: u32 = r.parse("glare", "default_api_limit")?;
        let max_api_limit: u32 = r.parse("glare", "max_api_limit")?;
        if default_api_limit == 0 || max_api_limit == 0 {
            return Err(r.invalid("glare", "max_api_limit", "limits must be at least 1"));
        }
        Ok(Self {
            enabled: r.boolean("glare", "enabled")?,
            bind_host: r.string("glare", "bind_host")?,
            bind_port: r.parse("glare", "bind_port")?,
            default_api_limit,
            max_api_limit,
            max_artifact_number: r.parse("glare", "max_artifact_number")?,
            max_uploaded_data: r.parse("glare", "max_uploaded_data")?,
            delayed_delete: r.boolean("DEFAULT", "delayed_delete")?,
            delayed_delete_by_type: raw
                .sections_setting("delayed_delete")
                .filter_map(|(section, _)| Some((section, section.strip_prefix(TYPE_SECTION)?)))
                .map(|(section, type_name)| {
                    Ok((type_name.to_owned(), r.boolean(section, "delayed_delete")?))
                })
                .collect::<Result<_, crate::ConfigError>>()?,
        })
    }

    /// Whether deleting an artifact of `type_name` waits for the scrubber.
    pub fn delayed_delete(&self, type_name: &str) -> bool {
        self.delayed_delete_by_type
            .get(type_name)
            .copied()
            .unwrap_or(self.delayed_delete)
    }
}

/// The prefix of Glare's per-type sections (`[artifact_type:images]`).
const TYPE_SECTION: &str = "artifact_type:";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawConfig;

    #[test]
    fn a_type_section_overrides_the_global_delayed_delete() {
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "delayed_delete", "true");
        raw.set("artifact_type:heat_templates", "delayed_delete", "false");
        let s = GlareSettings::from_raw(&raw).unwrap();
        assert!(s.delayed_delete("images"));
        assert!(!s.delayed_delete("heat_templates"));
        assert!(!GlareSettings::default().delayed_delete("images"));
        raw.set("artifact_type:images", "delayed_delete", "maybe");
        let err = GlareSettings::from_raw(&raw).unwrap_err().to_string();
        assert!(
            err.contains("[artifact_type:images] delayed_delete"),
            "{err}"
        );
    }

    #[test]
    fn glare_listens_on_its_own_default_port() {
        let s = GlareSettings::default();
        assert_eq!((s.bind_host.as_str(), s.bind_port), ("127.0.0.1", 9494));
        assert_eq!((s.default_api_limit, s.max_api_limit), (25, 1000));
    }

    #[test]
    fn the_environment_moves_the_port() {
        let mut raw = RawConfig::defaults();
        raw.merge_env([("GLANCE__GLARE__BIND_PORT".to_owned(), "19494".to_owned())]);
        assert_eq!(GlareSettings::from_raw(&raw).unwrap().bind_port, 19494);
    }
}
