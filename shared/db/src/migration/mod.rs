//! Schema migrations, applied in order by [`Migrator`]; the same on SQLite and PostgreSQL.
//!
//! Migrations spell out their tables with sea-query rather than deriving them from the
//! entities: an applied migration must keep producing the same schema after the entities
//! move on. Never edit a released migration; add the next one.

use sea_orm_migration::prelude::*;

mod m20261129_000001_initial_schema;
mod m20261129_000002_list_indexes;
mod m20261129_000013_tasks;
mod m20261206_000014_upload_leases;
mod m20261206_000015_metadefs;
mod m20261206_000016_glare;

/// Every migration this release knows, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_initial_schema::Migration),
            Box::new(m20261129_000002_list_indexes::Migration),
            Box::new(m20261129_000013_tasks::Migration),
            Box::new(m20261206_000014_upload_leases::Migration),
            Box::new(m20261206_000015_metadefs::Migration),
            Box::new(m20261206_000016_glare::Migration),
        ]
    }
}
