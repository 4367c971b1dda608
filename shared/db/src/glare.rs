//! The artifact repository's records (`glare_artifacts`), for the registry's
//! `glance_proto::glare` requests.
//!
//! Visibility and uniqueness are applied here; every other rule is the glare service's.
//! Writes run in one transaction on the write connection, so the uniqueness check and the
//! write it guards are not interleaved with another registry's on SQLite; on PostgreSQL
//! two concurrent creates of the same name and version may both pass (Glare has the same
//! window: it checks in Python, without a unique index).

use crate::repo::{db_error, internal};
use chrono::{DateTime, Utc};
use glance_domain::{Artifact, ArtifactVisibility, RequestContext, Semver};
use glance_proto::glare::Quotas;
use glance_proto::registry::{Missing, RegistryError, RegistryResult};
use sea_orm::sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, QueryResult, StatementBuilder};
use uuid::Uuid;

use crate::Database;

const TABLE: &str = "glare_artifacts";
const QUOTAS: &str = "glare_quotas";
/// The status a delayed delete leaves an artifact in until a scrubber removes it.
const DELETED: &str = "deleted";
const COLUMNS: [&str; 12] = [
    "id",
    "type_name",
    "name",
    "version",
    "owner",
    "visibility",
    "status",
    "created_at",
    "updated_at",
    "activated_at",
    "fields",
    "revision",
];

fn col(name: &str) -> Alias {
    Alias::new(name)
}

fn not_found(id: &Uuid) -> RegistryError {
    RegistryError::NotFound(Missing::Artifact { id: id.to_string() })
}

/// Non-admins see their project's artifacts and public ones; admins see all.
fn visible(ctx: &RequestContext) -> Cond {
    if ctx.is_admin {
        return Cond::all();
    }
    let mut cond = Cond::any().add(Expr::col(col("visibility")).eq("public"));
    if let Some(project) = &ctx.project_id {
        cond = cond.add(Expr::col(col("owner")).eq(project.clone()));
    }
    cond
}

