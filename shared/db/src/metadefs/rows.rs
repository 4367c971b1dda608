//! The row-level statements of the metadefs repository: reading a namespace with its
//! elements and associations, inserting, updating and deleting rows, and the errors they
//! answer with. [`super::MetadefRepo`] composes them into transactions.

use std::collections::HashSet;

use crate::repo::db_error;
use chrono::{DateTime, Utc};
use glance_domain::RequestContext;
use glance_proto::metadefs::{Association, Contents, Element, ElementKind, Namespace};
use glance_proto::registry::{Missing, RegistryError, RegistryResult};
use sea_orm::sea_query::{Alias, Cond, Expr, Func, Order, Query, SelectStatement, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, SqlErr, StatementBuilder};

pub(super) const NAMESPACES: &str = "metadef_namespaces";
pub(super) const RESOURCE_TYPES: &str = "metadef_resource_types";
pub(super) const ASSOCIATIONS: &str = "metadef_namespace_resource_types";

pub(super) fn table(kind: ElementKind) -> &'static str {
    match kind {
        ElementKind::Object => "metadef_objects",
        ElementKind::Property => "metadef_properties",
        ElementKind::Tag => "metadef_tags",
    }
}

pub(super) fn col(name: &str) -> Alias {
    Alias::new(name)
}

pub(super) fn tcol(t: &str, c: &str) -> (Alias, Alias) {
    (Alias::new(t), Alias::new(c))
}

/// A write that lost to a concurrent one on a unique key is a duplicate, not a failure.
pub(super) fn write_error(
    what: &str,
    duplicate: impl FnOnce() -> String,
    err: DbErr,
) -> RegistryError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => RegistryError::Duplicate(duplicate()),
        _ => db_error(what, err),
    }
}

pub fn namespace_not_found(name: &str) -> RegistryError {
    metadef_not_found(format!(
        "Metadata definition namespace={name} was not found."
    ))
}

pub(super) fn element_not_found(kind: ElementKind, name: &str) -> RegistryError {
    metadef_not_found(format!("Could not find metadata {kind} {name}"))
}

pub(super) fn metadef_not_found(message: String) -> RegistryError {
    RegistryError::NotFound(Missing::Metadef { message })
}

pub(super) fn duplicate_element(kind: ElementKind, name: &str, namespace: &str) -> String {
    match kind {
        ElementKind::Tag => format!(
            "A metadata tag with name={name} already exists in namespace={namespace}. \
             (Please note that metadata tag names are case insensitive)."
        ),
        _ => format!(
            "A metadata definition {kind} with name={name} already exists in \
             namespace={namespace}."
        ),
    }
}

/// Tag names are case-insensitive (Glance's); other names are not.
pub(super) fn name_key(kind: ElementKind, name: &str) -> String {
    if kind == ElementKind::Tag {
        name.to_lowercase()
    } else {
        name.to_owned()
    }
}

pub(super) fn name_is(kind: ElementKind, name: &str) -> SimpleExpr {
    if kind == ElementKind::Tag {
        Expr::expr(Func::lower(Expr::col(col("name")))).eq(name.to_lowercase())
    } else {
        Expr::col(col("name")).eq(name)
    }
}

/// Glance's visibility for metadefs: admins see every namespace, others the public ones
/// and their own project's.
pub(super) fn visible(ctx: &RequestContext) -> Cond {
    if ctx.is_admin {
        return Cond::all();
    }
    let mut cond = Cond::any().add(Expr::col(tcol(NAMESPACES, "visibility")).eq("public"));
    if let Some(project) = &ctx.project_id {
        cond = cond.add(Expr::col(tcol(NAMESPACES, "owner")).eq(project.clone()));
    }
    cond
}

pub(super) async fn query_all<C: ConnectionTrait>(
    conn: &C,
    stmt: &impl StatementBuilder,
) -> Result<Vec<QueryResult>, DbErr> {
    conn.query_all(conn.get_database_backend().build(stmt))
        .await
}

pub(super) async fn query_one<C: ConnectionTrait>(
    conn: &C,
    stmt: &impl StatementBuilder,
) -> Result<Option<QueryResult>, DbErr> {
    conn.query_one(conn.get_database_backend().build(stmt))
        .await
}

