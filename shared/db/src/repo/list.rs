//! Listing: Glance's `_image_get_all` filters and visibility, keyset pagination by marker.

use chrono::{DateTime, Utc};
use glance_domain::{Image, ImageId, RequestContext};
use glance_proto::registry::{
    CmpOp, ImageFilters, ListImages, MemberStatusFilter, RegistryError, RegistryResult, SortColumn,
    SortDir, SortKey, VisibilityFilter,
};
use sea_orm::sea_query::{Expr, NullOrdering, Query, SelectStatement, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, FromQueryResult, Order, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, Value,
};

use super::cache::RecordCache;
use super::children::{child_columns, Children};
use super::convert::{self, image_from_row, micros, DbContext};
use super::{attach, is_visible, ImageRepo};
use crate::entity::{image, image_member, image_property, image_tag};

type Col = image::Column;

impl ImageRepo {
    /// A page of the images `req.ctx` may list, in `req.sort` order, after `req.marker`.
    ///
    /// One statement whatever the page size (two with a marker): each image row comes with
    /// its children aggregated beside it.
    #[tracing::instrument(level = "debug", skip_all, fields(request_id = %req.ctx.request_id))]
    pub async fn list(&self, req: &ListImages) -> RegistryResult<Vec<Image>> {
        let Some(cache) = &self.cache else {
            return self.list_uncached(req).await;
        };
        let key = RecordCache::page_key(req);
        if let Some(page) = cache.page(&key) {
            return Ok(page);
        }
        let read_at = cache.generation();
        let page = self.list_uncached(req).await?;
        cache.keep_page(key, &page, read_at);
        Ok(page)
    }

    async fn list_uncached(&self, req: &ListImages) -> RegistryResult<Vec<Image>> {
        let keys = total_order(&req.sort);
        let mut condition = filter_condition(&req.ctx, &req.filters)?;
        if let Some(marker) = req.marker {
            let marker = self.marker_row(&req.ctx, marker).await?;
            match after(&keys, &marker) {
                Some(after) => condition = condition.add(after),
                // Nothing can sort after the marker.
                None => return Ok(Vec::new()),
            }
        }
        let backend = self.db.backend();
        let mut query = image::Entity::find().filter(condition);
        for (alias, subquery) in child_columns(backend) {
            query = query.expr_as(Expr::cust(*subquery), *alias);
        }
        for key in &keys {
            query = order_by(query, *key);
        }
        let statement = query.limit(u64::from(req.limit)).build(backend);
        let rows = self
            .db
            .read_all(statement)
            .await
            .context("listing images")?;

        let mut images = Vec::with_capacity(rows.len());
        for row in &rows {
            let model = image::Model::from_query_result(row, "").context("decoding an image")?;
            let mut image = image_from_row(model)?;
            let children = Children::decode(row)
                .map_err(|e| convert::internal("decoding an image's children", e))?;
            attach(&mut image, children);
            images.push(image);
        }
        Ok(images)
    }

    /// The marker must be an image the caller can see; Glance answers 400 otherwise.
    async fn marker_row(
        &self,
        ctx: &RequestContext,
        marker: ImageId,
    ) -> RegistryResult<image::Model> {
        let invalid = || {
            RegistryError::Invalid(format!(
                "Invalid marker. Image {marker} could not be found."
            ))
        };
        let backend = self.db.backend();
        let found = image::Entity::find_by_id(marker.to_string())
            .filter(Col::Deleted.eq(false))
            .build(backend);
        let rows = self
            .db
            .read_all(found)
            .await
            .context("reading the marker image")?;
        let row = rows.first().ok_or_else(invalid)?;
        let row = image::Model::from_query_result(row, "").context("decoding the marker image")?;
        let is_member = match (&ctx.project_id, row.visibility.as_str()) {
            (Some(project), "shared") if !ctx.is_admin && !ctx.owns(row.owner.as_deref()) => {
                let membership = image_member::Entity::find()
                    .filter(image_member::Column::ImageId.eq(row.id.as_str()))
                    .filter(image_member::Column::Member.eq(project.as_str()))
                    .filter(image_member::Column::Deleted.eq(false))
                    .limit(1)
                    .build(backend);
                let rows = self
                    .db
                    .read_all(membership)
                    .await
                    .context("reading the marker's members")?;
                !rows.is_empty()
            }
            _ => false,
        };
        if !is_visible(ctx, row.owner.as_deref(), &row.visibility, is_member) {
            return Err(invalid());
        }
        Ok(row)
    }
}

