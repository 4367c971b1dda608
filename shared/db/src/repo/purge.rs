//! `glance-manage db purge` and `db purge_images_table`: hard-deletes soft-deleted rows
//! older than a cutoff, oldest first, at most `max_rows` per table per run (Glance's
//! `purge_deleted_rows` and `purge_deleted_rows_from_images`).
//!
//! `purge` also removes tasks that expired (they are soft-deleted when they expire):
//! `task_info` rows first, since they have no `deleted_at` of their own and go with their
//! task, then the `tasks` rows, as Glance does.
//!
//! As in Glance since OSSN-0075, `purge` never touches `images` (a purged row would let its
//! UUID be reused); `purge_images_table` does, and fails while child rows still reference a
//! row it would remove: run `purge` first. Images still waiting for the scrubber
//! (`pending_delete`) are never purged, or their data would be forgotten.

use chrono::{DateTime, Utc};
use glance_proto::registry::{RegistryError, RegistryResult};
use sea_orm::sea_query::{Alias, Expr, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, TransactionTrait};

use super::convert::{now, DbContext};
use super::ImageRepo;

/// The child tables, in the order Glance purges them.
pub const CHILD_TABLES: [&str; 4] = [
    "image_properties",
    "image_tags",
    "image_locations",
    "image_members",
];

/// How many rows a purge removed from a table.
pub type Purged = (&'static str, u64);

impl ImageRepo {
    /// Purges the task info of deleted tasks, the image child tables and `tasks` (not
    /// `images`). `max_rows = None` means no limit.
    pub async fn purge_deleted_rows(
        &self,
        age_in_days: u32,
        max_rows: Option<u64>,
    ) -> RegistryResult<Vec<Purged>> {
        let cutoff = cutoff(age_in_days);
        let mut purged = Vec::new();
        let rows = self
            .delete_where("task_info", "task_id", deleted_task_info(cutoff, max_rows))
            .await?;
        tracing::info!(table = "task_info", rows, "purged");
        purged.push(("task_info", rows));
        for table in CHILD_TABLES.into_iter().chain(["tasks"]) {
            let ids = oldest_deleted(table, cutoff, max_rows, None);
            let rows = self.delete_ids(table, ids).await?;
            tracing::info!(table, rows, "purged");
            purged.push((table, rows));
        }
        Ok(purged)
    }

    /// Purges `images` rows deleted before the cutoff.
    pub async fn purge_images_table(
        &self,
        age_in_days: u32,
        max_rows: Option<u64>,
    ) -> RegistryResult<Purged> {
        let cutoff = cutoff(age_in_days);
        let txn = self.db.writer().begin().await.context("starting a purge")?;
        let backend = txn.get_database_backend();
        // Glance lets the foreign keys refuse the delete; checking first gives the same
        // outcome on both databases with a message that says what to do.
        let mut referenced = Query::select();
        referenced
            .expr(Expr::cust("COUNT(*)"))
            .from_subquery(
                oldest_deleted("images", cutoff, max_rows, Some("pending_delete")),
                Alias::new("candidates"),
            )
            .and_where(Expr::cust(
                "EXISTS (SELECT 1 FROM image_properties c WHERE c.image_id = candidates.id) \
                 OR EXISTS (SELECT 1 FROM image_tags c WHERE c.image_id = candidates.id) \
                 OR EXISTS (SELECT 1 FROM image_locations c WHERE c.image_id = candidates.id) \
                 OR EXISTS (SELECT 1 FROM image_members c WHERE c.image_id = candidates.id)",
            ));
        let row = txn
            .query_one(backend.build(&referenced))
            .await
            .context("checking image references")?;
        let still_referenced: i64 = row
            .map(|r| r.try_get_by_index(0))
            .transpose()
            .context("checking image references")?
            .unwrap_or(0);
        if still_referenced > 0 {
            return Err(RegistryError::Conflict(format!(
                "{still_referenced} deleted image(s) are still referenced by rows of their child \
                 tables; run `glance-manage db purge` with the same --age-in-days first"
            )));
        }
        let mut delete = Query::delete();
        delete
            .from_table(Alias::new("images"))
            .and_where(Expr::col(Alias::new("id")).in_subquery(oldest_deleted(
                "images",
                cutoff,
                max_rows,
                Some("pending_delete"),
            )));
        let rows = txn
            .execute(backend.build(&delete))
            .await
            .context("purging images")?
            .rows_affected();
        txn.commit().await.context("committing a purge")?;
        tracing::info!(table = "images", rows, "purged");
        Ok(("images", rows))
    }

    async fn delete_ids(&self, table: &'static str, ids: SelectStatement) -> RegistryResult<u64> {
        self.delete_where(table, "id", ids).await
    }

    /// `DELETE FROM table WHERE key IN (ids)`.
    async fn delete_where(
        &self,
        table: &'static str,
        key: &'static str,
        ids: SelectStatement,
    ) -> RegistryResult<u64> {
        let mut delete = Query::delete();
        delete
            .from_table(Alias::new(table))
            .and_where(Expr::col(Alias::new(key)).in_subquery(ids));
        let writer = self.db.writer();
        let result = writer
            .execute(writer.get_database_backend().build(&delete))
            .await
            .context("purging deleted rows")?;
        Ok(result.rows_affected())
    }
}

fn cutoff(age_in_days: u32) -> DateTime<Utc> {
    now() - chrono::Duration::days(i64::from(age_in_days))
}

/// The `task_info` rows of the tasks the `tasks` purge will take (same cutoff, order and
/// limit), so a batch removes a task together with its info.
fn deleted_task_info(cutoff: DateTime<Utc>, max_rows: Option<u64>) -> SelectStatement {
    let (info, tasks) = (Alias::new("task_info"), Alias::new("tasks"));
    let mut select = Query::select();
    select
        .column((info.clone(), Alias::new("task_id")))
        .from(info.clone())
        .inner_join(
            tasks.clone(),
            Expr::col((tasks.clone(), Alias::new("id"))).equals((info, Alias::new("task_id"))),
        )
        .and_where(Expr::col((tasks.clone(), Alias::new("deleted_at"))).is_not_null())
        .and_where(Expr::col((tasks.clone(), Alias::new("deleted_at"))).lt(cutoff))
        .order_by((tasks.clone(), Alias::new("deleted_at")), Order::Asc)
        .order_by((tasks, Alias::new("id")), Order::Asc);
    if let Some(n) = max_rows {
        select.limit(n);
    }
    select
}

/// `SELECT id FROM table WHERE deleted_at < cutoff [AND status <> skip] ORDER BY deleted_at
/// LIMIT max_rows`: rows with no `deleted_at` are never purged.
fn oldest_deleted(
    table: &'static str,
    cutoff: DateTime<Utc>,
    max_rows: Option<u64>,
    skip_status: Option<&str>,
) -> SelectStatement {
    let mut select = Query::select();
    select
        .column(Alias::new("id"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("deleted_at")).is_not_null())
        .and_where(Expr::col(Alias::new("deleted_at")).lt(cutoff))
        .order_by(Alias::new("deleted_at"), Order::Asc)
        .order_by(Alias::new("id"), Order::Asc);
    if let Some(status) = skip_status {
        select.and_where(Expr::col(Alias::new("status")).ne(status));
    }
    if let Some(n) = max_rows {
        select.limit(n);
    }
    select
}
