//! Saving and deleting: compare-and-set on the image row, then the children brought in line.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use glance_domain::{Image, ImageId, ImageStatus, Location, RequestContext};
use glance_proto::leases::LeaseChange;
use glance_proto::registry::{RegistryError, RegistryResult};
use sea_orm::sea_query::{Alias, Condition, Expr, Func, Query, SimpleExpr, UpdateStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, Statement,
    Value,
};

use super::children::{Children, StoredChild, STORED_CHILDREN_SQL};
use super::convert::{
    self, image_from_row, metadata_to_json, micros, new_location, new_property, new_tag, now,
    unique_tags, DbContext,
};
use super::{attach, leases, ImageRepo};
use crate::entity::{image, image_location, image_property, image_tag};

type Col = image::Column;

impl ImageRepo {
    /// Replaces the stored record with `image`. With `from_state` the update only applies
    /// while the stored status still equals it (Glance's `image_update(from_state=...)`), so
    /// of two racing status changes exactly one wins and the other gets `Conflict`.
    ///
    /// Like Glance's `_check_mutate_authorization`, only an admin or the owner may save; to
    /// anyone else the image does not exist. `from_state = pending_delete` may target a
    /// deleted row, which is how the scrubber restores an image.
    pub async fn save(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: Option<ImageStatus>,
    ) -> RegistryResult<Image> {
        self.save_guarded(ctx, image, from_state, None, &LeaseChange::Keep)
            .await
    }

