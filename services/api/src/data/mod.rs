//! `/v2/images/{id}/file`: streaming uploads and downloads.

pub mod download;
pub mod hashing;
pub mod ingest;
pub mod lease;
pub mod sweep;
mod undo;
pub mod upload;

pub(crate) use undo::Undo;

/// The `virtual_size` an image records for what the format inspector found: Glance sets it
/// only when it is not 0, so an empty image has none.
pub(crate) fn recorded_virtual_size(found: Option<u64>) -> Option<i64> {
    found.filter(|&v| v > 0).map(|v| v as i64)
}