/// The requested sort keys, then `created_at desc, id desc` where missing: `id` is unique,
/// so the order is total and a marker names one position in it.
fn total_order(requested: &[SortKey]) -> Vec<SortKey> {
    let mut keys: Vec<SortKey> = Vec::with_capacity(requested.len() + 2);
    for key in requested {
        if !keys.iter().any(|k| k.column == key.column) {
            keys.push(*key);
        }
    }
    for column in [SortColumn::CreatedAt, SortColumn::Id] {
        if !keys
            .iter()
            .any(|k| k.column == SortColumn::Id || k.column == column)
        {
            keys.push(SortKey {
                column,
                dir: SortDir::Desc,
            });
        }
    }
    keys
}

/// The column behind a sort key, and whether it can be NULL.
fn sort_column(column: SortColumn) -> (Col, bool) {
    match column {
        SortColumn::Name => (Col::Name, true),
        SortColumn::Status => (Col::Status, false),
        SortColumn::ContainerFormat => (Col::ContainerFormat, true),
        SortColumn::DiskFormat => (Col::DiskFormat, true),
        SortColumn::Size => (Col::Size, true),
        SortColumn::VirtualSize => (Col::VirtualSize, true),
        SortColumn::Id => (Col::Id, false),
        SortColumn::CreatedAt => (Col::CreatedAt, false),
        SortColumn::UpdatedAt => (Col::UpdatedAt, false),
        SortColumn::MinDisk => (Col::MinDisk, false),
        SortColumn::MinRam => (Col::MinRam, false),
        SortColumn::Owner => (Col::Owner, true),
        SortColumn::Visibility => (Col::Visibility, false),
    }
}

/// NULL sorts as the smallest value on both databases (SQLite's and MySQL's habit; PostgreSQL
/// has to be told). Only nullable columns get the clause, so PostgreSQL can still walk an
/// index backwards for `created_at desc`.
fn order_by(query: Select<image::Entity>, key: SortKey) -> Select<image::Entity> {
    let (column, nullable) = sort_column(key.column);
    let (order, nulls) = match key.dir {
        SortDir::Asc => (Order::Asc, NullOrdering::First),
        SortDir::Desc => (Order::Desc, NullOrdering::Last),
    };
    if nullable {
        query.order_by_with_nulls(column, order, nulls)
    } else {
        query.order_by(column, order)
    }
}

/// The marker's value for a sort key; `None` is NULL.
fn sort_value(m: &image::Model, column: SortColumn) -> Option<Value> {
    fn text(v: &Option<String>) -> Option<Value> {
        v.as_deref().map(Value::from)
    }
    match column {
        SortColumn::Name => text(&m.name),
        SortColumn::Status => Some(m.status.as_str().into()),
        SortColumn::ContainerFormat => text(&m.container_format),
        SortColumn::DiskFormat => text(&m.disk_format),
        SortColumn::Size => m.size.map(Value::from),
        SortColumn::VirtualSize => m.virtual_size.map(Value::from),
        SortColumn::Id => Some(m.id.as_str().into()),
        SortColumn::CreatedAt => Some(m.created_at.into()),
        SortColumn::UpdatedAt => Some(m.updated_at.into()),
        SortColumn::MinDisk => Some(m.min_disk.into()),
        SortColumn::MinRam => Some(m.min_ram.into()),
        SortColumn::Owner => text(&m.owner),
        SortColumn::Visibility => Some(m.visibility.as_str().into()),
    }
}