    /// [`ImageRepo::save`], and with `unmodified_since` only while the stored `updated_at`
    /// still equals it: nobody saved the image since the caller read it. Every save sets
    /// `updated_at`, and the row's own value is rechecked under its lock, so of two savers
    /// that read the same record exactly one wins. `lease` takes or releases the image's
    /// upload lease in the same statement (a release only while the caller holds it).
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image.id, request_id = %ctx.request_id))]
    pub async fn save_guarded(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: Option<ImageStatus>,
        unmodified_since: Option<DateTime<Utc>>,
        lease: &LeaseChange,
    ) -> RegistryResult<Image> {
        let now = now();
        let id = image.id.to_string();
        let deleted = image.status.is_deleted();
        let deleted_at = deleted.then(|| image.deleted_at.map_or(now, micros));

        let mut update = Query::update();
        update.table(image::Entity).values([
            (Col::Name, image.name.clone().into()),
            (Col::Size, image.size.into()),
            (Col::VirtualSize, image.virtual_size.into()),
            (Col::Status, image.status.as_str().into()),
            (
                Col::DiskFormat,
                image.disk_format.map(|f| f.as_str()).into(),
            ),
            (
                Col::ContainerFormat,
                image.container_format.map(|f| f.as_str()).into(),
            ),
            (Col::Checksum, image.checksum.clone().into()),
            (Col::OsHashAlgo, image.os_hash_algo.clone().into()),
            (Col::OsHashValue, image.os_hash_value.clone().into()),
            (Col::Owner, image.owner.clone().into()),
            (Col::MinDisk, image.min_disk.into()),
            (Col::MinRam, image.min_ram.into()),
            (Col::Protected, image.protected.into()),
            (Col::OsHidden, image.os_hidden.into()),
            (Col::Visibility, image.visibility.as_str().into()),
            (Col::UpdatedAt, now.into()),
            (Col::DeletedAt, deleted_at.into()),
            (Col::Deleted, deleted.into()),
        ]);
        let mut target = Condition::all().add(Col::Id.eq(id.as_str()));
        target = match from_state {
            Some(state) => target
                .add(Col::Status.eq(state.as_str()))
                .add(Col::Deleted.eq(state.is_deleted())),
            None => target.add(Col::Deleted.eq(false)),
        };
        if let Some(read_at) = unmodified_since {
            target = target.add(Col::UpdatedAt.eq(micros(read_at)));
        }
        match lease {
            LeaseChange::Keep => {}
            LeaseChange::Take { holder, seconds } => {
                update.values([
                    (leases::holder_col(), holder.clone().into()),
                    (leases::expires_col(), leases::expiry(now, *seconds).into()),
                ]);
            }
            LeaseChange::Release { holder } => {
                target = target.add(Expr::col(leases::holder_col()).eq(holder.as_str()));
                update.values([
                    (leases::holder_col(), Option::<String>::None.into()),
                    (leases::expires_col(), Option::<DateTime<Utc>>::None.into()),
                ]);
            }
        }
        if !ctx.is_admin {
            target = target.add(Col::Owner.eq(ctx.project_id.clone()));
        }
        update.cond_where(target).returning_all();

        let txn = self.begin().await?;
        // The UPDATE is the transaction's first statement; see `create` for why.
        let Some(stored) = update_returning(&txn, &update).await? else {
            let err =
                explain_missed_save(&txn, ctx, &id, from_state, unmodified_since, image.status)
                    .await;
            return Err(err);
        };
        let children = replace_children(&txn, &id, &image, now).await?;
        txn.commit().await.context("committing an image")?;
        self.written(&image.id);

        let mut saved = image_from_row(stored)?;
        attach(&mut saved, children);
        Ok(saved)
    }

    /// Marks an image deleted (`deleted`, or `pending_delete` under delayed delete) and
    /// returns it as it was, locations included, so the caller can remove its data.
    ///
    /// A `pending_delete` image keeps its children (its locations marked `pending_delete`),
    /// so the scrubber can find the data and `--restore` loses nothing; the scrubber's later
    /// delete to `deleted` is accepted on the already deleted row and removes them.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %id, request_id = %ctx.request_id))]
    pub async fn delete(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        status: ImageStatus,
    ) -> RegistryResult<Image> {
        if !status.is_deleted() {
            return Err(RegistryError::Invalid(format!(
                "an image cannot be deleted to status '{status}'"
            )));
        }
        let now = now();
        let id_text = id.to_string();

        let live = Col::Deleted.eq(false);
        let mut target = Condition::all().add(Col::Id.eq(id_text.as_str()));
        target = if status == ImageStatus::Deleted {
            target.add(
                Condition::any()
                    .add(live)
                    .add(Col::Status.eq(ImageStatus::PendingDelete.as_str())),
            )
        } else {
            target.add(live)
        };
        if !ctx.is_admin {
            target = target.add(Col::Owner.eq(ctx.project_id.clone()));
        }
        let mut update = Query::update();
        update
            .table(image::Entity)
            .value(Col::Status, status.as_str())
            .value(Col::Deleted, true)
            .value(Col::UpdatedAt, now)
            // A scrubbed image keeps the time it was first deleted.
            .value(
                Col::DeletedAt,
                SimpleExpr::from(Func::coalesce([
                    Expr::col(Col::DeletedAt).into(),
                    Expr::val(now).into(),
                ])),
            )
            .cond_where(target)
            .returning_all();

        let txn = self.begin().await?;
        let Some(stored) = update_returning(&txn, &update).await? else {
            return Err(RegistryError::image_not_found(id_text));
        };
        let mut deleted = image_from_row(stored)?;
        let mut children = live_children(load_children(&txn, &id_text).await?);

        let of_image = || Expr::col(Alias::new("image_id")).eq(id_text.as_str());
        if status == ImageStatus::Deleted {
            for table in ["image_properties", "image_tags", "image_members"] {
                soft_delete(&txn, table, of_image(), now, None).await?;
            }
            soft_delete(&txn, "image_locations", of_image(), now, Some("deleted")).await?;
        } else {
            let mut mark = Query::update();
            mark.table(image_location::Entity)
                .value(image_location::Column::Status, "pending_delete")
                .value(image_location::Column::UpdatedAt, now)
                .and_where(image_location::Column::ImageId.eq(id_text.as_str()))
                .and_where(image_location::Column::Deleted.eq(false));
            execute(&txn, &mark)
                .await
                .context("marking locations pending_delete")?;
            for location in &mut children.locations {
                location.status = "pending_delete".to_owned();
            }
        }
        txn.commit().await.context("committing a delete")?;
        self.written(&id);
        attach(&mut deleted, children);
        Ok(deleted)
    }
}

async fn update_returning(
    txn: &DatabaseTransaction,
    update: &UpdateStatement,
) -> RegistryResult<Option<image::Model>> {
    let statement = txn.get_database_backend().build(update);
    let Some(row) = txn
        .query_one(statement)
        .await
        .context("updating an image")?
    else {
        return Ok(None);
    };
    image::Model::from_query_result(&row, "")
        .map(Some)
        .context("decoding an image")
}

