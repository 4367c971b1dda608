//! The import feature's options, read once from the raw configuration.

use std::path::Path;
use std::time::Duration;

use glance_config::RawConfig;
use glance_store::{glance_list, Stores, StoresConfig};

use super::filter::UriFilter;
use super::plugins::PluginsConfig;

#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// `[DEFAULT] enabled_import_methods`, in order.
    pub methods: Vec<String>,
    /// `[DEFAULT] enabled_backends`, `default_backend`, the staging store.
    pub stores: StoresConfig,
    pub filter: UriFilter,
    /// `[task] task_time_to_live`, hours.
    pub task_ttl_hours: u32,
    pub worker: WorkerConfig,
    /// `[image_import_opts] image_import_plugins` and the plugins' options.
    pub plugins: PluginsConfig,
    /// `[glance_download_properties] extra_properties`: prefixes of the properties
    /// glance-download copies from the remote image.
    pub download_properties: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub enabled: bool,
    pub concurrency: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_redirects: usize,
    /// A `processing` task not updated for this long is failed and its image recovered.
    pub stale_after: Duration,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self::from_raw(&RawConfig::defaults()).expect("defaults are valid")
    }
}

fn number<T: std::str::FromStr>(raw: &RawConfig, section: &str, option: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let r = raw.reader();
    let value = r.string(section, option).map_err(|e| e.to_string())?;
    value
        .parse()
        .map_err(|e: T::Err| r.invalid(section, option, &e.to_string()).to_string())
}

impl ImportConfig {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, String> {
        let r = raw.reader();
        let methods = glance_list(raw, "DEFAULT", "enabled_import_methods");
        for m in &methods {
            if !matches!(
                m.as_str(),
                "glance-direct" | "web-download" | "copy-image" | "glance-download"
            ) {
                return Err(r
                    .invalid(
                        "DEFAULT",
                        "enabled_import_methods",
                        &format!(
                            "unknown method {m} (glance-direct, web-download, copy-image, glance-download)"
                        ),
                    )
                    .to_string());
            }
        }
        Ok(Self {
            methods,
            stores: StoresConfig::from_raw(raw)?,
            filter: UriFilter::from_raw(raw)?,
            plugins: PluginsConfig::from_raw(raw)?,
            download_properties: glance_list(raw, "glance_download_properties", "extra_properties"),
            task_ttl_hours: number(raw, "task", "task_time_to_live")?,
            worker: WorkerConfig {
                enabled: r
                    .boolean("import_worker", "enabled")
                    .map_err(|e| e.to_string())?,
                concurrency: number::<usize>(raw, "import_worker", "concurrency")?.max(1),
                connect_timeout: Duration::from_secs(number(
                    raw,
                    "import_worker",
                    "connect_timeout",
                )?),
                read_timeout: Duration::from_secs(number(raw, "import_worker", "read_timeout")?),
                max_redirects: number(raw, "import_worker", "max_redirects")?,
                stale_after: Duration::from_secs(number(raw, "import_worker", "stale_after")?),
            },
        })
    }

    pub fn method_enabled(&self, name: &str) -> bool {
        self.methods.iter().any(|m| m == name)
    }

    /// Opens the configured stores: the named backends, or the single store in
    /// `single_dir`; staging in `staging_dir` or else `default_staging`.
    pub fn open_stores(&self, single_dir: &Path, default_staging: &Path) -> anyhow::Result<Stores> {
        Ok(self.stores.open(single_dir, default_staging)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_list_syntax_and_store_sections_are_read() {
        let mut raw = RawConfig::defaults();
        raw.merge_ini(
            "[DEFAULT]\nenabled_import_methods = ['glance-direct', 'copy-image']\nenabled_backends = fast:file, cheap:file\n[fast]\nfilesystem_store_datadir = /a\n[cheap]\nfilesystem_store_datadir = /b\nstore_description = Slow disks\n[glance_store]\ndefault_backend = cheap\n",
        )
        .unwrap();
        let c = ImportConfig::from_raw(&raw).unwrap();
        assert_eq!(c.methods, ["glance-direct", "copy-image"]);
        assert_eq!(c.stores.backends.len(), 2);
        assert_eq!(
            c.stores.backends[1].description.as_deref(),
            Some("Slow disks")
        );
        assert_eq!(c.stores.default_backend.as_deref(), Some("cheap"));
        assert_eq!(c.task_ttl_hours, 48);
        assert!(!c.method_enabled("glance-download"));
        assert_eq!(
            c.download_properties,
            ["hw_", "trait:", "os_distro", "os_secure_boot", "os_type"]
        );
    }

    #[test]
    fn glance_download_is_a_method_an_operator_may_enable() {
        let mut raw = RawConfig::defaults();
        raw.set(
            "DEFAULT",
            "enabled_import_methods",
            "['glance-direct', 'glance-download']",
        );
        raw.set(
            "glance_download_properties",
            "extra_properties",
            "['hw_', 'os_']",
        );
        let c = ImportConfig::from_raw(&raw).unwrap();
        assert!(c.method_enabled("glance-download"));
        assert_eq!(c.download_properties, ["hw_", "os_"]);
        raw.set("DEFAULT", "enabled_import_methods", "glance-downlaod");
        let err = ImportConfig::from_raw(&raw).unwrap_err();
        assert!(err.contains("enabled_import_methods"), "{err}");
    }

    #[test]
    fn a_store_without_a_directory_is_refused() {
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "enabled_backends", "fast:file");
        let err = ImportConfig::from_raw(&raw).unwrap_err();
        assert!(err.contains("[fast] filesystem_store_datadir"), "{err}");
    }
}
