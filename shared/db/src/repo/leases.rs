//! Upload leases on image rows (`glance_proto::leases`): renewing one, finding those that
//! ran out, breaking them, and telling the file sweep which images may still be written.
//!
//! Every time is the registry's own clock, so API nodes with skewed clocks agree.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use glance_domain::{ImageId, ImageStatus, RequestContext};
use glance_proto::leases::{ExpiredLease, UploadState};
use glance_proto::registry::{RegistryError, RegistryResult};
use sea_orm::sea_query::{Alias, Condition, Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::convert::{micros, now, DbContext};
use super::ImageRepo;
use crate::entity::{image, image_property};

type Col = image::Column;

/// The property an import's lock lives in (Glance's `os_glance_import_task`).
const IMPORT_LOCK: &str = "os_glance_import_task";

pub(crate) fn holder_col() -> Alias {
    Alias::new("lease_holder")
}

pub(crate) fn expires_col() -> Alias {
    Alias::new("lease_expires_at")
}

pub(crate) fn expiry(now: DateTime<Utc>, seconds: u32) -> DateTime<Utc> {
    micros(now + chrono::Duration::seconds(i64::from(seconds)))
}

fn before(now: DateTime<Utc>, seconds: u32) -> DateTime<Utc> {
    micros(now - chrono::Duration::seconds(i64::from(seconds)))
}

/// Statuses a lease guards.
const LEASED: [ImageStatus; 2] = [ImageStatus::Saving, ImageStatus::Uploading];

fn admin_only(ctx: &RequestContext) -> RegistryResult<()> {
    if ctx.is_admin {
        Ok(())
    } else {
        Err(RegistryError::Invalid(
            "upload lease requests need an admin context".into(),
        ))
    }
}

impl ImageRepo {
    /// Extends `holder`'s lease on `id` by `seconds` from now, if it is still theirs and
    /// has not run out; else `Conflict`.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %id))]
    pub async fn renew_lease(&self, id: ImageId, holder: &str, seconds: u32) -> RegistryResult<()> {
        let now = now();
        let mut update = Query::update();
        update
            .table(image::Entity)
            .value(expires_col(), expiry(now, seconds))
            .and_where(Col::Id.eq(id.to_string()))
            .and_where(Col::Deleted.eq(false))
            .and_where(Expr::col(holder_col()).eq(holder))
            .and_where(Expr::col(expires_col()).gte(now));
        let db = self.db.writer();
        let done = db
            .execute(db.get_database_backend().build(&update))
            .await
            .context("renewing an upload lease")?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::Conflict(format!(
                "the upload lease on image {id} ran out or was taken over"
            )));
        }
        Ok(())
    }

    /// Live images whose lease ran out, and `saving` ones never leased and not saved for
    /// `unleased_after` seconds.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn expired_leases(
        &self,
        ctx: &RequestContext,
        unleased_after: u32,
        limit: u32,
    ) -> RegistryResult<Vec<ExpiredLease>> {
        admin_only(ctx)?;
        let now = now();
        let rows: Vec<(String, String, Option<String>)> = image::Entity::find()
            .select_only()
            .column(Col::Id)
            .column(Col::Status)
            .column_as(Expr::col(holder_col()), "lease_holder")
            .filter(Col::Deleted.eq(false))
            .filter(expired(now, unleased_after))
            .limit(u64::from(limit.max(1)))
            .into_tuple()
            .all(self.db.writer())
            .await
            .context("listing expired upload leases")?;
        rows.into_iter()
            .map(|(id, status, holder)| {
                Ok(ExpiredLease {
                    image_id: id.parse().map_err(|e| {
                        RegistryError::Internal(format!("stored image id {id}: {e}"))
                    })?,
                    status: status.parse().map_err(|e| {
                        RegistryError::Internal(format!("stored status of {id}: {e}"))
                    })?,
                    holder,
                })
            })
            .collect()
    }

    /// Puts the image of an expired `lease` back to `queued`, if nothing changed since it
    /// was found: same status, same holder, still expired. `Ok(false)` otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %lease.image_id))]
    pub async fn break_lease(
        &self,
        ctx: &RequestContext,
        lease: &ExpiredLease,
        unleased_after: u32,
    ) -> RegistryResult<bool> {
        admin_only(ctx)?;
        if !LEASED.contains(&lease.status) {
            return Ok(false);
        }
        let now = now();
        let holder = match &lease.holder {
            Some(holder) => Condition::all()
                .add(Expr::col(holder_col()).eq(holder.as_str()))
                .add(Expr::col(expires_col()).lt(now)),
            None => Condition::all()
                .add(Expr::col(holder_col()).is_null())
                .add(Col::UpdatedAt.lt(before(now, unleased_after))),
        };
        let mut update = Query::update();
        update
            .table(image::Entity)
            .value(Col::Status, ImageStatus::Queued.as_str())
            .value(Col::Size, Option::<i64>::None)
            .value(Col::VirtualSize, Option::<i64>::None)
            .value(Col::UpdatedAt, now)
            .value(holder_col(), Option::<String>::None)
            .value(expires_col(), Option::<DateTime<Utc>>::None)
            .and_where(Col::Id.eq(lease.image_id.to_string()))
            .and_where(Col::Deleted.eq(false))
            .and_where(Col::Status.eq(lease.status.as_str()))
            .cond_where(holder);
        let db = self.db.writer();
        let done = db
            .execute(db.get_database_backend().build(&update))
            .await
            .context("breaking an upload lease")?;
        self.written(&lease.image_id);
        Ok(done.rows_affected() > 0)
    }

    /// For each of `ids`: its status, whether a lease on it is live and whether an import
    /// holds it. Missing and deleted images have no status.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn upload_states(
        &self,
        ctx: &RequestContext,
        ids: &[ImageId],
    ) -> RegistryResult<Vec<UploadState>> {
        admin_only(ctx)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let now = now();
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let rows: Vec<(String, String, bool, Option<DateTime<Utc>>)> = image::Entity::find()
            .select_only()
            .column(Col::Id)
            .column(Col::Status)
            .column(Col::Deleted)
            .column_as(Expr::col(expires_col()), "lease_expires_at")
            .filter(Col::Id.is_in(texts.clone()))
            .into_tuple()
            .all(self.db.writer())
            .await
            .context("reading upload states")?;
        let locked: HashSet<String> = image_property::Entity::find()
            .select_only()
            .column(image_property::Column::ImageId)
            .filter(image_property::Column::ImageId.is_in(texts))
            .filter(image_property::Column::Name.eq(IMPORT_LOCK))
            .filter(image_property::Column::Deleted.eq(false))
            .into_tuple()
            .all(self.db.writer())
            .await
            .context("reading import locks")?
            .into_iter()
            .collect();
        Ok(ids
            .iter()
            .map(|id| {
                let text = id.to_string();
                let row = rows.iter().find(|r| r.0 == text && !r.2);
                UploadState {
                    image_id: *id,
                    status: row.and_then(|r| r.1.parse().ok()),
                    live_lease: row.and_then(|r| r.3).is_some_and(|at| at >= now),
                    importing: row.is_some() && locked.contains(&text),
                }
            })
            .collect())
    }
}

/// `saving`/`uploading` with a lease that ran out, or `saving` never leased and idle.
fn expired(now: DateTime<Utc>, unleased_after: u32) -> Condition {
    let leased: Vec<&str> = LEASED.iter().map(|s| s.as_str()).collect();
    Condition::any()
        .add(
            Condition::all()
                .add(Col::Status.is_in(leased))
                .add(Expr::col(expires_col()).lt(now)),
        )
        .add(
            Condition::all()
                .add(Col::Status.eq(ImageStatus::Saving.as_str()))
                .add(Expr::col(holder_col()).is_null())
                .add(Col::UpdatedAt.lt(before(now, unleased_after))),
        )
}
