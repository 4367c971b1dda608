//! The `/v2/images` resource: create, show, list, update, delete and tags.

pub mod actions;
pub mod fields;
pub mod handlers;
pub mod locations;
pub mod query;
pub mod view;

/// Glance's JSON-patch dialects (in `glance-request`, fuzzed apart from the server).
pub use glance_request::patch;
