//! `/v2/images/{id}/file`: streaming uploads and downloads.

pub mod download;
pub mod hashing;
pub mod upload;
