//! Between the persistence model and the domain's `Image`.

use std::collections::BTreeMap;
use std::fmt::Display;

use chrono::{DateTime, Utc};
use glance_domain::{Image, ImageId, Location};
use glance_proto::registry::{RegistryError, RegistryResult};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::DbErr;

use crate::entity::{image, image_location, image_property, image_tag};

/// Both databases must hand back exactly what was stored, and PostgreSQL keeps microseconds:
/// truncating before every write makes SQLite agree with it.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

pub(crate) fn now() -> DateTime<Utc> {
    micros(Utc::now())
}

/// An unexpected failure: logged here, where the detail is, and sent on as `Internal`;
/// or, when the database's volume is full, as `Unavailable` (the caller answers 503 and
/// may retry once space is freed).
pub(crate) fn internal(what: &str, err: impl Display) -> RegistryError {
    let detail = err.to_string();
    if full_message(&detail) {
        return storage_full(what, &detail);
    }
    tracing::error!(error = %detail, "{what}");
    RegistryError::Internal(format!("{what}: {detail}"))
}

fn storage_full(what: &str, detail: &str) -> RegistryError {
    crate::database::writer_suspect();
    tracing::error!(error = %detail, "{what}: the database's storage is full");
    RegistryError::Unavailable(
        "The image registry's database storage is full; free space and try again".into(),
    )
}

/// The messages SQLite (`SQLITE_FULL`) and an I/O error from either driver give when the
/// volume is full.
fn full_message(detail: &str) -> bool {
    detail.contains("database or disk is full") || detail.contains("No space left on device")
}

/// Whether the database said its storage is full: SQLite's `SQLITE_FULL` (13), or
/// PostgreSQL's `disk_full` (SQLSTATE 53100).
fn database_full(err: &DbErr) -> bool {
    use sea_orm::{sqlx, RuntimeErr};
    let sqlx = match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        other => return full_message(&other.to_string()),
    };
    match sqlx {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("13" | "53100")) || full_message(db.message())
        }
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        other => full_message(&other.to_string()),
    }
}