async fn execute(
    txn: &DatabaseTransaction,
    update: &UpdateStatement,
) -> Result<(), sea_orm::DbErr> {
    txn.execute(txn.get_database_backend().build(update))
        .await
        .map(|_| ())
}

/// Why a save's compare-and-set matched no row: the image is gone (or never was, or is not
/// the caller's to change), or someone else changed its status first.
async fn explain_missed_save(
    txn: &DatabaseTransaction,
    ctx: &RequestContext,
    id: &str,
    from_state: Option<ImageStatus>,
    unmodified_since: Option<DateTime<Utc>>,
    to: ImageStatus,
) -> RegistryError {
    let current = match image::Entity::find_by_id(id).one(txn).await {
        Ok(current) => current,
        Err(err) => return convert::internal("reading an image", err),
    };
    let Some(current) = current else {
        return RegistryError::image_not_found(id);
    };
    let mutable = ctx.is_admin || ctx.owns(current.owner.as_deref());
    let gone = current.deleted && !from_state.is_some_and(ImageStatus::is_deleted);
    if !mutable || gone {
        return RegistryError::image_not_found(id);
    }
    let status_held = from_state.is_none_or(|s| s.as_str() == current.status);
    if status_held && unmodified_since.is_some_and(|t| micros(t) != current.updated_at) {
        return RegistryError::Conflict(format!(
            "image {id} was saved by another request since it was read"
        ));
    }
    RegistryError::Conflict(format!(
        "cannot transition from {} to {to} in update (wanted from_state={})",
        current.status,
        from_state.map_or("None", ImageStatus::as_str),
    ))
}

/// The stored child rows of one image, deleted property rows included.
async fn load_children(txn: &DatabaseTransaction, id: &str) -> RegistryResult<Vec<StoredChild>> {
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        STORED_CHILDREN_SQL,
        [Value::from(id)],
    );
    let rows = txn
        .query_all(statement)
        .await
        .context("reading an image's children")?;
    rows.iter()
        .map(StoredChild::decode)
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| convert::internal("decoding an image's children", e))
}

/// The live children among `stored`, as the domain shows them.
fn live_children(stored: Vec<StoredChild>) -> Children {
    let mut children = Children::default();
    for child in stored {
        match child {
            StoredChild::Property {
                name,
                value,
                deleted: false,
                ..
            } => {
                children.properties.insert(name, value);
            }
            StoredChild::Property { .. } => {}
            StoredChild::Tag { value, .. } => children.tags.push(value),
            StoredChild::Location { location, .. } => children.locations.push(location),
        }
    }
    children
}