/// Rows strictly after the marker in the order `keys`: the lexicographic
/// `(k1 > m1) OR (k1 = m1 AND k2 > m2) OR ...`, spelled out per key so mixed directions
/// and NULLs (smallest, as in [`order_by`]) work the same on both databases. `None` when
/// no row can follow.
fn after(keys: &[SortKey], marker: &image::Model) -> Option<Condition> {
    let mut any = Condition::any();
    let mut terms = 0;
    let mut equal_so_far: Vec<SimpleExpr> = Vec::new();
    for key in keys {
        let (column, nullable) = sort_column(key.column);
        let value = sort_value(marker, key.column);
        let beyond = match (key.dir, &value) {
            (SortDir::Asc, None) => Some(column.is_not_null()),
            (SortDir::Asc, Some(v)) => Some(column.gt(v.clone())),
            (SortDir::Desc, None) => None,
            (SortDir::Desc, Some(v)) if nullable => Some(column.lt(v.clone()).or(column.is_null())),
            (SortDir::Desc, Some(v)) => Some(column.lt(v.clone())),
        };
        if let Some(beyond) = beyond {
            let term = equal_so_far
                .iter()
                .cloned()
                .fold(Condition::all(), Condition::add)
                .add(beyond);
            any = any.add(term);
            terms += 1;
        }
        equal_so_far.push(match value {
            Some(v) => column.eq(v),
            None => column.is_null(),
        });
    }
    (terms > 0).then_some(any)
}

fn visibility_text(v: VisibilityFilter) -> Option<&'static str> {
    match v {
        VisibilityFilter::Public => Some("public"),
        VisibilityFilter::Private => Some("private"),
        VisibilityFilter::Shared => Some("shared"),
        VisibilityFilter::Community => Some("community"),
        VisibilityFilter::All => None,
    }
}

fn compare(column: Col, op: CmpOp, at: DateTime<Utc>) -> SimpleExpr {
    let at = micros(at);
    match op {
        CmpOp::Eq => column.eq(at),
        CmpOp::Neq => column.ne(at),
        CmpOp::Gt => column.gt(at),
        CmpOp::Gte => column.gte(at),
        CmpOp::Lt => column.lt(at),
        CmpOp::Lte => column.lte(at),
    }
}

/// `EXISTS (SELECT 1 FROM <child> WHERE image_id = images.id AND deleted = false AND ...)`.
fn child_exists(
    table: impl sea_orm::sea_query::IntoTableRef,
    image_id: impl sea_orm::sea_query::IntoColumnRef,
    deleted: impl ColumnTrait,
    conditions: impl IntoIterator<Item = SimpleExpr>,
) -> SimpleExpr {
    let mut select: SelectStatement = Query::select();
    select
        .expr(Expr::val(1))
        .from(table)
        .and_where(Expr::col(image_id).equals((image::Entity, Col::Id)))
        .and_where(deleted.eq(false));
    for condition in conditions {
        select.and_where(condition);
    }
    Expr::exists(select)
}