pub(super) async fn execute<C: ConnectionTrait>(
    conn: &C,
    stmt: &impl StatementBuilder,
) -> Result<u64, DbErr> {
    Ok(conn
        .execute(conn.get_database_backend().build(stmt))
        .await?
        .rows_affected())
}

pub(super) fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, DbErr> {
    row.try_get("", column)
}

pub(super) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

pub(super) const NAMESPACE_COLUMNS: [&str; 9] = [
    "id",
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "created_at",
    "updated_at",
];

pub(super) fn namespace_select() -> SelectStatement {
    let mut q = Query::select();
    q.from(col(NAMESPACES));
    for c in NAMESPACE_COLUMNS {
        q.column(tcol(NAMESPACES, c));
    }
    q
}

pub(super) fn namespace_from_row(row: &QueryResult) -> Result<(i32, Namespace), DbErr> {
    Ok((
        get(row, "id")?,
        Namespace {
            namespace: get(row, "namespace")?,
            display_name: get(row, "display_name")?,
            description: get(row, "description")?,
            visibility: get(row, "visibility")?,
            protected: get(row, "protected")?,
            owner: get(row, "owner")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        },
    ))
}

/// The namespace `name` with its row id, if `ctx` may see it.
pub(super) async fn find_namespace<C: ConnectionTrait>(
    conn: &C,
    ctx: &RequestContext,
    name: &str,
) -> RegistryResult<(i32, Namespace)> {
    let mut q = namespace_select();
    q.cond_where(
        Cond::all()
            .add(Expr::col(tcol(NAMESPACES, "namespace")).eq(name))
            .add(visible(ctx)),
    );
    let row = query_one(conn, &q)
        .await
        .map_err(|e| db_error("reading a namespace", e))?
        .ok_or_else(|| namespace_not_found(name))?;
    namespace_from_row(&row).map_err(|e| db_error("reading a namespace", e))
}

pub(super) async fn elements<C: ConnectionTrait>(
    conn: &C,
    namespace_id: i32,
    kind: ElementKind,
    name: Option<&str>,
) -> Result<Vec<Element>, DbErr> {
    let t = table(kind);
    let mut q = Query::select();
    q.from(col(t))
        .columns([col("name"), col("created_at"), col("updated_at")])
        .and_where(Expr::col(col("namespace_id")).eq(namespace_id));
    // Glance lists objects by name; properties are a map; tags in the order they were made
    // (the API shows them newest first).
    if kind == ElementKind::Object {
        q.order_by(col("name"), Order::Asc);
    }
    q.order_by(col("id"), Order::Asc);
    if kind != ElementKind::Tag {
        q.column(col("json_schema"));
    }
    if let Some(name) = name {
        q.and_where(name_is(kind, name));
    }
    query_all(conn, &q)
        .await?
        .iter()
        .map(|row| {
            let body = if kind == ElementKind::Tag {
                serde_json::json!({})
            } else {
                let text: String = get(row, "json_schema")?;
                serde_json::from_str(&text).map_err(|e| DbErr::Json(e.to_string()))?
            };
            Ok(Element {
                name: get(row, "name")?,
                body,
                created_at: get(row, "created_at")?,
                updated_at: get(row, "updated_at")?,
            })
        })
        .collect()
}

/// The associations of the namespaces with these row ids, by namespace id, in the order
/// they were made.
pub(super) async fn associations<C: ConnectionTrait>(
    conn: &C,
    namespace_ids: &[i32],
) -> Result<Vec<(i32, Association)>, DbErr> {
    if namespace_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Query::select();
    q.from(col(ASSOCIATIONS))
        .inner_join(
            col(RESOURCE_TYPES),
            Expr::col(tcol(RESOURCE_TYPES, "id")).equals(tcol(ASSOCIATIONS, "resource_type_id")),
        )
        .column(tcol(ASSOCIATIONS, "namespace_id"))
        .expr_as(Expr::col(tcol(RESOURCE_TYPES, "name")), col("name"))
        .column(tcol(ASSOCIATIONS, "prefix"))
        .column(tcol(ASSOCIATIONS, "properties_target"))
        .column(tcol(ASSOCIATIONS, "created_at"))
        .column(tcol(ASSOCIATIONS, "updated_at"))
        .and_where(Expr::col(tcol(ASSOCIATIONS, "namespace_id")).is_in(namespace_ids.to_vec()))
        .order_by(tcol(ASSOCIATIONS, "id"), Order::Asc);
    query_all(conn, &q)
        .await?
        .iter()
        .map(|row| {
            Ok((
                get(row, "namespace_id")?,
                Association {
                    name: get(row, "name")?,
                    prefix: get(row, "prefix")?,
                    properties_target: get(row, "properties_target")?,
                    created_at: get(row, "created_at")?,
                    updated_at: get(row, "updated_at")?,
                },
            ))
        })
        .collect()
}

