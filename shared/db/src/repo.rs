//! The registry's operations on the database, with Glance's semantics: visibility rules,
//! compare-and-set saves, soft deletes, filtered and keyset-paginated lists.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use glance_domain::{
    Image, ImageId, ImageStatus, Location, MemberStatus, RequestContext, Visibility,
};
use glance_proto::registry::{
    CmpOp, ListImages, MemberStatusFilter, RegistryError, RegistryResult, SortColumn, SortDir,
    SortKey, VisibilityFilter,
};
use sea_orm::sea_query::{Expr, Func, Query, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    DbErr, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
    Value,
};

use crate::entities::{image, image_location, image_member, image_property, image_tag};
use crate::Database;

#[derive(Debug, Clone)]
pub struct ImageRepo {
    db: Database,
    cache: Option<std::sync::Arc<RecordCache>>,
}

/// Recently read image records, for a registry that is the only writer of its database
/// (SQLite, embedded). Every write through this repo updates or drops the entry, so a hit
/// is never stale. With several registries on one database (PostgreSQL) it stays off:
/// another process's write could not invalidate it.
#[derive(Debug)]
struct RecordCache {
    entries: std::sync::RwLock<HashMap<ImageId, Image>>,
    /// Pages of lists by query, each tagged with the generation it was read at; any write
    /// makes every page older than it, so a page is only served while nothing has changed.
    lists: std::sync::RwLock<HashMap<String, (u64, Vec<Image>)>>,
    capacity: usize,
    /// Bumped after every committed write. A read puts what it read only if no write
    /// committed since it started, so a slow read can never reinstate an old record.
    generation: std::sync::atomic::AtomicU64,
}

