//! The task repository: Glance's `task_*` database functions for the registry's task
//! requests (`glance_proto::tasks`).
//!
//! Tasks are few and small next to images, so they go through sea-orm's query builder on the
//! write connection, with no record cache.

use crate::repo::db_error;
use chrono::{Duration, Utc};
use glance_domain::RequestContext;
use glance_proto::registry::{Missing, RegistryError, RegistryResult};
use glance_proto::tasks::{ListTasks, Task, TaskStatus};
use sea_orm::sea_query::Expr;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ModelTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::entity::{task, task_info};
use crate::Database;

#[derive(Clone, Debug)]
pub struct TaskRepo {
    db: Database,
}

fn not_found(id: &str) -> RegistryError {
    RegistryError::NotFound(Missing::Task { id: id.to_owned() })
}

/// Whether `ctx` may see tasks of `owner`: admins see every task, others their project's.
fn visible(ctx: &RequestContext) -> Condition {
    let mut cond = Condition::all().add(task::Column::Deleted.eq(false));
    if !ctx.is_admin {
        cond = cond.add(task::Column::Owner.eq(ctx.project_id.clone().unwrap_or_default()));
    }
    cond
}

fn to_task(row: task::Model, info: Option<task_info::Model>) -> RegistryResult<Task> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let info = info.unwrap_or(task_info::Model {
        task_id: row.id.clone(),
        input: None,
        result: None,
        message: None,
    });
    Ok(Task {
        status: row
            .status
            .parse()
            .map_err(|e: String| RegistryError::Internal(e))?,
        id: row.id,
        kind: row.kind,
        input: json(info.input).unwrap_or(serde_json::Value::Null),
        result: json(info.result),
        message: info.message.unwrap_or_default(),
        owner: row.owner,
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        image_id: row.image_id,
        request_id: row.request_id,
        user_id: row.user_id,
    })
}