/// Glance's `_make_conditions_from_filters` plus `_select_images_query`'s visibility union,
/// as one WHERE clause.
fn filter_condition(ctx: &RequestContext, f: &ImageFilters) -> RegistryResult<Condition> {
    // Deleted rows are never listed; `killed` is what `deleted=False` also hides in Glance.
    let mut c = Condition::all()
        .add(Col::Deleted.eq(false))
        .add(Col::Status.ne("killed"))
        .add(Col::OsHidden.eq(f.os_hidden.unwrap_or(false)));

    if let Some(ids) = &f.ids {
        c = c.add(Col::Id.is_in(ids.iter().map(ImageId::to_string)));
    }
    if let Some(names) = &f.names {
        c = c.add(Col::Name.is_in(names.iter().map(String::as_str)));
    }
    if let Some(statuses) = &f.statuses {
        c = c.add(Col::Status.is_in(statuses.iter().map(|s| s.as_str())));
    }
    if let Some(owners) = &f.owners {
        c = c.add(Col::Owner.is_in(owners.iter().map(String::as_str)));
    }
    if let Some(formats) = &f.container_formats {
        c = c.add(Col::ContainerFormat.is_in(formats.iter().map(String::as_str)));
    }
    if let Some(formats) = &f.disk_formats {
        c = c.add(Col::DiskFormat.is_in(formats.iter().map(String::as_str)));
    }
    if let Some(min) = f.size_min {
        c = c.add(Col::Size.gte(min));
    }
    if let Some(max) = f.size_max {
        c = c.add(Col::Size.lte(max));
    }
    if let Some(protected) = f.protected {
        c = c.add(Col::Protected.eq(protected));
    }
    for (op, at) in &f.created_at {
        c = c.add(compare(Col::CreatedAt, *op, *at));
    }
    for (op, at) in &f.updated_at {
        c = c.add(compare(Col::UpdatedAt, *op, *at));
    }
    // Every tag must be present.
    for tag in &f.tags {
        c = c.add(child_exists(
            image_tag::Entity,
            (image_tag::Entity, image_tag::Column::ImageId),
            image_tag::Column::Deleted,
            [image_tag::Column::Value.eq(tag.as_str())],
        ));
    }
    for (name, value) in &f.properties {
        c = c.add(property_condition(name, value)?);
    }

    // Which visibilities may appear at all.
    let project = ctx.project_id.as_deref();
    match f.visibility {
        Some(VisibilityFilter::All) => {}
        Some(v) => c = c.add(Col::Visibility.eq(visibility_text(v))),
        // Community images only when asked for, or when they are the caller's own.
        None => {
            let not_community = Col::Visibility.ne("community");
            c = c.add(match project {
                Some(p) => Condition::any().add(Col::Owner.eq(p)).add(not_community),
                None => Condition::all().add(not_community),
            });
        }
    }

    // Which images the caller may list: everything for admins; otherwise public and
    // community, their own, and shared images they are a member of with the requested
    // member status (default accepted).
    if !ctx.is_admin {
        let mut visible = Condition::any().add(Col::Visibility.is_in(["public", "community"]));
        if let Some(project) = project {
            let mut membership = vec![image_member::Column::Member.eq(project)];
            match f.member_status.unwrap_or(MemberStatusFilter::Accepted) {
                MemberStatusFilter::All => {}
                MemberStatusFilter::Pending => {
                    membership.push(image_member::Column::Status.eq("pending"))
                }
                MemberStatusFilter::Accepted => {
                    membership.push(image_member::Column::Status.eq("accepted"))
                }
                MemberStatusFilter::Rejected => {
                    membership.push(image_member::Column::Status.eq("rejected"))
                }
            }
            visible = visible.add(Col::Owner.eq(project)).add(
                Condition::all()
                    .add(Col::Visibility.eq("shared"))
                    .add(child_exists(
                        image_member::Entity,
                        (image_member::Entity, image_member::Column::ImageId),
                        image_member::Column::Deleted,
                        membership,
                    )),
            );
        }
        c = c.add(visible);
    }
    Ok(c)
}

/// A `?key=value` filter. As in Glance, a key naming an image column filters on that column
/// (`?checksum=...`, `?min_ram=512`); any other key is an extra property.
fn property_condition(name: &str, value: &str) -> RegistryResult<SimpleExpr> {
    // Glance compares the column with the text as given: a value that is not a number
    // matches no image (it is not an error).
    let integer = |column: Col| -> RegistryResult<SimpleExpr> {
        Ok(match value.trim().parse::<i64>() {
            Ok(parsed) => column.eq(parsed),
            Err(_) => Expr::cust("1 = 0"),
        })
    };
    match name {
        "checksum" => Ok(Col::Checksum.eq(value)),
        "os_hash_algo" => Ok(Col::OsHashAlgo.eq(value)),
        "os_hash_value" => Ok(Col::OsHashValue.eq(value)),
        "min_disk" => integer(Col::MinDisk),
        "min_ram" => integer(Col::MinRam),
        "virtual_size" => integer(Col::VirtualSize),
        _ => Ok(child_exists(
            image_property::Entity,
            (image_property::Entity, image_property::Column::ImageId),
            image_property::Column::Deleted,
            [
                image_property::Column::Name.eq(name),
                image_property::Column::Value.eq(value),
            ],
        )),
    }
}