/// Whether the database could not be reached or went away under the statement (a restart,
/// a failover, a network cut): no pooled connection in time, an I/O error on the socket, or
/// PostgreSQL's connection exceptions (SQLSTATE class 08) and shutdown codes (57P01-57P03).
/// Worth another try, unlike a statement the database refused.
fn database_unreachable(err: &DbErr) -> bool {
    use sea_orm::{sqlx, RuntimeErr};
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

/// Whether a failed write is about what it wrote (a constraint, say), not the database as
/// a whole (full, or out of reach): only then may the same rows written apart fare better.
pub(crate) fn about_the_rows(err: &DbErr) -> bool {
    !database_full(err) && !database_unreachable(err)
}

/// `.context("...")` for database results, in the manner of `anyhow`.
pub(crate) trait DbContext<T> {
    fn context(self, what: &str) -> RegistryResult<T>;
}

impl<T> DbContext<T> for Result<T, DbErr> {
    fn context(self, what: &str) -> RegistryResult<T> {
        self.map_err(|err| db_error(what, err))
    }
}

/// A database error as the registry answers it: a full volume or a database out of reach is
/// `Unavailable` (503, worth another try), anything else `Internal`, logged here.
pub(crate) fn db_error(what: &str, err: DbErr) -> RegistryError {
    if database_full(&err) {
        storage_full(what, &err.to_string())
    } else if database_unreachable(&err) {
        tracing::warn!(error = %err, "{what}: the database is unreachable");
        RegistryError::Unavailable(
            "The image registry's database is unavailable; try again shortly".into(),
        )
    } else {
        internal(what, err)
    }
}

/// An image row as the domain sees it, without its children yet.
pub(crate) fn image_from_row(row: image::Model) -> RegistryResult<Image> {
    fn parse<T: std::str::FromStr>(value: &str, id: &str) -> RegistryResult<T>
    where
        T::Err: Display,
    {
        value
            .parse()
            .map_err(|e| internal(&format!("image {id} has a corrupt row"), e))
    }
    let id_text = row.id.as_str();
    Ok(Image {
        id: parse::<ImageId>(id_text, id_text)?,
        status: parse(&row.status, id_text)?,
        visibility: parse(&row.visibility, id_text)?,
        disk_format: row
            .disk_format
            .as_deref()
            .map(|f| parse(f, id_text))
            .transpose()?,
        container_format: row
            .container_format
            .as_deref()
            .map(|f| parse(f, id_text))
            .transpose()?,
        name: row.name,
        protected: row.protected,
        os_hidden: row.os_hidden,
        checksum: row.checksum,
        os_hash_algo: row.os_hash_algo,
        os_hash_value: row.os_hash_value,
        owner: row.owner,
        size: row.size,
        virtual_size: row.virtual_size,
        min_disk: row.min_disk,
        min_ram: row.min_ram,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted_at: row.deleted_at,
        tags: Vec::new(),
        properties: BTreeMap::new(),
        locations: Vec::new(),
    })
}

/// The row for a new image. `deleted` follows the status, as Glance keeps it.
pub(crate) fn new_image_row(image: &Image) -> image::ActiveModel {
    image::ActiveModel {
        id: Set(image.id.to_string()),
        name: Set(image.name.clone()),
        size: Set(image.size),
        virtual_size: Set(image.virtual_size),
        status: Set(image.status.as_str().to_owned()),
        disk_format: Set(image.disk_format.map(|f| f.as_str().to_owned())),
        container_format: Set(image.container_format.map(|f| f.as_str().to_owned())),
        checksum: Set(image.checksum.clone()),
        os_hash_algo: Set(image.os_hash_algo.clone()),
        os_hash_value: Set(image.os_hash_value.clone()),
        owner: Set(image.owner.clone()),
        min_disk: Set(image.min_disk),
        min_ram: Set(image.min_ram),
        protected: Set(image.protected),
        os_hidden: Set(image.os_hidden),
        visibility: Set(image.visibility.as_str().to_owned()),
        created_at: Set(image.created_at),
        updated_at: Set(image.updated_at),
        deleted_at: Set(image.deleted_at),
        deleted: Set(image.status.is_deleted()),
    }
}

pub(crate) fn new_property(
    image_id: &str,
    name: &str,
    value: &str,
    now: DateTime<Utc>,
) -> image_property::ActiveModel {
    image_property::ActiveModel {
        id: NotSet,
        image_id: Set(image_id.to_owned()),
        name: Set(name.to_owned()),
        value: Set(value.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        deleted: Set(false),
    }
}

pub(crate) fn new_tag(image_id: &str, value: &str, now: DateTime<Utc>) -> image_tag::ActiveModel {
    image_tag::ActiveModel {
        id: NotSet,
        image_id: Set(image_id.to_owned()),
        value: Set(value.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        deleted: Set(false),
    }
}

pub(crate) fn new_location(
    image_id: &str,
    location: &Location,
    now: DateTime<Utc>,
) -> image_location::ActiveModel {
    image_location::ActiveModel {
        id: NotSet,
        image_id: Set(image_id.to_owned()),
        value: Set(location.url.clone()),
        meta_data: Set(metadata_to_json(&location.metadata)),
        status: Set(location.status.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        deleted: Set(false),
    }
}

pub(crate) fn metadata_to_json(metadata: &BTreeMap<String, String>) -> String {
    serde_json::to_string(metadata).expect("a map of strings always serialises")
}

/// Glance stores location metadata as any JSON object; values that are not strings (written
/// by Glance itself, say) are kept as their JSON text rather than refused.
pub(crate) fn metadata_from_json(
    text: &str,
) -> Result<BTreeMap<String, String>, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)?;
    Ok(object
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// Tags are a set, but the order a caller gave them in is the nicest order to show.
pub(crate) fn unique_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    out
}