fn select() -> SelectStatement {
    let mut q = Query::select();
    q.columns(COLUMNS.iter().map(|c| col(c))).from(col(TABLE));
    q
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, DbErr> {
    row.try_get("", column)
}

fn from_row(row: &QueryResult) -> Result<Artifact, String> {
    let text = |c: &str| get::<String>(row, c).map_err(|e| e.to_string());
    let id = text("id")?;
    let fields: serde_json::Value =
        serde_json::from_str(&text("fields")?).map_err(|e| e.to_string())?;
    Ok(Artifact {
        id: Uuid::parse_str(&id).map_err(|e| e.to_string())?,
        type_name: text("type_name")?,
        name: text("name")?,
        version: text("version")?.parse().map_err(|e| format!("{e}"))?,
        owner: text("owner")?,
        visibility: text("visibility")?.parse().map_err(|e| format!("{e}"))?,
        status: text("status")?.parse().map_err(|e| format!("{e}"))?,
        created_at: get::<DateTime<Utc>>(row, "created_at").map_err(|e| e.to_string())?,
        updated_at: get::<DateTime<Utc>>(row, "updated_at").map_err(|e| e.to_string())?,
        activated_at: get::<Option<DateTime<Utc>>>(row, "activated_at")
            .map_err(|e| e.to_string())?,
        fields: match fields {
            serde_json::Value::Object(map) => map,
            _ => return Err("fields is not a JSON object".into()),
        },
        revision: get::<i64>(row, "revision").map_err(|e| e.to_string())?,
    })
}

fn values(a: &Artifact) -> Vec<sea_orm::sea_query::SimpleExpr> {
    vec![
        a.id.to_string().into(),
        a.type_name.clone().into(),
        a.name.clone().into(),
        a.version.to_string().into(),
        a.owner.clone().into(),
        a.visibility.as_str().into(),
        a.status.as_str().into(),
        a.created_at.into(),
        a.updated_at.into(),
        a.activated_at.into(),
        serde_json::Value::Object(a.fields.clone())
            .to_string()
            .into(),
        a.revision.into(),
    ]
}

async fn query_all<C: ConnectionTrait>(
    conn: &C,
    stmt: &impl StatementBuilder,
) -> Result<Vec<QueryResult>, DbErr> {
    conn.query_all(conn.get_database_backend().build(stmt))
        .await
}

async fn execute<C: ConnectionTrait>(conn: &C, stmt: &impl StatementBuilder) -> Result<u64, DbErr> {
    Ok(conn
        .execute(conn.get_database_backend().build(stmt))
        .await?
        .rows_affected())
}

fn rows_to_artifacts(what: &str, rows: &[QueryResult]) -> RegistryResult<Vec<Artifact>> {
    rows.iter()
        .map(|r| from_row(r).map_err(|e| internal(what, e)))
        .collect()
}

#[derive(Clone, Debug)]
pub struct ArtifactRepo {
    db: Database,
}

impl ArtifactRepo {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    async fn begin(&self, what: &str) -> RegistryResult<DatabaseTransaction> {
        crate::repo::begin_write(&self.db, what).await
    }

    pub async fn get(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
        id: Uuid,
    ) -> RegistryResult<Artifact> {
        find(self.db.writer(), ctx, type_name, id).await
    }

    /// See `glance_proto::glare::ListArtifacts`.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
        owner: Option<&str>,
        include_deleted: bool,
        names: &[String],
    ) -> RegistryResult<Vec<Artifact>> {
        let mut cond = Cond::all().add(visible(ctx));
        if let Some(t) = type_name {
            cond = cond.add(Expr::col(col("type_name")).eq(t));
        }
        if let Some(owner) = owner {
            cond = cond.add(Expr::col(col("owner")).eq(owner));
        }
        if !include_deleted {
            cond = cond.add(Expr::col(col("status")).ne(DELETED));
        }
        if !names.is_empty() {
            cond = cond.add(Expr::col(col("name")).is_in(names.iter().cloned()));
        }
        let mut q = select();
        q.cond_where(cond)
            .order_by(col("created_at"), Order::Asc)
            .order_by(col("id"), Order::Asc);
        let rows = query_all(self.db.writer(), &q)
            .await
            .map_err(|e| db_error("listing artifacts", e))?;
        rows_to_artifacts("listing artifacts", &rows)
    }

    /// Artifacts left `deleted` by a delayed delete at or before `before`: see
    /// `glance_proto::scrub::ListDeletedArtifacts`.
    pub async fn deleted_due(
        &self,
        ctx: &RequestContext,
        before: DateTime<Utc>,
        limit: u32,
        marker: Option<Uuid>,
    ) -> RegistryResult<Vec<Artifact>> {
        crate::repo::admin_only(ctx)?;
        let what = "listing deleted artifacts";
        let mut cond = Cond::all()
            .add(Expr::col(col("status")).eq(DELETED))
            .add(Expr::col(col("updated_at")).lte(before));
        if let Some(marker) = marker {
            let after = find(self.db.writer(), ctx, None, marker).await;
            if let Ok(m) = after {
                cond = cond.add(
                    Cond::any()
                        .add(Expr::col(col("updated_at")).gt(m.updated_at))
                        .add(
                            Cond::all()
                                .add(Expr::col(col("updated_at")).eq(m.updated_at))
                                .add(Expr::col(col("id")).gt(marker.to_string())),
                        ),
                );
            }
        }
        let mut q = select();
        q.cond_where(cond)
            .order_by(col("updated_at"), Order::Asc)
            .order_by(col("id"), Order::Asc)
            .limit(u64::from(limit.max(1)));
        let rows = query_all(self.db.writer(), &q)
            .await
            .map_err(|e| db_error(what, e))?;
        rows_to_artifacts(what, &rows)
    }

    pub async fn create(&self, artifact: Artifact) -> RegistryResult<Artifact> {
        let what = "creating an artifact";
        let txn = self.begin(what).await?;
        check_unique(&txn, &artifact).await?;
        let mut q = Query::insert();
        q.into_table(col(TABLE))
            .columns(COLUMNS.iter().map(|c| col(c)))
            .values_panic(values(&artifact));
        execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(artifact)
    }

    /// Compare-and-set on `revision`: see `glance_proto::glare::SaveArtifact`.
    pub async fn save(&self, ctx: &RequestContext, artifact: Artifact) -> RegistryResult<Artifact> {
        let what = "saving an artifact";
        let txn = self.begin(what).await?;
        let stored = find(&txn, ctx, Some(&artifact.type_name), artifact.id).await?;
        if stored.revision != artifact.revision {
            return Err(RegistryError::Conflict(format!(
                "Artifact {} was changed by another request; retry.",
                artifact.id
            )));
        }
        if (&stored.name, &stored.version, stored.visibility)
            != (&artifact.name, &artifact.version, artifact.visibility)
        {
            check_unique(&txn, &artifact).await?;
        }
        let mut saved = artifact;
        saved.revision += 1;
        let mut q = Query::update();
        let assignments = COLUMNS[1..]
            .iter()
            .zip(values(&saved).into_iter().skip(1))
            .map(|(c, v)| (col(c), v));
        q.table(col(TABLE))
            .values(assignments)
            .and_where(Expr::col(col("id")).eq(saved.id.to_string()))
            .and_where(Expr::col(col("revision")).eq(stored.revision));
        let changed = execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
        if changed != 1 {
            return Err(RegistryError::Conflict(format!(
                "Artifact {} was changed by another request; retry.",
                saved.id
            )));
        }
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(saved)
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        revision: i64,
    ) -> RegistryResult<Artifact> {
        let what = "deleting an artifact";
        let txn = self.begin(what).await?;
        let stored = find(&txn, ctx, None, id).await?;
        let mut q = Query::delete();
        q.from_table(col(TABLE))
            .and_where(Expr::col(col("id")).eq(id.to_string()))
            .and_where(Expr::col(col("revision")).eq(revision));
        let gone = execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
        if gone != 1 {
            return Err(RegistryError::Conflict(format!(
                "Artifact {id} was changed by another request; retry."
            )));
        }
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(stored)
    }
}

