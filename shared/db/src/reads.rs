//! SQLite's read connections, without a pool in front.
//!
//! sqlx's pool pings every connection it takes back, and on SQLite a ping is a round trip to
//! the connection's worker thread: it costs as much as the query it follows, so a pooled
//! `get` spends a quarter of its time on it. SQLite file connections do not go stale the way
//! network connections do, and a cancelled read leaves nothing behind (the worker stops
//! stepping once nobody listens), so a fixed set of connections behind mutexes is enough.
//! Writes and PostgreSQL stay on sqlx pools.

use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::sea_query::Value;
use sea_orm::sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{self, Connection as _, Sqlite};
use sea_orm::{DbErr, QueryResult, RuntimeErr, Statement};
use tokio::sync::Mutex;

pub(crate) struct SqliteReaders {
    connections: Vec<Mutex<SqliteConnection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for SqliteReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReaders")
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl SqliteReaders {
    pub(crate) async fn open(
        options: &SqliteConnectOptions,
        count: u32,
    ) -> Result<Self, sqlx::Error> {
        let mut connections = Vec::with_capacity(count as usize);
        for _ in 0..count.max(1) {
            connections.push(Mutex::new(SqliteConnection::connect_with(options).await?));
        }
        Ok(Self {
            connections,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs a read on an idle connection if there is one, else queues (fairly) on the next
    /// one in turn.
    pub(crate) async fn query_all(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let n = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let idle = (0..n).find_map(|i| self.connections[(start + i) % n].try_lock().ok());
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connections[start % n].lock().await,
        };
        let mut query = sqlx::query_with::<Sqlite, _>(&statement.sql, SqliteArguments::default());
        for value in statement.values.map(|v| v.0).unwrap_or_default() {
            query = bind(query, value)?;
        }
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| DbErr::Query(RuntimeErr::SqlxError(e)))?;
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }

    pub(crate) async fn close(self) {
        for conn in self.connections {
            // Closing only fails if the worker is gone already.
            let _ = conn.into_inner().close().await;
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// The value types the repository's reads use; anything else is a bug here, not bad input.
fn bind(query: Query<'_>, value: Value) -> Result<Query<'_>, DbErr> {
    Ok(match value {
        Value::Bool(v) => query.bind(v),
        Value::Int(v) => query.bind(v),
        Value::BigInt(v) => query.bind(v),
        Value::Unsigned(v) => query.bind(v),
        // LIMIT and OFFSET; SQLite integers are signed 64-bit.
        Value::BigUnsigned(v) => query.bind(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))),
        Value::String(v) => query.bind(v.map(|s| *s)),
        Value::ChronoDateTimeUtc(v) => query.bind(v.map(|t| *t)),
        other => {
            return Err(DbErr::Custom(format!(
                "no SQLite binding for {other:?} in a read"
            )))
        }
    })
}
