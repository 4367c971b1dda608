//! Properties, tags and locations.
//!
//! Reads fetch an image's children as three JSON columns next to its row (aggregated by
//! correlated subqueries), so one image, or one page of images, is one statement returning
//! one row per image. Measured on SQLite this halves the latency of a `get` compared with a
//! `UNION ALL` of child rows, whose NULL-padded rows cost more to copy than to find. The
//! write path, which needs row ids, reads the child rows themselves ([`STORED_CHILDREN_SQL`]).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use glance_domain::Location;
use sea_orm::{DbBackend, DbErr, QueryResult};

use super::convert::metadata_from_json;

/// The three child columns for the row of the outer query's `images` table, as
/// `(alias, correlated subquery)`: a JSON object of properties, a JSON array of tags and one
/// of `[url, meta_data, status]` locations, both in row (insertion) order. The spelling
/// differs between the databases, the shape does not.
pub(crate) fn child_columns(backend: DbBackend) -> &'static [(&'static str, &'static str); 3] {
    static SQLITE: [(&str, &str); 3] = [
        (
            "properties",
            "(SELECT json_group_object(p.name, p.value) FROM image_properties p \
               WHERE p.image_id = images.id AND p.deleted = false)",
        ),
        (
            "tags",
            "(SELECT json_group_array(t.value ORDER BY t.id) FROM image_tags t \
               WHERE t.image_id = images.id AND t.deleted = false)",
        ),
        (
            "locations",
            "(SELECT json_group_array(json_array(l.value, l.meta_data, l.status) ORDER BY l.id) \
                FROM image_locations l WHERE l.image_id = images.id AND l.deleted = false)",
        ),
    ];
    static POSTGRES: [(&str, &str); 3] = [
        (
            "properties",
            "(SELECT json_object_agg(p.name, p.value)::text FROM image_properties p \
               WHERE p.image_id = images.id AND p.deleted = false)",
        ),
        (
            "tags",
            "(SELECT json_agg(t.value ORDER BY t.id)::text FROM image_tags t \
               WHERE t.image_id = images.id AND t.deleted = false)",
        ),
        (
            "locations",
            "(SELECT json_agg(json_build_array(l.value, l.meta_data, l.status) ORDER BY l.id)::text \
                FROM image_locations l WHERE l.image_id = images.id AND l.deleted = false)",
        ),
    ];
    match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &SQLITE,
    }
}

/// [`child_columns`] as select-list items: `(subquery) AS alias, ...`.
fn child_select_list(backend: DbBackend) -> String {
    child_columns(backend)
        .iter()
        .map(|(alias, subquery)| format!("{subquery} AS {alias}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One image by id (`$1`) with its children, and whether `$2` is a live member of it:
/// everything `get` needs, in one prepared statement and one row.
pub(crate) fn single_image_sql(backend: DbBackend) -> &'static str {
    fn build(backend: DbBackend) -> String {
        format!(
            "SELECT images.*, \
                    EXISTS (SELECT 1 FROM image_members m \
                             WHERE m.image_id = images.id AND m.member = $2 \
                               AND m.deleted = false) AS is_member, \
                    {children} \
               FROM images WHERE images.id = $1",
            children = child_select_list(backend)
        )
    }
    static SQLITE: LazyLock<String> = LazyLock::new(|| build(DbBackend::Sqlite));
    static POSTGRES: LazyLock<String> = LazyLock::new(|| build(DbBackend::Postgres));
    match backend {
        DbBackend::Postgres => &POSTGRES,
        _ => &SQLITE,
    }
}

/// Many images at once, PostgreSQL only: `$1` is a JSON array of `{"id", "project"}`; one
/// row per id found, with `ord` its 1-based position in the array and the columns of
/// [`single_image_sql`] (`is_member` for that item's project). The lateral `LIMIT 1` keeps
/// the plan a primary-key lookup per id, whatever the planner guesses of the array's length.
pub(crate) fn many_images_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT q.ord, images.*, \
                    EXISTS (SELECT 1 FROM image_members m \
                             WHERE m.image_id = images.id AND m.member = q.item->>'project' \
                               AND m.deleted = false) AS is_member, \
                    {children} \
               FROM json_array_elements($1::json) WITH ORDINALITY AS q(item, ord) \
               CROSS JOIN LATERAL \
                    (SELECT * FROM images i WHERE i.id = q.item->>'id' LIMIT 1) images",
            children = child_select_list(DbBackend::Postgres)
        )
    });
    &SQL
}

