//! Which stores a deployment has, read from its configuration (Glance's option names), and
//! opening them. The API, the scrubber and the cache workers all open stores this way, so
//! a location in any configured store can be served, scrubbed and prefetched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use glance_config::RawConfig;

use crate::{BackendSpec, FilesystemStore, Store, Stores, StoresError, SINGLE_STORE_ID};

/// The stores as configured, not yet opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoresConfig {
    /// `[DEFAULT] enabled_backends`, each with `[<id>] filesystem_store_datadir`; empty
    /// means the single `file` store.
    pub backends: Vec<BackendSpec>,
    /// `[glance_store] default_backend` (else the first backend).
    pub default_backend: Option<String>,
    /// `[glance_store] filesystem_store_datadir`: the single store's directory.
    pub datadir: Option<PathBuf>,
    /// `[os_glance_staging_store] filesystem_store_datadir`.
    pub staging_dir: Option<PathBuf>,
}

/// A list option as Glance's sample files write it (`['a', 'b']`) or as oslo reads it
/// (`a, b`).
pub fn glance_list(raw: &RawConfig, section: &str, option: &str) -> Vec<String> {
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

impl StoresConfig {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, String> {
        let r = raw.reader();
        let mut backends = Vec::new();
        for entry in glance_list(raw, "DEFAULT", "enabled_backends") {
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
        Ok(Self {
            backends,
            default_backend,
            datadir: r
                .opt_string("glance_store", "filesystem_store_datadir")
                .map(PathBuf::from),
            staging_dir: r
                .opt_string("os_glance_staging_store", "filesystem_store_datadir")
                .map(PathBuf::from),
        })
    }

    /// Opens the configured stores: the named backends, or the single store in
    /// `single_dir`; staging in `staging_dir` or else `default_staging`.
    pub fn open(&self, single_dir: &Path, default_staging: &Path) -> Result<Stores, StoresError> {
        let staging_dir = self.staging_dir.as_deref().unwrap_or(default_staging);
        let staging = FilesystemStore::new(staging_dir).map_err(|source| StoresError::Dir {
            id: "os_glance_staging_store".into(),
            dir: staging_dir.to_owned(),
            source,
        })?;
        if self.backends.is_empty() {
            let store = FilesystemStore::new(single_dir).map_err(|source| StoresError::Dir {
                id: SINGLE_STORE_ID.into(),
                dir: single_dir.to_owned(),
                source,
            })?;
            return Ok(Stores::single(Arc::new(store) as Arc<dyn Store>, staging));
        }
        let default = self
            .default_backend
            .clone()
            .unwrap_or_else(|| self.backends[0].id.clone());
        Stores::open(&self.backends, &default, staging)
    }

    /// Opens the stores the way a process sharing them with other nodes does (glance-api,
    /// glance-scrubber, the cache workers): the single store is `[glance_store]
    /// filesystem_store_datadir`, which must be set unless `enabled_backends` names the
    /// stores; staging defaults to `<that directory or the first store's>/.staging`.
    pub fn open_shared(&self) -> Result<Stores, StoresError> {
        let images_dir = match (&self.datadir, self.backends.first()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(first)) => first.dir.clone(),
            (None, None) => return Err(StoresError::NoStore),
        };
        self.open(&images_dir, &images_dir.join(".staging"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    #[test]
    fn glance_list_syntax_and_store_sections_are_read() {
        let mut raw = RawConfig::defaults();
        raw.merge_ini(
            "[DEFAULT]\nenabled_backends = ['fast:file', 'cheap:file']\n[fast]\nfilesystem_store_datadir = /a\n[cheap]\nfilesystem_store_datadir = /b\nstore_description = Slow disks\n[glance_store]\ndefault_backend = cheap\n",
        )
        .unwrap();
        let c = StoresConfig::from_raw(&raw).unwrap();
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.backends[0].dir, PathBuf::from("/a"));
        assert_eq!(c.backends[1].description.as_deref(), Some("Slow disks"));
        assert_eq!(c.default_backend.as_deref(), Some("cheap"));
    }

    #[test]
    fn a_store_without_a_directory_is_refused() {
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "enabled_backends", "fast:file");
        let err = StoresConfig::from_raw(&raw).unwrap_err();
        assert!(err.contains("[fast] filesystem_store_datadir"), "{err}");
    }

    #[test]
    fn without_any_directory_there_is_no_store_to_open() {
        let c = StoresConfig::from_raw(&RawConfig::defaults()).unwrap();
        assert!(matches!(c.open_shared(), Err(StoresError::NoStore)));
    }

    #[tokio::test]
    async fn shared_stores_reach_a_location_in_a_non_default_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "enabled_backends", "fast:file, cheap:file");
        for id in ["fast", "cheap"] {
            let d = dir.path().join(id);
            raw.set(id, "filesystem_store_datadir", d.to_str().unwrap());
        }
        let stores = StoresConfig::from_raw(&raw).unwrap().open_shared().unwrap();
        assert!(stores.is_multi());
        assert_eq!(stores.default_id(), "fast");
        assert!(dir.path().join("fast/.staging").is_dir());
        let cheap = &stores.get("cheap").unwrap().store;
        let mut w = cheap.writer(glance_domain::ImageId::new()).await.unwrap();
        w.write(bytes::Bytes::from_static(b"cheap")).await.unwrap();
        let location = w.commit().await.unwrap();
        assert_eq!(stores.size(&location).await.unwrap(), 5);
        stores.delete(&location).await.unwrap();
        assert!(matches!(
            cheap.size(&location).await,
            Err(StoreError::NotFound(_))
        ));
    }
}
