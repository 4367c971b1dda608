//! `/v2/images/{id}/file`: streaming uploads and downloads.

pub mod download;
pub mod lease;
pub mod sweep;
mod undo;
pub mod upload;

pub(crate) use undo::Undo;
