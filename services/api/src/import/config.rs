//! The import feature's options, read once from the raw configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use glance_config::RawConfig;
use glance_store::{BackendSpec, FilesystemStore, Store, Stores};

use super::filter::UriFilter;

#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// `[DEFAULT] enabled_import_methods`, in order.
    pub methods: Vec<String>,
    /// `[DEFAULT] enabled_backends`; empty means the single `file` store.
    pub backends: Vec<BackendSpec>,
    /// `[glance_store] default_backend` (else the first backend).
    pub default_backend: Option<String>,
    /// `[os_glance_staging_store] filesystem_store_datadir`.
    pub staging_dir: Option<PathBuf>,
    pub filter: UriFilter,
    /// `[task] task_time_to_live`, hours.
    pub task_ttl_hours: u32,
    pub worker: WorkerConfig,
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

/// Glance writes lists as `['a', 'b']` in its sample files; oslo also takes `a, b`.
fn list(raw: &RawConfig, section: &str, option: &str) -> Vec<String> {
    raw.reader()
        .list(section, option)
        .into_iter()
        .map(|s| {
            s.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace())
                .trim_matches(|c| c == '\'' || c == '"')
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .collect()
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
        let mut backends = Vec::new();
        for entry in list(raw, "DEFAULT", "enabled_backends") {
            let (id, kind) = entry.split_once(':').ok_or_else(|| {
                r.invalid("DEFAULT", "enabled_backends", "expected id:driver pairs")
                    .to_string()
            })?;
            let (id, kind) = (id.trim().to_owned(), kind.trim().to_owned());
            if id.starts_with("os_glance_") {
                return Err(r
                    .invalid("DEFAULT", "enabled_backends", "os_glance_ ids are reserved")
                    .to_string());
            }
            let dir = r
                .opt_string(&id, "filesystem_store_datadir")
                .ok_or_else(|| format!("store '{id}' needs [{id}] filesystem_store_datadir"))?;
            backends.push(BackendSpec {
                description: r.opt_string(&id, "store_description"),
                dir: PathBuf::from(dir),
                id,
                kind,
            });
        }
        let default_backend = r.opt_string("glance_store", "default_backend");
        if let Some(d) = &default_backend {
            if !backends.is_empty() && !backends.iter().any(|b| &b.id == d) {
                return Err(r
                    .invalid(
                        "glance_store",
                        "default_backend",
                        "not one of enabled_backends",
                    )
                    .to_string());
            }
        }
        let methods = list(raw, "DEFAULT", "enabled_import_methods");
        for m in &methods {
            if !matches!(m.as_str(), "glance-direct" | "web-download" | "copy-image") {
                return Err(r
                    .invalid(
                        "DEFAULT",
                        "enabled_import_methods",
                        &format!("unknown method {m} (glance-direct, web-download, copy-image)"),
                    )
                    .to_string());
            }
        }
        Ok(Self {
            methods,
            backends,
            default_backend,
            staging_dir: r
                .opt_string("os_glance_staging_store", "filesystem_store_datadir")
                .map(PathBuf::from),
            filter: UriFilter::from_raw(raw)?,
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
        let staging_dir = self.staging_dir.as_deref().unwrap_or(default_staging);
        let staging = FilesystemStore::new(staging_dir)
            .with_context(|| format!("cannot use staging dir {}", staging_dir.display()))?;
        if self.backends.is_empty() {
            let store = FilesystemStore::new(single_dir)
                .with_context(|| format!("cannot use image store dir {}", single_dir.display()))?;
            return Ok(Stores::single(
                std::sync::Arc::new(store) as std::sync::Arc<dyn Store>,
                staging,
            ));
        }
        let default = self
            .default_backend
            .clone()
            .unwrap_or_else(|| self.backends[0].id.clone());
        Ok(Stores::open(&self.backends, &default, staging)?)
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
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.backends[1].description.as_deref(), Some("Slow disks"));
        assert_eq!(c.default_backend.as_deref(), Some("cheap"));
        assert_eq!(c.task_ttl_hours, 48);
    }

    #[test]
    fn a_store_without_a_directory_is_refused() {
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "enabled_backends", "fast:file");
        let err = ImportConfig::from_raw(&raw).unwrap_err();
        assert!(err.contains("[fast] filesystem_store_datadir"), "{err}");
    }
}
