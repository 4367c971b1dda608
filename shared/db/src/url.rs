//! Connection URLs as operators write them.
//!
//! Glance's `[database] connection` is an SQLAlchemy URL (`postgresql+psycopg2://…`,
//! `sqlite:////var/lib/glance/glance.sqlite`), while sqlx expects `postgresql://…` and
//! `sqlite:///abs/path`. Accepting both lets an existing `glance-api.conf` work unchanged.

use crate::DbError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A private in-memory database; it lives as long as its one connection.
    SqliteMemory,
    /// An sqlx SQLite URL (`sqlite://<path>[?query]`).
    SqliteFile(String),
    /// An sqlx PostgreSQL URL.
    Postgres(String),
}

pub(crate) fn parse(url: &str) -> Result<Target, DbError> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| DbError::UnsupportedUrl(String::new()))?;
    // SQLAlchemy names the driver after a `+` (`postgresql+psycopg2`); sqlx has one driver.
    let base = scheme.split('+').next().unwrap_or(scheme);
    match base.to_ascii_lowercase().as_str() {
        "postgresql" | "postgres" => Ok(Target::Postgres(format!("postgresql:{rest}"))),
        "sqlite" => Ok(sqlite(rest)),
        _ => Err(DbError::UnsupportedUrl(scheme.to_owned())),
    }
}

fn sqlite(rest: &str) -> Target {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let path = if let Some(abs) = path.strip_prefix("////") {
        // SQLAlchemy's absolute form: `sqlite:////abs/path`.
        format!("/{abs}")
    } else if let Some(p) = path.strip_prefix("//") {
        // sqlx's form: `sqlite:///abs/path` or `sqlite://relative/path`.
        p.to_owned()
    } else {
        // `sqlite:path` and `sqlite::memory:`.
        path.to_owned()
    };
    let memory =
        path.is_empty() || path == ":memory:" || query.is_some_and(|q| q.contains("mode=memory"));
    if memory {
        return Target::SqliteMemory;
    }
    match query {
        Some(q) => Target::SqliteFile(format!("sqlite://{path}?{q}")),
        None => Target::SqliteFile(format!("sqlite://{path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str) -> Target {
        Target::SqliteFile(s.to_owned())
    }

    #[test]
    fn sqlx_sqlite_urls_are_taken_as_they_are() {
        assert_eq!(
            parse("sqlite:///abs/glance.db").unwrap(),
            file("sqlite:///abs/glance.db")
        );
        assert_eq!(
            parse("sqlite://glance.db?mode=rwc").unwrap(),
            file("sqlite://glance.db?mode=rwc")
        );
        assert_eq!(
            parse("sqlite:glance.db").unwrap(),
            file("sqlite://glance.db")
        );
    }

    #[test]
    fn sqlalchemy_absolute_sqlite_urls_are_normalised() {
        assert_eq!(
            parse("sqlite:////var/lib/glance/glance.sqlite").unwrap(),
            file("sqlite:///var/lib/glance/glance.sqlite")
        );
    }

    #[test]
    fn every_spelling_of_an_in_memory_sqlite_database_is_recognised() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://",
            "sqlite:",
        ] {
            assert_eq!(parse(url).unwrap(), Target::SqliteMemory, "{url}");
        }
    }

    #[test]
    fn sqlalchemy_postgresql_drivers_are_dropped() {
        assert_eq!(
            parse("postgresql+psycopg2://glance:pw@db/glance").unwrap(),
            Target::Postgres("postgresql://glance:pw@db/glance".into())
        );
        assert_eq!(
            parse("postgres://db/glance").unwrap(),
            Target::Postgres("postgresql://db/glance".into())
        );
    }

    #[test]
    fn an_unsupported_scheme_is_refused_without_echoing_credentials() {
        let err = parse("mysql+pymysql://glance:secret@db/glance").unwrap_err();
        assert!(matches!(&err, DbError::UnsupportedUrl(s) if s == "mysql+pymysql"));
        assert!(!err.to_string().contains("secret"));
    }
}
