//! The registry's database.
//!
//! The registry process is the one owner of the database; it calls [`ImageRepo`], which
//! answers the registry's requests with Glance's semantics (visibility, filters, sorting,
//! compare-and-set saves, soft deletes) on SQLite or PostgreSQL alike. Nothing here is
//! visible on the bus: requests and replies are `glance_proto::registry` types.
//!
//! ```no_run
//! # async fn run() -> Result<(), glance_db::DbError> {
//! let db = glance_db::Database::connect("sqlite:///var/lib/glance/glance.sqlite").await?;
//! db.migrate_up().await?;
//! let repo = glance_db::ImageRepo::new(db);
//! # Ok(()) }
//! ```

mod database;
pub mod entity;
mod error;
mod glare;
mod metadefs;
mod migration;
mod reads;
mod repo;
mod tasks;
mod url;

pub use database::{Database, PoolConfig};
pub use error::DbError;
pub use glare::ArtifactRepo;
pub use metadefs::{LoadMode, Loaded, MetadefRepo};
pub use migration::Migrator;
pub use repo::ImageRepo;
pub use sea_orm::DbBackend;
pub use tasks::TaskRepo;