pub(super) async fn contents_of<C: ConnectionTrait>(
    conn: &C,
    id: i32,
    namespace: Namespace,
) -> Result<Contents, DbErr> {
    Ok(Contents {
        associations: associations(conn, &[id])
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .collect(),
        objects: elements(conn, id, ElementKind::Object, None).await?,
        properties: elements(conn, id, ElementKind::Property, None).await?,
        tags: elements(conn, id, ElementKind::Tag, None).await?,
        namespace,
    })
}

pub(super) async fn insert_namespace<C: ConnectionTrait>(
    conn: &C,
    ns: &Namespace,
) -> RegistryResult<i32> {
    let mut q = Query::insert();
    q.into_table(col(NAMESPACES))
        .columns(NAMESPACE_COLUMNS[1..].iter().map(|c| col(c)))
        .values_panic([
            ns.namespace.clone().into(),
            ns.display_name.clone().into(),
            ns.description.clone().into(),
            ns.visibility.clone().into(),
            ns.protected.into(),
            ns.owner.clone().into(),
            ns.created_at.into(),
            ns.updated_at.into(),
        ])
        .returning_col(col("id"));
    let row = query_one(conn, &q)
        .await
        .map_err(|e| {
            write_error(
                "creating a namespace",
                || {
                    format!(
                        "Metadata definition namespace={} already exists.",
                        ns.namespace
                    )
                },
                e,
            )
        })?
        .ok_or_else(|| RegistryError::Internal("insert returned no id".into()))?;
    get(&row, "id").map_err(|e| db_error("creating a namespace", e))
}

pub(super) async fn insert_element<C: ConnectionTrait>(
    conn: &C,
    namespace: &str,
    namespace_id: i32,
    kind: ElementKind,
    element: &Element,
) -> RegistryResult<()> {
    let mut columns = vec![
        col("namespace_id"),
        col("name"),
        col("created_at"),
        col("updated_at"),
    ];
    let mut values: Vec<SimpleExpr> = vec![
        namespace_id.into(),
        element.name.clone().into(),
        element.created_at.into(),
        element.updated_at.into(),
    ];
    if kind != ElementKind::Tag {
        columns.push(col("json_schema"));
        values.push(json_text(&element.body).into());
    }
    let mut q = Query::insert();
    q.into_table(col(table(kind)))
        .columns(columns)
        .values_panic(values);
    execute(conn, &q).await.map_err(|e| {
        write_error(
            "adding to a namespace",
            || duplicate_element(kind, &element.name, namespace),
            e,
        )
    })?;
    Ok(())
}

/// The id of resource type `name`, created when unknown.
pub(super) async fn resource_type_id<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    now: DateTime<Utc>,
) -> RegistryResult<i32> {
    let mut q = Query::select();
    q.from(col(RESOURCE_TYPES))
        .column(col("id"))
        .and_where(Expr::col(col("name")).eq(name));
    if let Some(row) = query_one(conn, &q)
        .await
        .map_err(|e| db_error("reading a resource type", e))?
    {
        return get(&row, "id").map_err(|e| db_error("reading a resource type", e));
    }
    let mut q = Query::insert();
    q.into_table(col(RESOURCE_TYPES))
        .columns([
            col("name"),
            col("protected"),
            col("created_at"),
            col("updated_at"),
        ])
        .values_panic([
            name.into(),
            false.into(),
            now.into(),
            Option::<DateTime<Utc>>::None.into(),
        ])
        .returning_col(col("id"));
    let row = query_one(conn, &q)
        .await
        .map_err(|e| db_error("creating a resource type", e))?
        .ok_or_else(|| RegistryError::Internal("insert returned no id".into()))?;
    get(&row, "id").map_err(|e| db_error("creating a resource type", e))
}

