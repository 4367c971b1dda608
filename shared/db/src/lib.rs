//! The image database, owned by the registry.
//!
//! [`Database`] opens SQLite (embedded) or PostgreSQL (at scale) with the same entities and
//! migrations; [`ImageRepo`] implements the registry's requests on it. Nothing outside the
//! registry sees these types: the bus carries `glance_domain::Image`.

mod database;
pub mod entities;
pub mod migration;
mod repo;

pub use database::{Database, DbError};
pub use repo::ImageRepo;
pub use sea_orm::DbBackend;
