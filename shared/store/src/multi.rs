//! Several stores under ids (`[DEFAULT] enabled_backends = fast:file, cheap:file`), one of
//! them the default, plus the staging area imports read from.
//!
//! [`Stores`] is itself a [`Store`]: writes go to the default store, and reads, sizes and
//! deletes go to whichever store owns the location, so code that only knows "the store"
//! keeps working when an operator enables several.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use glance_domain::ImageId;

use crate::{ByteStream, FilesystemStore, Partial, Store, StoreError, StoreWriter};

/// The id of the only store when `enabled_backends` is not set (Glance's `file`).
pub const SINGLE_STORE_ID: &str = "file";

/// One configured store.
#[derive(Clone)]
pub struct Backend {
    pub id: String,
    /// The driver (`file`).
    pub kind: String,
    pub description: Option<String>,
    pub store: Arc<dyn Store>,
    /// Where a `file` store keeps its data, for `GET /v2/info/stores/detail`.
    pub dir: Option<PathBuf>,
}

/// A store as configured: `(id, driver, directory, description)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    pub id: String,
    pub kind: String,
    pub dir: PathBuf,
    pub description: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoresError {
    #[error("store '{0}': driver '{1}' is not supported (only 'file')")]
    UnsupportedDriver(String, String),
    #[error("default_backend '{0}' is not one of enabled_backends")]
    UnknownDefault(String),
    #[error(
        "no image store: set [glance_store] filesystem_store_datadir (GLANCE__GLANCE_STORE__FILESYSTEM_STORE_DATADIR, the API nodes' shared store) or [DEFAULT] enabled_backends"
    )]
    NoStore,
    #[error("store '{id}': cannot use {dir}: {source}")]
    Dir {
        id: String,
        dir: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Stores {
    backends: Vec<Backend>,
    default: usize,
    /// Whether `enabled_backends` named the stores (Glance's multi-store mode): the
    /// `stores` property, `X-Image-Meta-Store` and `/v2/info/stores` only exist then.
    multi: bool,
    staging: Arc<FilesystemStore>,
}

impl Stores {
    /// The single store of a deployment without `enabled_backends`, with its staging area.
    pub fn single(store: Arc<dyn Store>, staging: FilesystemStore) -> Self {
        Self {
            backends: vec![Backend {
                id: SINGLE_STORE_ID.into(),
                kind: store.scheme().into(),
                description: None,
                store,
                dir: None,
            }],
            default: 0,
            multi: false,
            staging: Arc::new(staging),
        }
    }

    /// Opens every configured store; `default` must be one of them.
    pub fn open(
        specs: &[BackendSpec],
        default: &str,
        staging: FilesystemStore,
    ) -> Result<Self, StoresError> {
        let mut backends = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.kind != "file" {
                return Err(StoresError::UnsupportedDriver(
                    spec.id.clone(),
                    spec.kind.clone(),
                ));
            }
            let store = FilesystemStore::new(&spec.dir).map_err(|source| StoresError::Dir {
                id: spec.id.clone(),
                dir: spec.dir.clone(),
                source,
            })?;
            backends.push(Backend {
                id: spec.id.clone(),
                kind: spec.kind.clone(),
                description: spec.description.clone(),
                store: Arc::new(store),
                dir: Some(spec.dir.clone()),
            });
        }
        let default = backends
            .iter()
            .position(|b| b.id == default)
            .ok_or_else(|| StoresError::UnknownDefault(default.to_owned()))?;
        Ok(Self {
            backends,
            default,
            multi: true,
            staging: Arc::new(staging),
        })
    }

    pub fn is_multi(&self) -> bool {
        self.multi
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    pub fn default_id(&self) -> &str {
        &self.backends[self.default].id
    }

    pub fn get(&self, id: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.id == id)
    }

    pub fn default_backend(&self) -> &Backend {
        &self.backends[self.default]
    }

    /// Where staged (`PUT /stage`) and downloaded (`web-download`) data waits for import.
    pub fn staging(&self) -> &Arc<FilesystemStore> {
        &self.staging
    }

    /// The store that owns `location`: the one named by the location's `store` metadata if
    /// any, else the first that recognises the URL.
    pub async fn owner_of(&self, location: &str, store_id: Option<&str>) -> Option<&Backend> {
        if let Some(b) = store_id.and_then(|id| self.get(id)) {
            return Some(b);
        }
        for b in &self.backends {
            match b.store.size(location).await {
                Err(StoreError::ForeignLocation(_)) => continue,
                _ => return Some(b),
            }
        }
        None
    }

    async fn find(&self, location: &str) -> Result<&Backend, StoreError> {
        self.owner_of(location, None)
            .await
            .ok_or_else(|| StoreError::ForeignLocation(location.to_owned()))
    }
}

#[async_trait]
impl Store for Stores {
    fn scheme(&self) -> &'static str {
        self.default_backend().store.scheme()
    }

    async fn writer(&self, id: ImageId) -> Result<Box<dyn StoreWriter>, StoreError> {
        self.default_backend().store.writer(id).await
    }

    async fn size(&self, location: &str) -> Result<u64, StoreError> {
        self.find(location).await?.store.size(location).await
    }

    async fn read(
        &self,
        location: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        self.find(location).await?.store.read(location, range).await
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        self.find(location).await?.store.delete(location).await
    }

    /// Every store's partial writes (not the staging area's: see [`Stores::staging`]).
    async fn partials(&self) -> Result<Vec<Partial>, StoreError> {
        let mut all = Vec::new();
        for backend in &self.backends {
            all.extend(backend.store.partials().await?);
        }
        Ok(all)
    }

    async fn remove_partial(&self, partial: &Partial) -> Result<(), StoreError> {
        for backend in &self.backends {
            backend.store.remove_partial(partial).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn put(store: &dyn Store, id: ImageId, data: &'static [u8]) -> String {
        let mut w = store.writer(id).await.unwrap();
        w.write(bytes::Bytes::from_static(data)).await.unwrap();
        w.commit().await.unwrap()
    }

    #[tokio::test]
    async fn reads_go_to_the_store_that_holds_the_location() {
        let dir = tempfile::tempdir().unwrap();
        let spec = |id: &str| BackendSpec {
            id: id.into(),
            kind: "file".into(),
            dir: dir.path().join(id),
            description: None,
        };
        let staging = FilesystemStore::new(dir.path().join("staging")).unwrap();
        let stores = Stores::open(&[spec("fast"), spec("cheap")], "cheap", staging).unwrap();
        assert_eq!(stores.default_id(), "cheap");
        let id = ImageId::new();
        let in_fast = put(&*stores.get("fast").unwrap().store, id, b"fast").await;
        let in_default = put(&stores, ImageId::new(), b"cheap").await;
        assert!(in_default.contains("/cheap/"));
        let mut s = stores.read(&in_fast, None).await.unwrap();
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"fast");
        stores.delete(&in_fast).await.unwrap();
        assert!(matches!(
            stores.size(&in_fast).await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn an_unknown_default_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let staging = FilesystemStore::new(dir.path().join("staging")).unwrap();
        let specs = [BackendSpec {
            id: "a".into(),
            kind: "file".into(),
            dir: dir.path().join("a"),
            description: None,
        }];
        assert!(matches!(
            Stores::open(&specs, "b", staging),
            Err(StoresError::UnknownDefault(_))
        ));
    }
}