/// Brings the stored properties, tags and locations in line with `image`, touching only the
/// rows that differ, and returns the children as now stored.
async fn replace_children(
    txn: &DatabaseTransaction,
    id: &str,
    image: &Image,
    now: DateTime<Utc>,
) -> RegistryResult<Children> {
    let mut properties: HashMap<String, (i64, String, bool)> = HashMap::new();
    let mut tags: Vec<(i64, String)> = Vec::new();
    let mut locations: Vec<(i64, Location)> = Vec::new();
    for child in load_children(txn, id).await? {
        match child {
            StoredChild::Property {
                row_id,
                name,
                value,
                deleted,
            } => {
                properties.insert(name, (row_id, value, deleted));
            }
            StoredChild::Tag { row_id, value } => tags.push((row_id, value)),
            StoredChild::Location { row_id, location } => locations.push((row_id, location)),
        }
    }

    // Properties: revive or update in place (the (image_id, name) key is unique), insert
    // the new ones, soft-delete the dropped ones.
    let mut inserts = Vec::new();
    for (name, value) in &image.properties {
        match properties.remove(name) {
            Some((_, stored, false)) if stored == *value => {}
            Some((row_id, _, _)) => {
                let mut update = Query::update();
                update
                    .table(image_property::Entity)
                    .value(image_property::Column::Value, value.as_str())
                    .value(image_property::Column::Deleted, false)
                    .value(
                        image_property::Column::DeletedAt,
                        Option::<DateTime<Utc>>::None,
                    )
                    .value(image_property::Column::UpdatedAt, now)
                    .and_where(image_property::Column::Id.eq(row_id));
                execute(txn, &update).await.context("updating a property")?;
            }
            None => inserts.push(new_property(id, name, value, now)),
        }
    }
    let dropped: Vec<i64> = properties
        .into_values()
        .filter(|(_, _, deleted)| !deleted)
        .map(|(row_id, _, _)| row_id)
        .collect();
    soft_delete_ids(txn, "image_properties", dropped, now, None).await?;
    if !inserts.is_empty() {
        image_property::Entity::insert_many(inserts)
            .exec_without_returning(txn)
            .await
            .context("inserting properties")?;
    }

    // Tags: a set; keep one live row per wanted value.
    let wanted = unique_tags(&image.tags);
    let mut kept: HashSet<&str> = HashSet::new();
    let mut dropped = Vec::new();
    for (row_id, value) in &tags {
        match wanted.iter().find(|w| *w == value) {
            Some(w) if kept.insert(w.as_str()) => {}
            _ => dropped.push(*row_id),
        }
    }
    soft_delete_ids(txn, "image_tags", dropped, now, None).await?;
    let new_tags: Vec<_> = wanted
        .iter()
        .filter(|w| !kept.contains(w.as_str()))
        .map(|w| new_tag(id, w, now))
        .collect();
    if !new_tags.is_empty() {
        image_tag::Entity::insert_many(new_tags)
            .exec_without_returning(txn)
            .await
            .context("inserting tags")?;
    }

    // Locations: ordered by row id. Keep the common prefix of URLs (updating metadata or
    // status in place), replace the rest; appending or changing a status touches one row.
    let prefix = locations
        .iter()
        .zip(&image.locations)
        .take_while(|((_, stored), wanted)| stored.url == wanted.url)
        .count();
    for ((row_id, stored), wanted) in locations.iter().zip(&image.locations).take(prefix) {
        if stored != wanted {
            let mut update = Query::update();
            update
                .table(image_location::Entity)
                .value(
                    image_location::Column::MetaData,
                    metadata_to_json(&wanted.metadata),
                )
                .value(image_location::Column::Status, wanted.status.as_str())
                .value(image_location::Column::UpdatedAt, now)
                .and_where(image_location::Column::Id.eq(*row_id));
            execute(txn, &update).await.context("updating a location")?;
        }
    }
    let dropped: Vec<i64> = locations[prefix..]
        .iter()
        .map(|(row_id, _)| *row_id)
        .collect();
    soft_delete_ids(txn, "image_locations", dropped, now, Some("deleted")).await?;
    if image.locations.len() > prefix {
        image_location::Entity::insert_many(
            image.locations[prefix..]
                .iter()
                .map(|loc| new_location(id, loc, now)),
        )
        .exec_without_returning(txn)
        .await
        .context("inserting locations")?;
    }

    Ok(Children {
        properties: image.properties.clone(),
        tags: wanted,
        locations: image.locations.clone(),
    })
}

async fn soft_delete_ids(
    txn: &DatabaseTransaction,
    table: &'static str,
    ids: Vec<i64>,
    now: DateTime<Utc>,
    status: Option<&str>,
) -> RegistryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    soft_delete(
        txn,
        table,
        Expr::col(Alias::new("id")).is_in(ids),
        now,
        status,
    )
    .await
}

/// Soft-deletes the live rows of a child table matching `filter` (and sets their status,
/// for tables that have one).
async fn soft_delete(
    txn: &DatabaseTransaction,
    table: &'static str,
    filter: SimpleExpr,
    now: DateTime<Utc>,
    status: Option<&str>,
) -> RegistryResult<()> {
    let mut update = Query::update();
    update
        .table(Alias::new(table))
        .value(Alias::new("deleted"), true)
        .value(Alias::new("deleted_at"), now)
        .value(Alias::new("updated_at"), now)
        .and_where(filter)
        .and_where(Expr::col(Alias::new("deleted")).eq(false));
    if let Some(status) = status {
        update.value(Alias::new("status"), status);
    }
    execute(txn, &update)
        .await
        .context("soft-deleting an image's children")
}
