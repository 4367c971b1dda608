//! Where image bytes live. Handlers speak to [`Store`]; which store it is comes from
//! configuration. Image bytes never travel on the bus: services that need them open the
//! store themselves (shared storage at scale).

mod config;
mod filesystem;
mod multi;

pub use config::{glance_list, StoresConfig};
pub use filesystem::FilesystemStore;
pub use multi::{Backend, BackendSpec, Stores, StoresError, SINGLE_STORE_ID};

use std::ops::Range;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use glance_domain::ImageId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image data not found at {0}")]
    NotFound(String),
    #[error("location {0} does not belong to this store")]
    ForeignLocation(String),
    /// The store's file system (or quota) has no room left: Glance's `StorageFull`. What
    /// the write had put down is already removed when this is returned.
    #[error("There is not enough disk space on the image storage media.")]
    Full { path: PathBuf },
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// `Full` for an out-of-space error writing `path`, else `Io`.
    pub fn from_io(e: std::io::Error, path: &std::path::Path) -> Self {
        // ENOSPC, or EDQUOT (a disk quota) on Linux.
        const EDQUOT: i32 = 122;
        let full = e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(EDQUOT);
        if full {
            StoreError::Full {
                path: path.to_owned(),
            }
        } else {
            StoreError::Io(e)
        }
    }
}

/// Data a write left in a store's incoming area: in progress, or abandoned by a process
/// that died. The image id is in its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub image_id: ImageId,
    pub path: PathBuf,
    /// When the file last changed (content, or its name).
    pub changed: SystemTime,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// A write in progress. Nothing is visible at the final location until [`StoreWriter::commit`];
/// dropping a writer without committing removes what it wrote.
#[async_trait]
pub trait StoreWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError>;
    /// Makes the data durable (fsync) and visible; returns its location URL.
    async fn commit(self: Box<Self>) -> Result<String, StoreError>;
    /// Drops the write and returns once what it wrote is removed (dropping the writer
    /// removes it too, but later).
    async fn abort(self: Box<Self>) {}
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The URL scheme of this store's locations (`file`).
    fn scheme(&self) -> &'static str;

    /// Starts writing the data of `id`. The path is derived from the id alone.
    async fn writer(&self, id: ImageId) -> Result<Box<dyn StoreWriter>, StoreError>;

    /// Size in bytes of the data at `location`.
    async fn size(&self, location: &str) -> Result<u64, StoreError>;

    /// Streams `range` (or everything) of the data at `location`.
    async fn read(
        &self,
        location: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError>;

    /// Removes the data at `location`. Removing what is already gone succeeds.
    async fn delete(&self, location: &str) -> Result<(), StoreError>;

    /// Writes not yet committed, live or abandoned (see [`Partial`]).
    async fn partials(&self) -> Result<Vec<Partial>, StoreError> {
        Ok(Vec::new())
    }

    /// Removes a partial write this store listed. Already gone succeeds.
    async fn remove_partial(&self, _partial: &Partial) -> Result<(), StoreError> {
        Ok(())
    }

    /// Removes every partial write of `id` (an upload that died, or whose owner was
    /// deleted under it); what will not go is logged and left to the sweeps.
    async fn remove_partials_of(&self, id: ImageId) {
        for partial in self.partials().await.unwrap_or_default() {
            if partial.image_id == id {
                if let Err(e) = self.remove_partial(&partial).await {
                    tracing::warn!(path = %partial.path.display(), error = %e,
                        "could not remove partial data");
                }
            }
        }
    }
}
