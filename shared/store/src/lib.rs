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
use std::pin::Pin;

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
    #[error("store I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// A write in progress. Nothing is visible at the final location until [`StoreWriter::commit`];
/// dropping a writer without committing removes what it wrote.
#[async_trait]
pub trait StoreWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError>;
    /// Makes the data durable (fsync) and visible; returns its location URL.
    async fn commit(self: Box<Self>) -> Result<String, StoreError>;
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
}