impl TaskRepo {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn create(&self, task: Task) -> RegistryResult<Task> {
        let now = Utc::now();
        let row = task::ActiveModel {
            id: Set(task.id.clone()),
            kind: Set(task.kind.clone()),
            status: Set(task.status.as_str().to_owned()),
            owner: Set(task.owner.clone()),
            expires_at: Set(task.expires_at),
            image_id: Set(task.image_id.clone()),
            request_id: Set(task.request_id.clone()),
            user_id: Set(task.user_id.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            deleted: Set(false),
        };
        let info = task_info::ActiveModel {
            task_id: Set(task.id.clone()),
            input: Set(Some(task.input.to_string())),
            result: Set(task.result.as_ref().map(|r| r.to_string())),
            message: Set(Some(task.message.clone())),
        };
        let txn = self
            .db
            .writer()
            .begin()
            .await
            .map_err(|e| db_error("creating a task", e))?;
        if task::Entity::find_by_id(task.id.clone())
            .one(&txn)
            .await
            .map_err(|e| db_error("creating a task", e))?
            .is_some()
        {
            return Err(RegistryError::Duplicate(format!(
                "task {} already exists",
                task.id
            )));
        }
        task::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| db_error("creating a task", e))?;
        task_info::Entity::insert(info)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| db_error("creating a task", e))?;
        txn.commit()
            .await
            .map_err(|e| db_error("creating a task", e))?;
        Ok(Task {
            created_at: now,
            updated_at: now,
            ..task
        })
    }

    pub async fn get(&self, ctx: &RequestContext, id: &str) -> RegistryResult<Task> {
        let found = task::Entity::find_by_id(id.to_owned())
            .filter(visible(ctx))
            .find_also_related(task_info::Entity)
            .one(self.db.writer())
            .await
            .map_err(|e| db_error("reading a task", e))?;
        let (row, info) = found.ok_or_else(|| not_found(id))?;
        to_task(row, info)
    }

    /// Glance's `task_get_all`: expired tasks are soft-deleted first, then a page of the
    /// rest, newest first.
    pub async fn list(&self, req: &ListTasks) -> RegistryResult<Vec<Task>> {
        let now = Utc::now();
        task::Entity::update_many()
            .col_expr(task::Column::Deleted, Expr::value(true))
            .col_expr(task::Column::DeletedAt, Expr::value(now))
            .filter(task::Column::Deleted.eq(false))
            .filter(task::Column::ExpiresAt.lte(now))
            .exec(self.db.writer())
            .await
            .map_err(|e| db_error("expiring tasks", e))?;

        let column = sort_column(req.sort_key.as_deref());
        let mut cond = visible(&req.ctx);
        if let Some(image_id) = req.image_id {
            cond = cond.add(task::Column::ImageId.eq(image_id.to_string()));
        }
        if let Some(status) = req.status {
            cond = cond.add(task::Column::Status.eq(status.as_str()));
        }
        if let Some(kind) = &req.kind {
            cond = cond.add(task::Column::Kind.eq(kind.clone()));
        }
        if let Some(before) = req.updated_before {
            cond = cond.add(task::Column::UpdatedAt.lt(before));
        }
        if let Some(marker) = &req.marker {
            let marker_row = task::Entity::find_by_id(marker.clone())
                .filter(visible(&req.ctx))
                .one(self.db.writer())
                .await
                .map_err(|e| db_error("reading a task", e))?
                .ok_or_else(|| RegistryError::Invalid(format!("Task {marker} not found")))?;
            let at = marker_row.get(column);
            cond = cond.add(if req.ascending {
                Condition::any().add(Expr::col(column).gt(at.clone())).add(
                    Condition::all()
                        .add(Expr::col(column).eq(at))
                        .add(task::Column::Id.gt(marker.clone())),
                )
            } else {
                Condition::any().add(Expr::col(column).lt(at.clone())).add(
                    Condition::all()
                        .add(Expr::col(column).eq(at))
                        .add(task::Column::Id.lt(marker.clone())),
                )
            });
        }
        let order = if req.ascending {
            sea_orm::Order::Asc
        } else {
            sea_orm::Order::Desc
        };
        let rows = task::Entity::find()
            .filter(cond)
            .order_by(column, order.clone())
            .order_by(task::Column::Id, order)
            .limit(u64::from(req.limit.max(1)))
            .find_also_related(task_info::Entity)
            .all(self.db.writer())
            .await
            .map_err(|e| db_error("listing tasks", e))?;
        rows.into_iter().map(|(t, i)| to_task(t, i)).collect()
    }

    /// Saves status, result and message; with `from_status`, only if the stored status
    /// still equals it. A task that finishes gets `expires_at = now + ttl`.
    pub async fn save(
        &self,
        ctx: &RequestContext,
        task: Task,
        from_status: Option<TaskStatus>,
        ttl_hours: u32,
    ) -> RegistryResult<Task> {
        let txn = self
            .db
            .writer()
            .begin()
            .await
            .map_err(|e| db_error("saving a task", e))?;
        let stored = task::Entity::find_by_id(task.id.clone())
            .filter(visible(ctx))
            .one(&txn)
            .await
            .map_err(|e| db_error("saving a task", e))?
            .ok_or_else(|| not_found(&task.id))?;
        let current: TaskStatus = stored.status.parse().map_err(RegistryError::Internal)?;
        if from_status.is_some_and(|from| from != current) {
            return Err(RegistryError::Conflict(format!(
                "Task {} is {current}, not {}",
                task.id,
                from_status.map(|s| s.as_str()).unwrap_or_default()
            )));
        }
        if !current.can_transition_to(task.status) {
            return Err(RegistryError::Conflict(format!(
                "Status transition from {current} to {} is not allowed",
                task.status
            )));
        }
        let now = Utc::now();
        let expires_at = if task.status.is_final() && !current.is_final() {
            Some(now + Duration::hours(i64::from(ttl_hours)))
        } else {
            stored.expires_at
        };
        task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(task.status.as_str()))
            .col_expr(task::Column::UpdatedAt, Expr::value(now))
            .col_expr(task::Column::ExpiresAt, Expr::value(expires_at))
            .filter(task::Column::Id.eq(task.id.clone()))
            .exec(&txn)
            .await
            .map_err(|e| db_error("saving a task", e))?;
        task_info::Entity::update_many()
            .col_expr(
                task_info::Column::Result,
                Expr::value(task.result.as_ref().map(|r| r.to_string())),
            )
            .col_expr(
                task_info::Column::Message,
                Expr::value(task.message.clone()),
            )
            .filter(task_info::Column::TaskId.eq(task.id.clone()))
            .exec(&txn)
            .await
            .map_err(|e| db_error("saving a task", e))?;
        txn.commit()
            .await
            .map_err(|e| db_error("saving a task", e))?;
        Ok(Task {
            updated_at: now,
            expires_at,
            created_at: stored.created_at,
            ..task
        })
    }
}

/// The column a task list sorts by (Glance's keys; `created_at` by default).
fn sort_column(key: Option<&str>) -> task::Column {
    match key {
        Some("id") => task::Column::Id,
        Some("type") => task::Column::Kind,
        Some("status") => task::Column::Status,
        Some("owner") => task::Column::Owner,
        Some("expires_at") => task::Column::ExpiresAt,
        Some("updated_at") => task::Column::UpdatedAt,
        _ => task::Column::CreatedAt,
    }
}
