//! The `/v2/images` resource: create, show, list, update, delete and tags.

pub mod actions;
pub mod fields;
pub mod handlers;
pub mod locations;
pub mod patch;
pub mod query;
pub mod view;
