//! The image repository: Glance's `db/sqlalchemy/api.py` image functions, answering the
//! registry's requests (`glance_proto::registry`) with the same semantics.

mod batch;
mod cache;
mod children;
mod convert;
mod leases;
mod list;
mod members;
mod purge;
mod scrub;
mod write;

pub(crate) use convert::{db_error, internal};
pub(crate) use scrub::admin_only;

use std::sync::Arc;

use glance_domain::{Image, ImageId, MemberStatus, RequestContext};
use glance_proto::registry::{GetImage, RegistryError, RegistryResult};
use sea_orm::{
    DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, SqlErr, Statement,
    TransactionTrait, Value,
};

use self::cache::RecordCache;
use self::children::{many_images_sql, single_image_sql, Children};
use self::convert::{
    image_from_row, micros, new_image_row, new_location, new_property, new_tag, now, unique_tags,
    DbContext,
};
use crate::entity::{image, image_location, image_property, image_tag};
use crate::Database;

/// Image records, with Glance's visibility rules applied to the caller. Cheap to clone: it
/// is a handle on the connection pools (and the record cache, if any).
#[derive(Clone, Debug)]
pub struct ImageRepo {
    db: Database,
    cache: Option<Arc<RecordCache>>,
    creates: Arc<batch::CreateQueue>,
}

impl ImageRepo {
    pub fn new(db: Database) -> Self {
        Self {
            db,
            cache: None,
            creates: Arc::default(),
        }
    }

    /// Keeps up to `capacity` records (and recent list pages) in memory. Only for a repo
    /// that is its database's sole writer; see [`RecordCache`].
    pub fn with_record_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(Arc::new(RecordCache::new(capacity)));
        self
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// One image with its children, if `ctx` may see it (Glance's `is_image_visible`).
    /// An image the caller may not see is reported as missing, so its existence does not
    /// leak.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %id))]
    pub async fn get(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        include_deleted: bool,
    ) -> RegistryResult<Image> {
        if let Some(image) = self.cache.as_ref().and_then(|c| c.record(ctx, &id)) {
            return Ok(image);
        }
        let read_at = self.cache.as_ref().map(|c| c.generation());
        let backend = self.db.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            single_image_sql(backend),
            [
                Value::from(id.to_string()),
                Value::from(ctx.project_id.clone()),
            ],
        );
        let rows = self
            .db
            .read_all(statement)
            .await
            .context("reading an image")?;
        let found = rows
            .first()
            .ok_or_else(|| RegistryError::image_not_found(id))?;
        let image = decode_visible(found, ctx, id, include_deleted)?;
        if let (Some(cache), Some(read_at)) = (&self.cache, read_at) {
            cache.keep_record(&image, read_at);
        }
        Ok(image)
    }

    /// Several `get`s, answered in order, each on its own. On PostgreSQL they are one
    /// statement (one round trip for the whole batch); elsewhere, and with a record cache,
    /// they are `get`s one after the other.
    #[tracing::instrument(level = "debug", skip_all, fields(count = items.len()))]
    pub async fn get_many(&self, items: &[GetImage]) -> Vec<RegistryResult<Image>> {
        if self.cache.is_some() || self.db.backend() != DbBackend::Postgres || items.len() < 2 {
            let mut found = Vec::with_capacity(items.len());
            for item in items {
                found.push(self.get(&item.ctx, item.id, item.include_deleted).await);
            }
            return found;
        }
        match self.read_many(items).await {
            Ok(found) => found,
            Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn read_many(&self, items: &[GetImage]) -> RegistryResult<Vec<RegistryResult<Image>>> {
        let keys: Vec<serde_json::Value> = items
            .iter()
            .map(|item| serde_json::json!({"id": item.id.to_string(), "project": item.ctx.project_id}))
            .collect();
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            many_images_sql(),
            [Value::from(serde_json::Value::Array(keys).to_string())],
        );
        let rows = self
            .db
            .read_all(statement)
            .await
            .context("reading images")?;
        let mut found: Vec<Option<&sea_orm::QueryResult>> = vec![None; items.len()];
        for row in &rows {
            let ord = row.try_get::<i64>("", "ord").context("decoding images")?;
            if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| found.get_mut(i)) {
                *slot = Some(row);
            }
        }
        Ok(items
            .iter()
            .zip(found)
            .map(|(item, row)| match row {
                Some(row) => decode_visible(row, &item.ctx, item.id, item.include_deleted),
                None => Err(RegistryError::image_not_found(item.id)),
            })
            .collect())
    }

    /// Inserts `image` with its properties, tags and locations, all or nothing.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image.id, request_id = %ctx.request_id))]
    pub async fn create(&self, ctx: &RequestContext, image: Image) -> RegistryResult<Image> {
        let mut image = image;
        image.created_at = micros(image.created_at);
        image.updated_at = micros(image.updated_at);
        image.deleted_at = image.deleted_at.map(micros);
        image.tags = unique_tags(&image.tags);
        self.create_batched(ctx, image).await
    }

    /// [`ImageRepo::create`] of an image already normalised, in a transaction of its own.
    async fn create_one(&self, ctx: &RequestContext, image: Image) -> RegistryResult<Image> {
        let id = image.id.to_string();
        let txn = self.begin().await?;
        // The image row goes first: on SQLite the transaction takes the write lock with its
        // first statement, so it never has to upgrade a read lock (which cannot wait).
        let inserted = image::Entity::insert(new_image_row(&image))
            .exec_without_returning(&txn)
            .await;
        if let Err(err) = inserted {
            if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
                drop(txn);
                return self.redelivered(ctx, &image).await;
            }
            return Err(convert::internal("inserting an image", err));
        }
        insert_children(&txn, &id, &image, now()).await?;
        txn.commit().await.context("committing an image")?;
        self.written(&image.id);
        Ok(image)
    }

    /// A create whose id is taken. If a registry committed this very create and died before
    /// acknowledging it, the broker delivers it again: the stored row is then this image's
    /// (same owner, same creation time) and the create succeeded. Anything else is a
    /// duplicate; deleted ids are never reused either (OSSN-0075).
    async fn redelivered(&self, ctx: &RequestContext, image: &Image) -> RegistryResult<Image> {
        let duplicate = || {
            RegistryError::Duplicate(format!(
                "Image with identifier {} already exists!",
                image.id
            ))
        };
        let admin = RequestContext::admin(ctx.request_id.clone());
        match self.get(&admin, image.id, false).await {
            Ok(stored) if stored.owner == image.owner && stored.created_at == image.created_at => {
                Ok(stored)
            }
            Ok(_) | Err(RegistryError::NotFound(_)) => Err(duplicate()),
            Err(other) => Err(other),
        }
    }

    /// Call after every committed write to `id`.
    fn written(&self, id: &ImageId) {
        if let Some(cache) = &self.cache {
            cache.written(id);
        }
    }

    /// Shares `image_id` with project `member`. The members API is not built yet; this is
    /// enough for visibility to be exercised, and it does not check for duplicates.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image_id))]
    pub async fn add_member(
        &self,
        image_id: ImageId,
        member: &str,
        status: MemberStatus,
    ) -> RegistryResult<()> {
        self.insert_member(image_id, member, status)
            .await
            .map(|_| ())
    }

    async fn begin(&self) -> RegistryResult<DatabaseTransaction> {
        self.db
            .writer()
            .begin()
            .await
            .context("starting a transaction")
    }
}