pub(super) async fn insert_association<C: ConnectionTrait>(
    conn: &C,
    namespace: &str,
    namespace_id: i32,
    a: &Association,
) -> RegistryResult<()> {
    let type_id = resource_type_id(conn, &a.name, a.created_at).await?;
    let mut q = Query::insert();
    q.into_table(col(ASSOCIATIONS))
        .columns([
            col("resource_type_id"),
            col("namespace_id"),
            col("properties_target"),
            col("prefix"),
            col("created_at"),
            col("updated_at"),
        ])
        .values_panic([
            type_id.into(),
            namespace_id.into(),
            a.properties_target.clone().into(),
            a.prefix.clone().into(),
            a.created_at.into(),
            a.updated_at.into(),
        ]);
    execute(conn, &q).await.map_err(|e| {
        write_error(
            "associating a resource type",
            || {
                format!(
                    "The metadata definition resource-type association of resource-type={} to namespace={namespace}, already exists.",
                    a.name
                )
            },
            e,
        )
    })?;
    Ok(())
}

/// Inserts a namespace and everything in it; names repeated within `contents` are
/// duplicates.
pub(super) async fn insert_contents<C: ConnectionTrait>(
    conn: &C,
    contents: &Contents,
) -> RegistryResult<i32> {
    let ns = &contents.namespace.namespace;
    let id = insert_namespace(conn, &contents.namespace).await?;
    for kind in [ElementKind::Object, ElementKind::Property, ElementKind::Tag] {
        let mut seen = HashSet::new();
        for element in contents.elements(kind) {
            if !seen.insert(name_key(kind, &element.name)) {
                return Err(RegistryError::Duplicate(duplicate_element(
                    kind,
                    &element.name,
                    ns,
                )));
            }
            insert_element(conn, ns, id, kind, element).await?;
        }
    }
    for a in &contents.associations {
        insert_association(conn, ns, id, a).await?;
    }
    Ok(id)
}

pub(super) async fn delete_elements_of<C: ConnectionTrait>(
    conn: &C,
    namespace_id: i32,
    kind: ElementKind,
    name: Option<&str>,
) -> Result<u64, DbErr> {
    let mut q = Query::delete();
    q.from_table(col(table(kind)))
        .and_where(Expr::col(col("namespace_id")).eq(namespace_id));
    if let Some(name) = name {
        q.and_where(name_is(kind, name));
    }
    execute(conn, &q).await
}

pub(super) async fn delete_namespace_rows<C: ConnectionTrait>(
    conn: &C,
    id: i32,
) -> Result<(), DbErr> {
    // Children first, so nothing depends on the database enforcing ON DELETE CASCADE.
    for kind in [ElementKind::Object, ElementKind::Property, ElementKind::Tag] {
        delete_elements_of(conn, id, kind, None).await?;
    }
    let mut q = Query::delete();
    q.from_table(col(ASSOCIATIONS))
        .and_where(Expr::col(col("namespace_id")).eq(id));
    execute(conn, &q).await?;
    let mut q = Query::delete();
    q.from_table(col(NAMESPACES))
        .and_where(Expr::col(col("id")).eq(id));
    execute(conn, &q).await?;
    Ok(())
}

pub(super) async fn update_element_row<C: ConnectionTrait>(
    conn: &C,
    namespace_id: i32,
    kind: ElementKind,
    name: &str,
    element: &Element,
) -> Result<u64, DbErr> {
    let mut q = Query::update();
    q.table(col(table(kind)))
        .value(col("name"), element.name.clone())
        .value(col("updated_at"), element.updated_at)
        .and_where(Expr::col(col("namespace_id")).eq(namespace_id))
        .and_where(name_is(kind, name));
    if kind != ElementKind::Tag {
        q.value(col("json_schema"), json_text(&element.body));
    }
    execute(conn, &q).await
}

pub(super) async fn update_namespace_row<C: ConnectionTrait>(
    conn: &C,
    id: i32,
    ns: &Namespace,
) -> Result<u64, DbErr> {
    let mut q = Query::update();
    q.table(col(NAMESPACES))
        .value(col("namespace"), ns.namespace.clone())
        .value(col("display_name"), ns.display_name.clone())
        .value(col("description"), ns.description.clone())
        .value(col("visibility"), ns.visibility.clone())
        .value(col("protected"), ns.protected)
        .value(col("owner"), ns.owner.clone())
        .value(col("updated_at"), ns.updated_at)
        .and_where(Expr::col(col("id")).eq(id));
    execute(conn, &q).await
}