impl RecordCache {
    fn get(&self, id: &ImageId) -> Option<Image> {
        self.entries
            .read()
            .expect("cache poisoned")
            .get(id)
            .cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// After a committed write to `id`.
    fn written(&self, id: &ImageId) {
        let mut entries = self.entries.write().expect("cache poisoned");
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        entries.remove(id);
    }

    fn list(&self, key: &str) -> Option<Vec<Image>> {
        let lists = self.lists.read().expect("cache poisoned");
        match lists.get(key) {
            Some((generation, page)) if *generation == self.generation() => Some(page.clone()),
            _ => None,
        }
    }

    fn put_list(&self, key: String, page: &[Image], read_at: u64) {
        let mut lists = self.lists.write().expect("cache poisoned");
        if self.generation() != read_at {
            return;
        }
        if lists.len() >= 1024 {
            lists.clear();
        }
        lists.insert(key, (read_at, page.to_vec()));
    }

    fn put(&self, image: &Image, read_at: u64) {
        let mut entries = self.entries.write().expect("cache poisoned");
        if self.generation() != read_at {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(&image.id) {
            // Crude but bounded: start over rather than track recency on the read path.
            entries.clear();
        }
        entries.insert(image.id, image.clone());
    }
}

fn internal(e: DbErr) -> RegistryError {
    tracing::error!(error = %e, "database error");
    RegistryError::Internal(e.to_string())
}

fn not_found(id: impl std::fmt::Display) -> RegistryError {
    RegistryError::NotFound(format!("No image found with ID {id}"))
}

/// The child rows of one image.
#[derive(Default)]
struct Children {
    properties: BTreeMap<String, String>,
    tags: Vec<String>,
    locations: Vec<Location>,
}

impl ImageRepo {
    pub fn new(db: Database) -> Self {
        Self { db, cache: None }
    }

    /// Keeps up to `capacity` records in memory. Only for a repo that is its database's
    /// sole writer (see [`RecordCache`]).
    pub fn with_record_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(std::sync::Arc::new(RecordCache {
            entries: std::sync::RwLock::new(HashMap::new()),
            lists: std::sync::RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: Default::default(),
        }));
        self
    }

    /// Whether `image` may be shown to `ctx` without asking the database.
    fn visible_without_members(ctx: &RequestContext, image: &Image) -> bool {
        ctx.is_admin
            || image.owner.is_none()
            || matches!(image.visibility, Visibility::Public | Visibility::Community)
            || ctx.owns(image.owner.as_deref())
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub async fn get(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        include_deleted: bool,
    ) -> RegistryResult<Image> {
        if let Some(image) = self.cache.as_ref().and_then(|c| c.get(&id)) {
            if Self::visible_without_members(ctx, &image) {
                return Ok(image);
            }
        }
        let read_at = self.cache.as_ref().map(|c| c.generation());
        let conn = self.db.read();
        let row = find_row(conn, &id.to_string(), include_deleted)
            .await?
            .ok_or_else(|| not_found(id))?;
        if !self.visible(conn, ctx, &row).await? {
            return Err(not_found(id));
        }
        let children = load_children(conn, std::slice::from_ref(&row.id)).await?;
        let image = to_domain_single(row, children)?;
        if let (Some(cache), Some(read_at), false) =
            (&self.cache, read_at, image.status.is_deleted())
        {
            cache.put(&image, read_at);
        }
        Ok(image)
    }

    /// Glance's `is_image_visible`.
    async fn visible(
        &self,
        conn: &DatabaseConnection,
        ctx: &RequestContext,
        row: &image::Model,
    ) -> RegistryResult<bool> {
        if ctx.is_admin
            || row.owner.is_none()
            || row.visibility == "public"
            || row.visibility == "community"
            || ctx.owns(row.owner.as_deref())
        {
            return Ok(true);
        }
        let Some(project) = ctx.project_id.as_deref() else {
            return Ok(false);
        };
        if row.visibility != "shared" {
            return Ok(false);
        }
        let member = image_member::Entity::find()
            .filter(image_member::Column::ImageId.eq(row.id.as_str()))
            .filter(image_member::Column::Member.eq(project))
            .filter(image_member::Column::Deleted.eq(false))
            .one(conn)
            .await
            .map_err(internal)?;
        Ok(member.is_some())
    }

    pub async fn create(&self, _ctx: &RequestContext, image: Image) -> RegistryResult<Image> {
        let id = image.id.to_string();
        let txn = self.db.write().begin().await.map_err(internal)?;
        // Ids of deleted images are never reused, as in Glance. The same create delivered
        // twice (a registry died after committing, before acking) finds its own row: the
        // same owner and creation time. That is success, not a duplicate.
        if let Some(existing) = image::Entity::find_by_id(id.as_str())
            .one(&txn)
            .await
            .map_err(internal)?
        {
            let redelivered = !existing.deleted
                && existing.owner == image.owner
                && existing.created_at.timestamp_micros() == image.created_at.timestamp_micros();
            if redelivered {
                drop(txn);
                return self
                    .get(&RequestContext::admin("redelivery"), image.id, false)
                    .await;
            }
            return Err(RegistryError::Duplicate(format!(
                "An image with identifier {id} already exists"
            )));
        }
        image::Entity::insert(active_model(&image))
            .exec_without_returning(&txn)
            .await
            .map_err(internal)?;
        insert_children(&txn, &image, image.created_at).await?;
        txn.commit().await.map_err(internal)?;
        if let Some(cache) = &self.cache {
            cache.written(&image.id);
        }
        Ok(image)
    }

    pub async fn save(
        &self,
        _ctx: &RequestContext,
        mut image: Image,
        from_state: Option<ImageStatus>,
    ) -> RegistryResult<Image> {
        let id = image.id.to_string();
        image.updated_at = Utc::now();
        let txn = self.db.write().begin().await.map_err(internal)?;
        let mut model = active_model(&image);
        model.created_at = sea_orm::ActiveValue::NotSet;
        model.id = sea_orm::ActiveValue::NotSet;
        let mut update = image::Entity::update_many()
            .set(model)
            .filter(image::Column::Id.eq(id.as_str()))
            .filter(image::Column::Deleted.eq(false));
        if let Some(from) = from_state {
            update = update.filter(image::Column::Status.eq(from.as_str()));
        }
        let result = update.exec(&txn).await.map_err(internal)?;
        if result.rows_affected == 0 {
            let exists = find_row(&txn, &id, false).await?;
            return Err(match (exists, from_state) {
                (Some(row), Some(from)) => {
                    RegistryError::Conflict(format!("Image {id} is {} now, not {from}", row.status))
                }
                _ => not_found(&id),
            });
        }
        // Children are few per image: replacing them wholesale inside the transaction is
        // simpler than diffing and just as atomic.
        image_property::Entity::delete_many()
            .filter(image_property::Column::ImageId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        image_tag::Entity::delete_many()
            .filter(image_tag::Column::ImageId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        image_location::Entity::delete_many()
            .filter(image_location::Column::ImageId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(internal)?;
        insert_children(&txn, &image, image.updated_at).await?;
        txn.commit().await.map_err(internal)?;
        if let Some(cache) = &self.cache {
            cache.written(&image.id);
        }
        let created_at = find_row(self.db.write(), &id, true)
            .await?
            .map(|r| r.created_at)
            .unwrap_or(image.created_at);
        image.created_at = created_at;
        Ok(image)
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        status: ImageStatus,
    ) -> RegistryResult<Image> {
        let sid = id.to_string();
        let mut image = {
            let conn = self.db.write();
            let row = find_row(conn, &sid, false)
                .await?
                .ok_or_else(|| not_found(id))?;
            let children = load_children(conn, std::slice::from_ref(&row.id)).await?;
            to_domain_single(row, children)?
        };
        let _ = ctx;
        let now = Utc::now();
        let txn = self.db.write().begin().await.map_err(internal)?;
        let result = image::Entity::update_many()
            .col_expr(image::Column::Deleted, Expr::value(true))
            .col_expr(image::Column::DeletedAt, Expr::value(now))
            .col_expr(image::Column::UpdatedAt, Expr::value(now))
            .col_expr(image::Column::Status, Expr::value(status.as_str()))
            .filter(image::Column::Id.eq(sid.as_str()))
            .filter(image::Column::Deleted.eq(false))
            .exec(&txn)
            .await
            .map_err(internal)?;
        if result.rows_affected == 0 {
            return Err(not_found(id));
        }
        if status == ImageStatus::Deleted {
            // A pending_delete image keeps its rows so the scrubber (or a restore) finds them.
            soft_delete_children(&txn, &sid, now).await?;
        }
        txn.commit().await.map_err(internal)?;
        if let Some(cache) = &self.cache {
            cache.written(&id);
        }
        image.status = status;
        image.deleted_at = Some(now);
        image.updated_at = now;
        Ok(image)
    }

    /// Adds a member row (the members API builds on this).
    pub async fn add_member(
        &self,
        image_id: ImageId,
        member: &str,
        status: MemberStatus,
    ) -> RegistryResult<()> {
        let now = Utc::now();
        image_member::Entity::insert(image_member::ActiveModel {
            image_id: Set(image_id.to_string()),
            member: Set(member.to_owned()),
            can_share: Set(false),
            status: Set(status.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            deleted: Set(false),
            ..Default::default()
        })
        .exec_without_returning(self.db.write())
        .await
        .map_err(internal)?;
        // Membership changes what callers may list and show.
        if let Some(cache) = &self.cache {
            cache.written(&image_id);
        }
        Ok(())
    }

    pub async fn list(&self, req: &ListImages) -> RegistryResult<Vec<Image>> {
        let Some(cache) = &self.cache else {
            return self.list_uncached(req).await;
        };
        // Everything that decides the page, but not the request id.
        let key = serde_json::to_string(&(
            &req.ctx.project_id,
            &req.ctx.roles,
            req.ctx.is_admin,
            &req.filters,
            &req.sort,
            req.limit,
            &req.marker,
        ))
        .expect("list keys serialize");
        if let Some(page) = cache.list(&key) {
            return Ok(page);
        }
        let read_at = cache.generation();
        let page = self.list_uncached(req).await?;
        cache.put_list(key, &page, read_at);
        Ok(page)
    }

    async fn list_uncached(&self, req: &ListImages) -> RegistryResult<Vec<Image>> {
        let conn = self.db.read();
        let keys = sort_keys(&req.sort);
        let mut query = image::Entity::find()
            .filter(image::Column::Deleted.eq(false))
            .filter(image::Column::Status.ne("killed"))
            .filter(filter_condition(req))
            .filter(visibility_condition(req));
        if let Some(marker) = req.marker {
            let row = find_row(conn, &marker.to_string(), false).await?;
            let row = match row {
                Some(row) if self.visible(conn, &req.ctx, &row).await? => row,
                _ => {
                    return Err(RegistryError::Invalid(format!(
                        "Invalid marker. Image {marker} could not be found."
                    )))
                }
            };
            query = query.filter(after_marker(&keys, &row));
        }
        for key in &keys {
            let order = match key.dir {
                SortDir::Asc => Order::Asc,
                SortDir::Desc => Order::Desc,
            };
            query = query.order_by(sort_expr(key.column), order);
        }
        let rows = query
            .limit(req.limit as u64)
            .all(conn)
            .await
            .map_err(internal)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut children = load_children(conn, &ids).await?;
        rows.into_iter()
            .map(|row| {
                let c = children.remove(&row.id).unwrap_or_default();
                to_domain(row, c)
            })
            .collect()
    }
}

async fn find_row<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    include_deleted: bool,
) -> RegistryResult<Option<image::Model>> {
    let mut q = image::Entity::find_by_id(id);
    if !include_deleted {
        q = q.filter(image::Column::Deleted.eq(false));
    }
    q.one(conn).await.map_err(internal)
}

/// Properties, tags and locations of `ids` in one round trip.
async fn load_children<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
) -> RegistryResult<HashMap<String, Children>> {
    let backend = conn.get_database_backend();
    let mut n = 0;
    let mut placeholders = || {
        let list: Vec<String> = ids
            .iter()
            .map(|_| {
                n += 1;
                match backend {
                    DbBackend::Postgres => format!("${n}"),
                    _ => "?".to_owned(),
                }
            })
            .collect();
        list.join(",")
    };
    let (p1, p2, p3) = (placeholders(), placeholders(), placeholders());
    let sql = format!(
        "SELECT 0 AS kind, id AS seq, image_id, name AS a, value AS b, '' AS c FROM image_properties \
           WHERE image_id IN ({p1}) AND deleted = false \
         UNION ALL SELECT 1, id, image_id, value, '', '' FROM image_tags \
           WHERE image_id IN ({p2}) AND deleted = false \
         UNION ALL SELECT 2, id, image_id, value, meta_data, status FROM image_locations \
           WHERE image_id IN ({p3}) AND deleted = false \
         ORDER BY kind, seq"
    );
    let values: Vec<Value> = ids
        .iter()
        .chain(ids)
        .chain(ids)
        .map(|id| Value::from(id.as_str()))
        .collect();
    let rows = conn
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(internal)?;
    let mut out: HashMap<String, Children> = HashMap::with_capacity(ids.len());
    for row in rows {
        let kind: i32 = row.try_get("", "kind").map_err(internal)?;
        let image_id: String = row.try_get("", "image_id").map_err(internal)?;
        let a: String = row.try_get("", "a").map_err(internal)?;
        let entry = out.entry(image_id).or_default();
        match kind {
            0 => {
                let b: String = row.try_get("", "b").map_err(internal)?;
                entry.properties.insert(a, b);
            }
            1 => entry.tags.push(a),
            _ => {
                let meta: String = row.try_get("", "b").map_err(internal)?;
                let status: String = row.try_get("", "c").map_err(internal)?;
                entry.locations.push(Location {
                    url: a,
                    metadata: serde_json::from_str(&meta).unwrap_or_default(),
                    status,
                });
            }
        }
    }
    Ok(out)
}

async fn insert_children<C: ConnectionTrait>(
    conn: &C,
    image: &Image,
    now: DateTime<Utc>,
) -> RegistryResult<()> {
    let id = image.id.to_string();
    if !image.properties.is_empty() {
        image_property::Entity::insert_many(image.properties.iter().map(|(k, v)| {
            image_property::ActiveModel {
                image_id: Set(id.clone()),
                name: Set(k.clone()),
                value: Set(v.clone()),
                created_at: Set(now),
                updated_at: Set(now),
                deleted_at: Set(None),
                deleted: Set(false),
                ..Default::default()
            }
        }))
        .exec_without_returning(conn)
        .await
        .map_err(internal)?;
    }
    if !image.tags.is_empty() {
        image_tag::Entity::insert_many(image.tags.iter().map(|t| image_tag::ActiveModel {
            image_id: Set(id.clone()),
            value: Set(t.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            deleted: Set(false),
            ..Default::default()
        }))
        .exec_without_returning(conn)
        .await
        .map_err(internal)?;
    }
    if !image.locations.is_empty() {
        image_location::Entity::insert_many(image.locations.iter().map(|l| {
            image_location::ActiveModel {
                image_id: Set(id.clone()),
                value: Set(l.url.clone()),
                meta_data: Set(serde_json::to_string(&l.metadata).expect("string map")),
                status: Set(l.status.clone()),
                created_at: Set(now),
                updated_at: Set(now),
                deleted_at: Set(None),
                deleted: Set(false),
                ..Default::default()
            }
        }))
        .exec_without_returning(conn)
        .await
        .map_err(internal)?;
    }
    Ok(())
}

async fn soft_delete_children<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    now: DateTime<Utc>,
) -> RegistryResult<()> {
    macro_rules! soft {
        ($entity:ident) => {
            $entity::Entity::update_many()
                .col_expr($entity::Column::Deleted, Expr::value(true))
                .col_expr($entity::Column::DeletedAt, Expr::value(now))
                .filter($entity::Column::ImageId.eq(id))
                .filter($entity::Column::Deleted.eq(false))
                .exec(conn)
                .await
                .map_err(internal)?;
        };
    }
    soft!(image_property);
    soft!(image_tag);
    soft!(image_location);
    soft!(image_member);
    Ok(())
}

fn active_model(img: &Image) -> image::ActiveModel {
    image::ActiveModel {
        id: Set(img.id.to_string()),
        name: Set(img.name.clone()),
        size: Set(img.size),
        virtual_size: Set(img.virtual_size),
        status: Set(img.status.as_str().to_owned()),
        disk_format: Set(img.disk_format.map(|f| f.as_str().to_owned())),
        container_format: Set(img.container_format.map(|f| f.as_str().to_owned())),
        checksum: Set(img.checksum.clone()),
        os_hash_algo: Set(img.os_hash_algo.clone()),
        os_hash_value: Set(img.os_hash_value.clone()),
        owner: Set(img.owner.clone()),
        min_disk: Set(img.min_disk),
        min_ram: Set(img.min_ram),
        protected: Set(img.protected),
        os_hidden: Set(img.os_hidden),
        visibility: Set(img.visibility.as_str().to_owned()),
        created_at: Set(img.created_at),
        updated_at: Set(img.updated_at),
        deleted_at: Set(img.deleted_at),
        deleted: Set(img.status.is_deleted()),
    }
}

fn corrupt(what: &str, value: &str) -> RegistryError {
    RegistryError::Internal(format!("corrupt {what} in database: {value:?}"))
}

fn to_domain_single(
    row: image::Model,
    mut children: HashMap<String, Children>,
) -> RegistryResult<Image> {
    let c = children.remove(&row.id).unwrap_or_default();
    to_domain(row, c)
}

fn to_domain(row: image::Model, c: Children) -> RegistryResult<Image> {
    Ok(Image {
        id: row.id.parse().map_err(|_| corrupt("image id", &row.id))?,
        name: row.name,
        status: row
            .status
            .parse()
            .map_err(|_| corrupt("status", &row.status))?,
        visibility: row
            .visibility
            .parse()
            .map_err(|_| corrupt("visibility", &row.visibility))?,
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
        disk_format: row
            .disk_format
            .map(|f| f.parse().map_err(|_| corrupt("disk_format", &f)))
            .transpose()?,
        container_format: row
            .container_format
            .map(|f| f.parse().map_err(|_| corrupt("container_format", &f)))
            .transpose()?,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted_at: row.deleted_at,
        tags: c.tags,
        properties: c.properties,
        locations: c.locations,
    })
}

fn any_of(col: image::Column, values: &[String]) -> Condition {
    Condition::all().add(col.is_in(values.iter().map(String::as_str)))
}

fn cmp(col: image::Column, op: CmpOp, when: DateTime<Utc>) -> SimpleExpr {
    match op {
        CmpOp::Eq => col.eq(when),
        CmpOp::Neq => col.ne(when),
        CmpOp::Gt => col.gt(when),
        CmpOp::Gte => col.gte(when),
        CmpOp::Lt => col.lt(when),
        CmpOp::Lte => col.lte(when),
    }
}

fn filter_condition(req: &ListImages) -> Condition {
    let f = &req.filters;
    let mut c = Condition::all();
    if let Some(ids) = &f.ids {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        c = c.add(any_of(image::Column::Id, &ids));
    }
    if let Some(names) = &f.names {
        c = c.add(any_of(image::Column::Name, names));
    }
    if let Some(statuses) = &f.statuses {
        let s: Vec<String> = statuses.iter().map(|s| s.as_str().to_owned()).collect();
        c = c.add(any_of(image::Column::Status, &s));
    }
    if let Some(owners) = &f.owners {
        c = c.add(any_of(image::Column::Owner, owners));
    }
    if let Some(v) = &f.container_formats {
        c = c.add(any_of(image::Column::ContainerFormat, v));
    }
    if let Some(v) = &f.disk_formats {
        c = c.add(any_of(image::Column::DiskFormat, v));
    }
    if let Some(min) = f.size_min {
        c = c.add(image::Column::Size.gte(min));
    }
    if let Some(max) = f.size_max {
        c = c.add(image::Column::Size.lte(max));
    }
    if let Some(p) = f.protected {
        c = c.add(image::Column::Protected.eq(p));
    }
    c = c.add(image::Column::OsHidden.eq(f.os_hidden.unwrap_or(false)));
    for (op, when) in &f.created_at {
        c = c.add(cmp(image::Column::CreatedAt, *op, *when));
    }
    for (op, when) in &f.updated_at {
        c = c.add(cmp(image::Column::UpdatedAt, *op, *when));
    }
    for tag in &f.tags {
        c = c.add(
            image::Column::Id.in_subquery(
                Query::select()
                    .column(image_tag::Column::ImageId)
                    .from(image_tag::Entity)
                    .and_where(image_tag::Column::Value.eq(tag.as_str()))
                    .and_where(image_tag::Column::Deleted.eq(false))
                    .to_owned(),
            ),
        );
    }
    for (name, value) in &f.properties {
        c = c.add(
            image::Column::Id.in_subquery(
                Query::select()
                    .column(image_property::Column::ImageId)
                    .from(image_property::Entity)
                    .and_where(image_property::Column::Name.eq(name.as_str()))
                    .and_where(image_property::Column::Value.eq(value.as_str()))
                    .and_where(image_property::Column::Deleted.eq(false))
                    .to_owned(),
            ),
        );
    }
    c
}

/// Shared images the caller is a member of, with a member status the filter accepts.
fn membership(project: &str, status: MemberStatusFilter) -> SimpleExpr {
    let mut sub = Query::select();
    sub.column(image_member::Column::ImageId)
        .from(image_member::Entity)
        .and_where(image_member::Column::Member.eq(project))
        .and_where(image_member::Column::Deleted.eq(false));
    let status = match status {
        MemberStatusFilter::All => None,
        MemberStatusFilter::Pending => Some("pending"),
        MemberStatusFilter::Accepted => Some("accepted"),
        MemberStatusFilter::Rejected => Some("rejected"),
    };
    if let Some(s) = status {
        sub.and_where(image_member::Column::Status.eq(s));
    }
    Condition::all()
        .add(image::Column::Visibility.eq(Visibility::Shared.as_str()))
        .add(image::Column::Id.in_subquery(sub.to_owned()))
        .into()
}

/// Glance's listing rules (`_select_images_query`): the union of public images, community
/// images when asked for, the caller's own, and shared images they are a member of.
fn visibility_condition(req: &ListImages) -> Condition {
    let ctx = &req.ctx;
    let member_status = req
        .filters
        .member_status
        .unwrap_or(MemberStatusFilter::Accepted);
    let vis = |v: Visibility| image::Column::Visibility.eq(v.as_str());
    let owned = |p: &str| image::Column::Owner.eq(p);
    let project = ctx.project_id.as_deref();

    match req.filters.visibility {
        Some(VisibilityFilter::Public) => Condition::all().add(vis(Visibility::Public)),
        Some(VisibilityFilter::Community) => Condition::all().add(vis(Visibility::Community)),
        Some(VisibilityFilter::Private) => {
            let mut c = Condition::all().add(vis(Visibility::Private));
            if !ctx.is_admin {
                c = c.add(match project {
                    Some(p) => owned(p),
                    None => Expr::value(false),
                });
            }
            c
        }
        Some(VisibilityFilter::Shared) => {
            let mut c = Condition::all().add(vis(Visibility::Shared));
            if !ctx.is_admin {
                c = c.add(match project {
                    Some(p) => Condition::any()
                        .add(owned(p))
                        .add(membership(p, member_status)),
                    None => Condition::all().add(Expr::value(false)),
                });
            }
            c
        }
        Some(VisibilityFilter::All) => {
            if ctx.is_admin {
                return Condition::all();
            }
            let mut c = Condition::any()
                .add(vis(Visibility::Public))
                .add(vis(Visibility::Community));
            if let Some(p) = project {
                c = c.add(owned(p)).add(membership(p, member_status));
            }
            c
        }
        None => {
            // Community images only appear when asked for, or to their owner.
            if ctx.is_admin {
                let mut c = Condition::any().add(image::Column::Visibility.ne("community"));
                if let Some(p) = project {
                    c = c.add(owned(p));
                }
                return c;
            }
            let mut c = Condition::any().add(vis(Visibility::Public));
            if let Some(p) = project {
                c = c.add(owned(p)).add(membership(p, member_status));
            }
            c
        }
    }
}

/// The caller's sort keys, then `created_at desc` and `id desc` unless already present, so
/// the order is total and a marker names one position.
fn sort_keys(requested: &[SortKey]) -> Vec<SortKey> {
    let mut keys: Vec<SortKey> = Vec::with_capacity(requested.len() + 2);
    for k in requested {
        if !keys.iter().any(|e| e.column == k.column) {
            keys.push(*k);
        }
    }
    for column in [SortColumn::CreatedAt, SortColumn::Id] {
        if !keys.iter().any(|k| k.column == column) {
            keys.push(SortKey {
                column,
                dir: SortDir::Desc,
            });
        }
    }
    keys
}

enum Nulls {
    NotNull,
    Text,
    Number,
}

fn column_of(col: SortColumn) -> (image::Column, Nulls) {
    use image::Column as C;
    match col {
        SortColumn::Name => (C::Name, Nulls::Text),
        SortColumn::Status => (C::Status, Nulls::NotNull),
        SortColumn::ContainerFormat => (C::ContainerFormat, Nulls::Text),
        SortColumn::DiskFormat => (C::DiskFormat, Nulls::Text),
        SortColumn::Size => (C::Size, Nulls::Number),
        SortColumn::VirtualSize => (C::VirtualSize, Nulls::Number),
        SortColumn::Id => (C::Id, Nulls::NotNull),
        SortColumn::CreatedAt => (C::CreatedAt, Nulls::NotNull),
        SortColumn::UpdatedAt => (C::UpdatedAt, Nulls::NotNull),
        SortColumn::MinDisk => (C::MinDisk, Nulls::NotNull),
        SortColumn::MinRam => (C::MinRam, Nulls::NotNull),
        SortColumn::Owner => (C::Owner, Nulls::Text),
        SortColumn::Visibility => (C::Visibility, Nulls::NotNull),
    }
}

/// The sort expression: nullable columns coalesced so NULLs sort (and compare) as the
/// smallest value on SQLite and PostgreSQL alike.
fn sort_expr(col: SortColumn) -> SimpleExpr {
    let (c, nulls) = column_of(col);
    match nulls {
        Nulls::NotNull => Expr::col(c).into(),
        Nulls::Text => Func::coalesce([Expr::col(c).into(), Expr::val("").into()]).into(),
        Nulls::Number => Func::coalesce([Expr::col(c).into(), Expr::val(-1i64).into()]).into(),
    }
}

/// The marker row's value of a sort key, coalesced like [`sort_expr`].
fn marker_value(col: SortColumn, row: &image::Model) -> Value {
    let text = |v: &Option<String>| Value::from(v.clone().unwrap_or_default());
    match col {
        SortColumn::Name => text(&row.name),
        SortColumn::Status => Value::from(row.status.clone()),
        SortColumn::ContainerFormat => text(&row.container_format),
        SortColumn::DiskFormat => text(&row.disk_format),
        SortColumn::Size => Value::from(row.size.unwrap_or(-1)),
        SortColumn::VirtualSize => Value::from(row.virtual_size.unwrap_or(-1)),
        SortColumn::Id => Value::from(row.id.clone()),
        SortColumn::CreatedAt => Value::from(row.created_at),
        SortColumn::UpdatedAt => Value::from(row.updated_at),
        SortColumn::MinDisk => Value::from(row.min_disk),
        SortColumn::MinRam => Value::from(row.min_ram),
        SortColumn::Owner => text(&row.owner),
        SortColumn::Visibility => Value::from(row.visibility.clone()),
    }
}

/// Rows strictly after the marker in the total order of `keys`:
/// `(k1 > m1) OR (k1 = m1 AND k2 > m2) OR ...` with `<` for descending keys.
fn after_marker(keys: &[SortKey], marker: &image::Model) -> Condition {
    let mut any = Condition::any();
    for (i, key) in keys.iter().enumerate() {
        let mut all = Condition::all();
        for prev in &keys[..i] {
            all = all.add(Expr::expr(sort_expr(prev.column)).eq(marker_value(prev.column, marker)));
        }
        let e = Expr::expr(sort_expr(key.column));
        let v = marker_value(key.column, marker);
        all = all.add(match key.dir {
            SortDir::Asc => e.gt(v),
            SortDir::Desc => e.lt(v),
        });
        any = any.add(all);
    }
    any
}
