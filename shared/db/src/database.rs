//! Connection pools and schema management.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, SqlxPostgresConnector,
    SqlxSqliteConnector, Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

/// Counts the writes that failed because the database's storage was full. Each SQLite
/// writer pool remembers the count it last saw, and on a change closes and reopens its
/// connection before the next use (every pool of the process does, not only the first
/// to look).
static FULL_WRITES: AtomicU64 = AtomicU64::new(0);

/// A write failed for lack of space: SQLite writer connections are replaced before reuse.
pub(crate) fn writer_suspect() {
    FULL_WRITES.fetch_add(1, Ordering::SeqCst);
}

use crate::reads::SqliteReaders;
use crate::url::{self, Target};
use crate::{DbError, Migrator};

/// How many connections to keep, and how long a caller may wait for one.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Connections serving reads (SQLite) or everything (PostgreSQL).
    pub max_connections: u32,
    /// How long a statement waits for a free connection before failing. Writers on SQLite
    /// queue here for the single write connection, so this bounds their wait, not a lock.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another process before giving up.
    pub busy_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
        Self {
            max_connections: 2 * cores + 2,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// The registry's database: read connections and a write pool.
///
/// SQLite allows one writer at a time, and a writer that finds the lock taken fails with
/// "database is locked" once its busy timeout runs out; Glance loses about one in seven
/// concurrent creates that way. Here every write goes through a pool of exactly one
/// connection, so writers queue in the pool (fairly, without polling) and never contend
/// for SQLite's lock, while WAL lets the read connections run alongside. PostgreSQL has no
/// such limit, so reads and writes share one pool there.
#[derive(Clone, Debug)]
pub struct Database {
    reads: Reads,
    write: DatabaseConnection,
}

#[derive(Clone, Debug)]
enum Reads {
    Pool(DatabaseConnection),
    Sqlite(Arc<SqliteReaders>),
}

impl Database {
    /// Opens `url` with default pools. sqlx and SQLAlchemy spellings are both accepted
    /// (`sqlite:///abs/path`, `sqlite:////abs/path`, `postgresql+psycopg2://…`), so a
    /// `[database] connection` line from `glance-api.conf` works unchanged.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        Self::connect_with(url, PoolConfig::default()).await
    }

    pub async fn connect_with(url: &str, pool: PoolConfig) -> Result<Database, DbError> {
        match url::parse(url)? {
            Target::SqliteMemory => {
                // Every connection to `:memory:` is a separate database, so there is exactly
                // one, kept forever, for reads and writes alike.
                let options = SqliteConnectOptions::from_str("sqlite::memory:")
                    .map_err(DbError::InvalidUrl)?
                    .foreign_keys(true)
                    .disable_statement_logging();
                let conn = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(pool.acquire_timeout)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                let conn = SqlxSqliteConnector::from_sqlx_sqlite_pool(conn);
                Ok(Database {
                    reads: Reads::Pool(conn.clone()),
                    write: conn,
                })
            }
            Target::SqliteFile(url) => {
                let base = SqliteConnectOptions::from_str(&url)
                    .map_err(DbError::InvalidUrl)?
                    .busy_timeout(pool.busy_timeout)
                    .foreign_keys(true)
                    .disable_statement_logging();
                // WAL so readers never block the writer (and vice versa); NORMAL sync is
                // durable in WAL mode except for the last commits on power loss, which is
                // SQLite's recommended trade-off for WAL.
                let write_options = base
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(pool.acquire_timeout)
                    .test_before_acquire(false)
                    // After a full disk the writer is replaced: SQLite rolls a transaction
                    // back by itself when a write fails for lack of space, and the driver,
                    // which still counts it open, would nest every later write in it.
                    .before_acquire({
                        let seen = Arc::new(AtomicU64::new(FULL_WRITES.load(Ordering::SeqCst)));
                        move |_, _| {
                            let now = FULL_WRITES.load(Ordering::SeqCst);
                            let fresh = seen.swap(now, Ordering::SeqCst) == now;
                            Box::pin(async move { Ok(fresh) })
                        }
                    })
                    .connect_with(write_options)
                    .await
                    .map_err(DbError::Connect)?;
                // Opened after the writer has switched the file to WAL. Read-only, so a
                // write sent here by mistake fails loudly instead of racing the writer.
                let read_options = base.read_only(true).create_if_missing(false);
                let reads = SqliteReaders::open(&read_options, pool.max_connections)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Database {
                    reads: Reads::Sqlite(Arc::new(reads)),
                    write: SqlxSqliteConnector::from_sqlx_sqlite_pool(write),
                })
            }
            Target::Postgres(url) => {
                let options = PgConnectOptions::from_str(&url)
                    .map_err(DbError::InvalidUrl)?
                    .application_name("glance-registry")
                    .disable_statement_logging();
                let conn = PgPoolOptions::new()
                    .max_connections(pool.max_connections.max(2))
                    .acquire_timeout(pool.acquire_timeout)
                    // sqlx pings every connection on release already; pinging on acquire
                    // too would add a round trip to every statement.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(conn);
                Ok(Database {
                    reads: Reads::Pool(conn.clone()),
                    write: conn,
                })
            }
        }
    }

    pub fn backend(&self) -> DbBackend {
        self.write.get_database_backend()
    }

    /// Applies every pending migration in one transaction. On PostgreSQL the transaction
    /// first takes an advisory lock, so registries starting together migrate one at a time
    /// instead of racing to create the same tables.
    pub async fn migrate_up(&self) -> Result<(), DbError> {
        let txn = self.write.begin().await.map_err(DbError::Migrate)?;
        if self.backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await
                .map_err(DbError::Migrate)?;
        }
        Migrator::up(&txn, None).await.map_err(DbError::Migrate)?;
        txn.commit().await.map_err(DbError::Migrate)
    }

    /// The name of the newest applied migration, or `None` on an empty database (what
    /// `glance-manage db version` prints).
    pub async fn version(&self) -> Result<Option<String>, DbError> {
        // Runs on the write handle: the migrator creates its bookkeeping table if missing.
        let applied = Migrator::get_applied_migrations(&self.write)
            .await
            .map_err(DbError::Query)?;
        Ok(applied.last().map(|m| m.name().to_owned()))
    }

    /// Names of the migrations `migrate_up` would apply, oldest first.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbError> {
        let pending = Migrator::get_pending_migrations(&self.write)
            .await
            .map_err(DbError::Query)?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Closes the pools, waiting for connections in use to come back. SQLite's read
    /// connections close with the last clone of this handle.
    pub async fn close(self) {
        // Errors here only mean the pool was already closed.
        match self.reads {
            Reads::Pool(pool) => {
                let _ = pool.close_by_ref().await;
            }
            Reads::Sqlite(readers) => {
                if let Ok(readers) = Arc::try_unwrap(readers) {
                    readers.close().await;
                }
            }
        }
        let _ = self.write.close_by_ref().await;
    }

    /// Runs a read-only statement on a read connection.
    pub(crate) async fn read_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.reads {
            Reads::Pool(pool) => pool.query_all(statement).await,
            Reads::Sqlite(readers) => readers.query_all(statement).await,
        }
    }

    /// Creates an empty PostgreSQL database `name` on the server at `server_url` and returns
    /// its URL: the throwaway databases of test suites, and a bootstrap for operators.
    pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, DbError> {
        let (server, url) = postgres_admin(server_url, name)?;
        server_statement(&server, &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(url)
    }

    /// Drops database `name` on the server at `server_url`, closing its other sessions first.
    pub async fn drop_postgres_database(server_url: &str, name: &str) -> Result<(), DbError> {
        let (server, _) = postgres_admin(server_url, name)?;
        server_statement(
            &server,
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )
        .await
    }

    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.write
    }
}