impl ArtifactRepo {
    /// `PUT /quotas`: each named project's quotas replaced by the given ones.
    pub async fn set_quotas(&self, values: &Quotas) -> RegistryResult<()> {
        let what = "setting quotas";
        let txn = self.begin(what).await?;
        for (project, quotas) in values {
            let mut q = Query::delete();
            q.from_table(col(QUOTAS))
                .and_where(Expr::col(col("project_id")).eq(project.clone()));
            execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
            if quotas.is_empty() {
                continue;
            }
            let mut q = Query::insert();
            q.into_table(col(QUOTAS)).columns([
                col("project_id"),
                col("quota_name"),
                col("quota_value"),
            ]);
            for (name, value) in quotas {
                q.values_panic([project.clone().into(), name.clone().into(), (*value).into()]);
            }
            execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
        }
        txn.commit().await.map_err(|e| db_error(what, e))
    }

    pub async fn list_quotas(&self, project: Option<&str>) -> RegistryResult<Quotas> {
        let what = "listing quotas";
        let mut q = Query::select();
        q.columns([col("project_id"), col("quota_name"), col("quota_value")])
            .from(col(QUOTAS))
            .order_by(col("project_id"), Order::Asc)
            .order_by(col("quota_name"), Order::Asc);
        if let Some(p) = project {
            q.and_where(Expr::col(col("project_id")).eq(p));
        }
        let rows = query_all(self.db.writer(), &q)
            .await
            .map_err(|e| db_error(what, e))?;
        let mut out = Quotas::new();
        for row in rows {
            let project: String = get(&row, "project_id").map_err(|e| db_error(what, e))?;
            let name: String = get(&row, "quota_name").map_err(|e| db_error(what, e))?;
            let value: i64 = get(&row, "quota_value").map_err(|e| db_error(what, e))?;
            out.entry(project).or_default().insert(name, value);
        }
        Ok(out)
    }
}

async fn find<C: ConnectionTrait>(
    conn: &C,
    ctx: &RequestContext,
    type_name: Option<&str>,
    id: Uuid,
) -> RegistryResult<Artifact> {
    let mut cond = Cond::all()
        .add(Expr::col(col("id")).eq(id.to_string()))
        .add(visible(ctx));
    if let Some(t) = type_name {
        cond = cond.add(Expr::col(col("type_name")).eq(t));
    }
    let mut q = select();
    q.cond_where(cond);
    let rows = query_all(conn, &q)
        .await
        .map_err(|e| db_error("reading an artifact", e))?;
    rows_to_artifacts("reading an artifact", &rows)?
        .pop()
        .ok_or_else(|| not_found(&id))
}

/// Glare's scopes: a private artifact's name and version are unique among its owner's
/// private artifacts of the type, a public one's among all public ones of the type. An
/// artifact waiting for the scrubber (`deleted`) no longer holds its name and version.
async fn check_unique<C: ConnectionTrait>(conn: &C, a: &Artifact) -> RegistryResult<()> {
    let mut cond = Cond::all()
        .add(Expr::col(col("type_name")).eq(a.type_name.clone()))
        .add(Expr::col(col("name")).eq(a.name.clone()))
        .add(Expr::col(col("version")).eq(a.version.to_string()))
        .add(Expr::col(col("id")).ne(a.id.to_string()))
        .add(Expr::col(col("status")).ne(DELETED))
        .add(Expr::col(col("visibility")).eq(a.visibility.as_str()));
    if a.visibility == ArtifactVisibility::Private {
        cond = cond.add(Expr::col(col("owner")).eq(a.owner.clone()));
    }
    let mut q = Query::select();
    q.column(col("id"))
        .from(col(TABLE))
        .cond_where(cond)
        .limit(1);
    let rows = query_all(conn, &q)
        .await
        .map_err(|e| db_error("checking an artifact's name and version", e))?;
    if rows.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Duplicate(duplicate_message(
            &a.name, &a.version,
        )))
    }
}

fn duplicate_message(name: &str, version: &Semver) -> String {
    format!("Artifact with name={name} and version={version} already exists in this scope.")
}
