//! What the scrubber asks of the database: the `pending_delete` images that are due, the
//! backlog, finishing a scrub and restoring an image.
//!
//! A `pending_delete` image keeps its children live (see `ImageRepo::delete`), its locations
//! marked `pending_delete`, so a restore gets everything back and a scrub knows what to
//! remove.

use chrono::{DateTime, Utc};
use glance_domain::{Image, ImageId, ImageStatus, RequestContext};
use glance_proto::registry::{RegistryError, RegistryResult};
use glance_proto::scrub::Backlog;
use sea_orm::sea_query::{Alias, Expr, Func, Query, UpdateStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::convert::{micros, now, DbContext};
use super::ImageRepo;
use crate::entity::{image, image_location};

type Col = image::Column;

const PENDING: &str = "pending_delete";
/// Location status while a scrubber removes the data.
const SCRUBBING: &str = "scrubbing";

impl ImageRepo {
    /// Up to `limit` `pending_delete` images deleted at or before `deleted_before`, oldest
    /// first (ties by id), after `marker`; each with its locations.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn pending_delete(
        &self,
        ctx: &RequestContext,
        deleted_before: DateTime<Utc>,
        limit: u32,
        marker: Option<ImageId>,
    ) -> RegistryResult<Vec<Image>> {
        admin_only(ctx)?;
        let mut select = image::Entity::find()
            .select_only()
            .column(Col::Id)
            .filter(Col::Status.eq(PENDING))
            .filter(Col::DeletedAt.lte(micros(deleted_before)));
        if let Some(marker) = marker {
            let after = image::Entity::find_by_id(marker.to_string())
                .one(self.db.writer())
                .await
                .context("reading the marker image")?
                .and_then(|m| m.deleted_at);
            if let Some(at) = after {
                select = select.filter(
                    Col::DeletedAt
                        .gt(at)
                        .or(Col::DeletedAt.eq(at).and(Col::Id.gt(marker.to_string()))),
                );
            }
        }
        let ids: Vec<String> = select
            .order_by_asc(Col::DeletedAt)
            .order_by_asc(Col::Id)
            .limit(u64::from(limit.max(1)))
            .into_tuple()
            .all(self.db.writer())
            .await
            .context("listing pending_delete images")?;
        let mut images = Vec::with_capacity(ids.len());
        for id in ids {
            let id: ImageId = id
                .parse()
                .map_err(|e| RegistryError::Internal(format!("stored image id: {e}")))?;
            match self.get(ctx, id, true).await {
                Ok(image) if image.status == ImageStatus::PendingDelete => images.push(image),
                // Scrubbed or restored since the first read.
                Ok(_) | Err(RegistryError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(images)
    }

    /// Images in `pending_delete` and the bytes they hold.
    pub async fn scrub_backlog(&self, ctx: &RequestContext) -> RegistryResult<Backlog> {
        admin_only(ctx)?;
        let row: Option<(i64, i64)> = image::Entity::find()
            .select_only()
            .expr(Expr::col(Col::Id).count())
            .expr(Expr::cust("CAST(COALESCE(SUM(size), 0) AS BIGINT)"))
            .filter(Col::Status.eq(PENDING))
            .into_tuple()
            .one(self.db.writer())
            .await
            .context("measuring the scrub backlog")?;
        let (images, bytes) = row.unwrap_or_default();
        Ok(Backlog {
            images: images.max(0) as u64,
            bytes: bytes.max(0) as u64,
        })
    }

    /// A scrubber starts on `id`: its live locations become `scrubbing`, which a restore
    /// respects. `Ok(false)` if the image is not (or no longer) `pending_delete`.
    ///
    /// Both this and [`ImageRepo::restore`] begin by writing the image row, so they take its
    /// lock first and run one after the other; the second sees what the first committed.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %id))]
    pub async fn claim_scrub(&self, ctx: &RequestContext, id: ImageId) -> RegistryResult<bool> {
        admin_only(ctx)?;
        let now = now();
        let id_text = id.to_string();
        let txn = self.begin().await?;
        if lock_pending(&txn, &id_text, now).await? == 0 {
            return Ok(false);
        }
        let mut locations = Query::update();
        locations
            .table(Alias::new("image_locations"))
            .value(Alias::new("status"), SCRUBBING)
            .value(Alias::new("updated_at"), now)
            .and_where(Expr::col(Alias::new("image_id")).eq(id_text.as_str()))
            .and_where(Expr::col(Alias::new("deleted")).eq(false));
        execute(&txn, &locations)
            .await
            .context("claiming an image for scrubbing")?;
        txn.commit().await.context("committing a scrub claim")?;
        self.written(&id);
        Ok(true)
    }

    /// The data of `id` is gone: `pending_delete` becomes `deleted` and the children are
    /// soft-deleted. `Ok(false)` if the image is not (or no longer) `pending_delete`.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %id))]
    pub async fn finish_scrub(&self, ctx: &RequestContext, id: ImageId) -> RegistryResult<bool> {
        admin_only(ctx)?;
        let now = now();
        let id_text = id.to_string();
        let mut update = Query::update();
        update
            .table(image::Entity)
            .value(Col::Status, ImageStatus::Deleted.as_str())
            .value(Col::Deleted, true)
            .value(Col::UpdatedAt, now)
            .value(
                Col::DeletedAt,
                Func::coalesce([Expr::col(Col::DeletedAt).into(), Expr::val(now).into()]),
            )
            .and_where(Col::Id.eq(id_text.as_str()))
            .and_where(Col::Status.eq(PENDING));
        let txn = self.begin().await?;
        let changed = execute(&txn, &update).await.context("finishing a scrub")?;
        if changed == 0 {
            return Ok(false);
        }
        for table in [
            "image_properties",
            "image_tags",
            "image_members",
            "image_locations",
        ] {
            let mut children = Query::update();
            children
                .table(Alias::new(table))
                .value(Alias::new("deleted"), true)
                .value(Alias::new("deleted_at"), now)
                .value(Alias::new("updated_at"), now)
                .and_where(Expr::col(Alias::new("image_id")).eq(id_text.as_str()))
                .and_where(Expr::col(Alias::new("deleted")).eq(false));
            if table == "image_locations" {
                children.value(Alias::new("status"), "deleted");
            }
            execute(&txn, &children)
                .await
                .context("soft-deleting a scrubbed image's children")?;
        }
        txn.commit().await.context("committing a scrub")?;
        self.written(&id);
        Ok(true)
    }

    /// `pending_delete` back to `active`, with its locations (and the properties, tags and
    /// members it never lost). Not pending: `Conflict`; unknown: `NotFound`.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %id))]
    pub async fn restore(&self, ctx: &RequestContext, id: ImageId) -> RegistryResult<Image> {
        admin_only(ctx)?;
        let now = now();
        let id_text = id.to_string();
        let txn = self.begin().await?;
        if lock_pending(&txn, &id_text, now).await? == 0 {
            let current = image::Entity::find_by_id(id_text.clone())
                .one(&txn)
                .await
                .context("reading an image")?;
            return Err(match current {
                None => RegistryError::image_not_found(id_text),
                Some(row) => RegistryError::Conflict(format!(
                    "cannot restore the image from {} to active (wanted from_state=pending_delete)",
                    row.status
                )),
            });
        }
        // Holding the row: a scrubber that claimed the image first has committed by now,
        // and this statement (a fresh snapshot) sees it.
        let scrubbing = image_location::Entity::find()
            .filter(image_location::Column::ImageId.eq(id_text.as_str()))
            .filter(image_location::Column::Deleted.eq(false))
            .filter(image_location::Column::Status.eq(SCRUBBING))
            .count(&txn)
            .await
            .context("reading an image's locations")?;
        if scrubbing > 0 {
            return Err(RegistryError::Conflict(format!(
                "cannot restore image {id}: a scrubber has started removing its data"
            )));
        }
        let mut update = Query::update();
        update
            .table(image::Entity)
            .value(Col::Status, ImageStatus::Active.as_str())
            .value(Col::Deleted, false)
            .value(Col::DeletedAt, Option::<DateTime<Utc>>::None)
            .value(Col::UpdatedAt, now)
            .and_where(Col::Id.eq(id_text.as_str()));
        execute(&txn, &update).await.context("restoring an image")?;
        let mut locations = Query::update();
        locations
            .table(Alias::new("image_locations"))
            .value(Alias::new("status"), "active")
            .value(Alias::new("updated_at"), now)
            .and_where(Expr::col(Alias::new("image_id")).eq(id_text.as_str()))
            .and_where(Expr::col(Alias::new("deleted")).eq(false))
            .and_where(Expr::col(Alias::new("status")).eq(PENDING));
        execute(&txn, &locations)
            .await
            .context("restoring an image's locations")?;
        txn.commit().await.context("committing a restore")?;
        self.written(&id);
        self.get(ctx, id, false).await
    }
}

/// Touches a `pending_delete` image's row, taking its write lock for the transaction.
/// Returns the rows matched (0: not pending_delete).
async fn lock_pending(
    txn: &DatabaseTransaction,
    id: &str,
    now: DateTime<Utc>,
) -> RegistryResult<u64> {
    let mut touch = Query::update();
    touch
        .table(image::Entity)
        .value(Col::UpdatedAt, now)
        .and_where(Col::Id.eq(id))
        .and_where(Col::Status.eq(PENDING));
    execute(txn, &touch).await.context("locking an image")
}

pub(crate) fn admin_only(ctx: &RequestContext) -> RegistryResult<()> {
    if ctx.is_admin {
        Ok(())
    } else {
        Err(RegistryError::Invalid(
            "scrubber requests need an admin context".into(),
        ))
    }
}

async fn execute(
    txn: &DatabaseTransaction,
    update: &UpdateStatement,
) -> Result<u64, sea_orm::DbErr> {
    txn.execute(txn.get_database_backend().build(update))
        .await
        .map(|r| r.rows_affected())
}