/// Arbitrary, fixed key for the migration advisory lock ("glance" in ASCII).
const MIGRATION_LOCK: i64 = 0x676c_616e_6365;

/// The server's URL (as sqlx wants it) and the URL of database `name` on the same server.
fn postgres_admin(server_url: &str, name: &str) -> Result<(String, String), DbError> {
    let Target::Postgres(server) = url::parse(server_url)? else {
        return Err(DbError::UnsupportedUrl("sqlite".to_owned()));
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::InvalidDatabaseName(name.to_owned()));
    }
    let rest = server.strip_prefix("postgresql://").unwrap_or(&server);
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut url = format!("postgresql://{authority}/{name}");
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok((server, url))
}

/// Runs one statement on a connection of its own (CREATE and DROP DATABASE cannot run in a
/// transaction, and no pool is worth keeping for them).
async fn server_statement(server_url: &str, sql: &str) -> Result<(), DbError> {
    use sea_orm::sqlx::{Connection as _, Executor as _, PgConnection};
    let options = PgConnectOptions::from_str(server_url)
        .map_err(DbError::InvalidUrl)?
        .disable_statement_logging();
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(DbError::Connect)?;
    let result = conn.execute(sql).await.map(|_| ()).map_err(DbError::Admin);
    // The statement's outcome matters; a failed goodbye does not.
    let _ = conn.close().await;
    result
}