/// An image's live children, as the domain shows them.
#[derive(Debug, Default)]
pub(crate) struct Children {
    pub properties: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub locations: Vec<Location>,
}

impl Children {
    /// Decodes the columns of [`child_columns`]. An empty aggregate is NULL on PostgreSQL
    /// and an empty JSON value on SQLite; both mean none.
    pub(crate) fn decode(row: &QueryResult) -> Result<Children, String> {
        fn column(row: &QueryResult, name: &str) -> Result<Option<String>, String> {
            row.try_get::<Option<String>>("", name)
                .map_err(|e: DbErr| e.to_string())
        }
        fn json<T: serde::de::DeserializeOwned + Default>(
            text: Option<String>,
            what: &str,
        ) -> Result<T, String> {
            match text {
                None => Ok(T::default()),
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| format!("corrupt {what} aggregate: {e}")),
            }
        }
        let properties = json(column(row, "properties")?, "properties")?;
        let tags = json(column(row, "tags")?, "tags")?;
        let rows: Vec<(String, String, String)> = json(column(row, "locations")?, "locations")?;
        let mut locations = Vec::with_capacity(rows.len());
        for (url, metadata, status) in rows {
            let metadata = metadata_from_json(&metadata)
                .map_err(|e| format!("location {url} has corrupt metadata: {e}"))?;
            locations.push(Location {
                url,
                metadata,
                status,
            });
        }
        Ok(Children {
            properties,
            tags,
            locations,
        })
    }
}

/// One child row as stored, deleted property rows included: a save revives those rather
/// than inserting a duplicate `(image_id, name)`.
#[derive(Debug)]
pub(crate) enum StoredChild {
    Property {
        row_id: i64,
        name: String,
        value: String,
        deleted: bool,
    },
    Tag {
        row_id: i64,
        value: String,
    },
    Location {
        row_id: i64,
        location: Location,
    },
}

const KIND_PROPERTY: i32 = 1;
const KIND_TAG: i32 = 2;
const KIND_LOCATION: i32 = 3;

/// The stored children of image `$1`, each row tagged with its `kind`, in id order.
pub(crate) const STORED_CHILDREN_SQL: &str = "\
    SELECT 1 AS kind, p.id AS row_id, p.name AS c1, p.value AS c2, NULL AS c3, \
           p.deleted AS deleted \
      FROM image_properties p WHERE p.image_id = $1 \
    UNION ALL \
    SELECT 2, t.id, t.value, NULL, NULL, t.deleted \
      FROM image_tags t WHERE t.image_id = $1 AND t.deleted = false \
    UNION ALL \
    SELECT 3, l.id, l.value, l.meta_data, l.status, l.deleted \
      FROM image_locations l WHERE l.image_id = $1 AND l.deleted = false \
    ORDER BY 1, 2";

impl StoredChild {
    pub(crate) fn decode(row: &QueryResult) -> Result<StoredChild, String> {
        let get = |name: &str| -> Result<Option<String>, String> {
            row.try_get::<Option<String>>("", name)
                .map_err(|e| e.to_string())
        };
        let kind: i32 = row.try_get("", "kind").map_err(|e| e.to_string())?;
        let row_id: i64 = row.try_get("", "row_id").map_err(|e| e.to_string())?;
        let c1 = get("c1")?.unwrap_or_default();
        Ok(match kind {
            KIND_PROPERTY => StoredChild::Property {
                row_id,
                name: c1,
                value: get("c2")?.unwrap_or_default(),
                deleted: row.try_get("", "deleted").map_err(|e| e.to_string())?,
            },
            KIND_TAG => StoredChild::Tag { row_id, value: c1 },
            KIND_LOCATION => StoredChild::Location {
                row_id,
                location: Location {
                    metadata: metadata_from_json(&get("c2")?.unwrap_or_default())
                        .map_err(|e| format!("location {row_id} has corrupt metadata: {e}"))?,
                    url: c1,
                    status: get("c3")?.unwrap_or_default(),
                },
            },
            other => return Err(format!("unknown child kind {other}")),
        })
    }
}
