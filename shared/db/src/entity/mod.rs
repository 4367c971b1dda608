//! sea-orm entities for Glance's image tables.
//!
//! Column names and widths follow Glance's own schema (`glance/db/sqlalchemy/models.py`) so an
//! operator reading the database sees familiar tables. Every row is soft-deleted (`deleted`,
//! `deleted_at`) rather than removed, as in Glance: a purge is a separate, later decision, and
//! an image id must never be reused (OSSN-0075).
//!
//! These types are the registry's persistence model only; nothing outside this crate sees
//! them. The rest of the system speaks `glance_domain::Image`.

pub mod image;
pub mod image_location;
pub mod image_member;
pub mod image_property;
pub mod image_tag;
pub mod task;
pub mod task_info;
