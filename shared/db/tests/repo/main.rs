//! The repository against real databases: SQLite (a temp file) always, PostgreSQL when
//! `GLANCE_TEST_POSTGRES_URL` names a server. Every test runs on both; see `helpers`.

mod helpers;

mod artifacts;
mod batch;
mod cache;
mod concurrency;
mod creates;
mod crud;
mod database;
mod filters;
mod pagination;
mod visibility;