/// The image in `found` (a row of [`single_image_sql`] or [`many_images_sql`]) if `ctx` may
/// see it; else `NotFound`, so its existence does not leak.
fn decode_visible(
    found: &sea_orm::QueryResult,
    ctx: &RequestContext,
    id: ImageId,
    include_deleted: bool,
) -> RegistryResult<Image> {
    let row = image::Model::from_query_result(found, "").context("decoding an image")?;
    let is_member = found
        .try_get::<Option<bool>>("", "is_member")
        .context("decoding an image")?
        .unwrap_or(false);
    if (row.deleted && !include_deleted)
        || !is_visible(ctx, row.owner.as_deref(), &row.visibility, is_member)
    {
        return Err(RegistryError::image_not_found(id));
    }
    let mut image = image_from_row(row)?;
    let children = Children::decode(found)
        .map_err(|e| convert::internal("decoding an image's children", e))?;
    attach(&mut image, children);
    Ok(image)
}

/// Glance's `is_image_visible`: a member sees a shared image whatever its member status;
/// the status only decides whether the image is listed.
fn is_visible(
    ctx: &RequestContext,
    owner: Option<&str>,
    visibility: &str,
    is_member: bool,
) -> bool {
    ctx.is_admin
        || owner.is_none()
        || visibility == "public"
        || visibility == "community"
        || ctx.owns(owner)
        || (visibility == "shared" && is_member)
}

fn attach(image: &mut Image, children: Children) {
    image.properties = children.properties;
    image.tags = children.tags;
    image.locations = children.locations;
}

/// Inserts every child of a new image: one statement per non-empty child table.
async fn insert_children(
    txn: &DatabaseTransaction,
    id: &str,
    image: &Image,
    now: chrono::DateTime<chrono::Utc>,
) -> RegistryResult<()> {
    if !image.properties.is_empty() {
        image_property::Entity::insert_many(
            image
                .properties
                .iter()
                .map(|(name, value)| new_property(id, name, value, now)),
        )
        .exec_without_returning(txn)
        .await
        .context("inserting image properties")?;
    }
    if !image.tags.is_empty() {
        image_tag::Entity::insert_many(image.tags.iter().map(|tag| new_tag(id, tag, now)))
            .exec_without_returning(txn)
            .await
            .context("inserting image tags")?;
    }
    if !image.locations.is_empty() {
        image_location::Entity::insert_many(
            image.locations.iter().map(|loc| new_location(id, loc, now)),
        )
        .exec_without_returning(txn)
        .await
        .context("inserting image locations")?;
    }
    Ok(())
}

/// A transaction on the write connection, its failure named by `what`.
pub(crate) async fn begin_write(
    db: &crate::Database,
    what: &str,
) -> RegistryResult<sea_orm::DatabaseTransaction> {
    use sea_orm::TransactionTrait;
    db.writer().begin().await.map_err(|e| db_error(what, e))
}
