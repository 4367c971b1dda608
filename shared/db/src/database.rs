use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgresql://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Connections to the image database. SQLite gets a single-connection write pool beside a
/// read pool: SQLite has one writer at a time, and queueing writers in our pool instead of
/// in SQLite's busy loop is what keeps concurrent creates from failing with "database is
/// locked". PostgreSQL uses one pool for both.
#[derive(Debug, Clone)]
pub struct Database {
    read: DatabaseConnection,
    write: DatabaseConnection,
}

/// Accepts what operators write in `[database] connection` (SQLAlchemy URLs included) and
/// returns what sqlx understands.
pub fn normalize_url(url: &str) -> Result<String, DbError> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest == ":memory:" || rest == "//:memory:" {
            return Ok("sqlite::memory:".into());
        }
        // sqlite:////abs/path (SQLAlchemy) and sqlite:///abs/path both mean /abs/path;
        // sqlite://rel/path is relative.
        let path = rest.trim_start_matches("//");
        let path = if rest.starts_with("////") {
            format!("/{}", path.trim_start_matches('/'))
        } else {
            path.to_owned()
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let with_mode = if path.contains("mode=") {
            path
        } else {
            format!("{path}{sep}mode=rwc")
        };
        return Ok(format!("sqlite://{with_mode}"));
    }
    for scheme in [
        "postgresql+psycopg2://",
        "postgresql+psycopg://",
        "postgres://",
        "postgresql://",
    ] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return Ok(format!("postgres://{rest}"));
        }
    }
    Err(DbError::UnsupportedUrl(url.to_owned()))
}

fn options(url: &str, max: u32) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        // Per-statement logging costs more than the statement on the hot path.
        .sqlx_logging(false);
    opts
}

impl Database {
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let url = normalize_url(url)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:");
            let sqlite = |mut o: ConnectOptions, read_only: bool| {
                o.map_sqlx_sqlite_opts(move |s| {
                    s.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(30))
                        .foreign_keys(true)
                        .pragma("cache_size", "-16000")
                        .pragma("temp_store", "memory")
                        .read_only(read_only)
                });
                o
            };
            // The write pool opens (and creates) the file first, so WAL is on before readers.
            let write = sea_orm::Database::connect(sqlite(options(&url, 1), false)).await?;
            let read = if memory {
                write.clone()
            } else {
                sea_orm::Database::connect(sqlite(options(&url, cores * 2 + 2), false)).await?
            };
            Ok(Self { read, write })
        } else {
            let pool = sea_orm::Database::connect(options(&url, cores * 4 + 4)).await?;
            Ok(Self {
                read: pool.clone(),
                write: pool,
            })
        }
    }

    pub fn read(&self) -> &DatabaseConnection {
        &self.read
    }

    pub fn write(&self) -> &DatabaseConnection {
        &self.write
    }

    pub fn backend(&self) -> DbBackend {
        self.write.get_database_backend()
    }

    /// Applies every pending migration.
    pub async fn migrate_up(&self) -> Result<(), DbError> {
        Migrator::up(&self.write, None).await?;
        Ok(())
    }

    /// The newest applied migration, if any.
    pub async fn version(&self) -> Result<Option<String>, DbError> {
        let applied = Migrator::get_applied_migrations(&self.write).await?;
        Ok(applied.last().map(|m| m.name().to_owned()))
    }

    /// Names of migrations not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        let pending = Migrator::get_pending_migrations(&self.write).await?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }
}

impl Database {
    /// Creates a fresh, empty PostgreSQL database named `name` on the server at `server_url`
    /// and returns its URL. For tests and `glance-manage` bootstrap.
    pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, DbError> {
        let url = normalize_url(server_url)?;
        if !url.starts_with("postgres://") {
            return Err(DbError::UnsupportedUrl(server_url.to_owned()));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DbError::UnsupportedUrl(format!("database name {name}")));
        }
        let admin = sea_orm::Database::connect(options(&url, 1)).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        admin.close().await?;
        // Replace the path of the server URL with the new database.
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url.as_str(), None),
        };
        let authority_end = base["postgres://".len()..]
            .find('/')
            .map(|i| i + "postgres://".len())
            .unwrap_or(base.len());
        let mut out = format!("{}/{}", &base[..authority_end], name);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_url;

    #[test]
    fn operators_database_urls_are_understood() {
        assert_eq!(
            normalize_url("sqlite:////var/lib/glance/glance.sqlite").unwrap(),
            "sqlite:///var/lib/glance/glance.sqlite?mode=rwc"
        );
        assert_eq!(
            normalize_url("sqlite:///tmp/g.db?mode=rwc").unwrap(),
            "sqlite:///tmp/g.db?mode=rwc"
        );
        assert_eq!(
            normalize_url("postgresql+psycopg2://g:p@db/glance").unwrap(),
            "postgres://g:p@db/glance"
        );
        assert!(normalize_url("mysql+pymysql://x").is_err());
    }
}
