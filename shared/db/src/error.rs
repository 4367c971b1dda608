use sea_orm::DbErr;

/// Why the database could not be opened or migrated. Request-level failures are
/// `glance_proto::registry::RegistryError` instead, because they travel back over the bus.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Only the scheme is kept: the rest of a connection URL may hold a password.
    #[error("unsupported database URL scheme '{0}' (expected sqlite: or postgresql://)")]
    UnsupportedUrl(String),
    #[error("invalid database URL")]
    InvalidUrl(#[source] sea_orm::sqlx::Error),
    #[error("cannot connect to the database")]
    Connect(#[source] sea_orm::sqlx::Error),
    #[error("invalid database name '{0}': use letters, digits and '_'")]
    InvalidDatabaseName(String),
    #[error("database administration statement failed")]
    Admin(#[source] sea_orm::sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[source] DbErr),
    #[error("database query failed")]
    Query(#[source] DbErr),
}
