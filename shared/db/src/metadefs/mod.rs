//! The metadefs repository: Glance's `db/sqlalchemy/metadef_api` for the registry's
//! metadefs requests (`glance_proto::metadefs`), and the catalog-wide load, export and
//! unload of `glance-manage db load_metadefs|export_metadefs|unload_metadefs`.
//!
//! The three element tables (objects, properties, tags) have the same shape, so one set of
//! sea-query statements, parameterized by table, serves them all. Every write runs in one
//! transaction on the write connection; the catalog is small and rarely written. The
//! row-level statements are in `rows`; this module composes them into the repository.

use std::collections::{HashMap, HashSet};

use crate::repo::db_error;
use glance_domain::RequestContext;
use glance_proto::metadefs::{
    Association, Contents, Element, ElementKind, ListNamespaces, ListedNamespace, Namespace,
    ResourceType,
};
use glance_proto::registry::{RegistryError, RegistryResult};
use sea_orm::sea_query::{Cond, Expr, IntoCondition, Order, Query};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::Database;

mod rows;

use rows::*;

/// How `load_metadefs` treats a namespace that is already in the database (Glance's
/// `--merge`, `--prefer_new`, `--overwrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Leave it alone (no flag).
    Skip,
    /// Add what the file has and the database lacks (`--merge`).
    Merge,
    /// Add what is missing and let the file win where both have it (`--merge --prefer_new`).
    PreferNew,
    /// Replace it with the file's (`--merge --overwrite`).
    Overwrite,
}

/// What a load did, per namespace, for the operator's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Created(String),
    Skipped(String),
    Merged(String),
    Replaced(String),
}

#[derive(Clone, Debug)]
pub struct MetadefRepo {
    db: Database,
}

impl MetadefRepo {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    async fn begin(&self, what: &str) -> RegistryResult<DatabaseTransaction> {
        crate::repo::begin_write(&self.db, what).await
    }

    pub async fn list_namespaces(
        &self,
        req: &ListNamespaces,
    ) -> RegistryResult<Vec<ListedNamespace>> {
        let conn = self.db.writer();
        let what = "listing namespaces";
        let sort = match req.sort_key.as_str() {
            "namespace" | "created_at" | "updated_at" | "display_name" => req.sort_key.as_str(),
            other => return Err(RegistryError::Invalid(format!("Invalid sort key: {other}"))),
        };
        let mut cond = Cond::all().add(visible(&req.ctx));
        if let Some(v) = &req.visibility {
            cond = cond.add(Expr::col(tcol(NAMESPACES, "visibility")).eq(v.clone()));
        }
        if !req.resource_types.is_empty() {
            let mut sub = Query::select();
            sub.column(tcol(ASSOCIATIONS, "namespace_id"))
                .from(col(ASSOCIATIONS))
                .inner_join(
                    col(RESOURCE_TYPES),
                    Expr::col(tcol(RESOURCE_TYPES, "id"))
                        .equals(tcol(ASSOCIATIONS, "resource_type_id")),
                )
                .and_where(
                    Expr::col(tcol(RESOURCE_TYPES, "name")).is_in(req.resource_types.clone()),
                );
            cond = cond.add(Expr::col(tcol(NAMESPACES, "id")).in_subquery(sub));
        }
        if let Some(marker) = &req.marker {
            // An unknown marker is 404, as in Glance.
            let (marker_id, m) = find_namespace(conn, &req.ctx, marker).await?;
            let value: sea_orm::Value = match sort {
                "namespace" => m.namespace.into(),
                "display_name" => m.display_name.into(),
                "updated_at" => m.updated_at.into(),
                _ => m.created_at.into(),
            };
            let key = Expr::col(tcol(NAMESPACES, sort));
            let id = Expr::col(tcol(NAMESPACES, "id"));
            let after = if req.ascending {
                Cond::any()
                    .add(key.clone().gt(value.clone()))
                    .add(Cond::all().add(key.eq(value)).add(id.gt(marker_id)))
            } else {
                Cond::any()
                    .add(key.clone().lt(value.clone()))
                    .add(Cond::all().add(key.eq(value)).add(id.lt(marker_id)))
            };
            cond = cond.add(after.into_condition());
        }
        let order = if req.ascending {
            Order::Asc
        } else {
            Order::Desc
        };
        let mut q = namespace_select();
        q.cond_where(cond)
            .order_by(tcol(NAMESPACES, sort), order.clone())
            .order_by(tcol(NAMESPACES, "id"), order)
            .limit(u64::from(req.limit));
        let rows = query_all(conn, &q).await.map_err(|e| db_error(what, e))?;
        let namespaces = rows
            .iter()
            .map(namespace_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_error(what, e))?;
        let ids: Vec<i32> = namespaces.iter().map(|(id, _)| *id).collect();
        let mut by_namespace: HashMap<i32, Vec<Association>> = HashMap::new();
        for (id, a) in associations(conn, &ids)
            .await
            .map_err(|e| db_error(what, e))?
        {
            by_namespace.entry(id).or_default().push(a);
        }
        Ok(namespaces
            .into_iter()
            .map(|(id, namespace)| ListedNamespace {
                namespace,
                associations: by_namespace.remove(&id).unwrap_or_default(),
            })
            .collect())
    }

    pub async fn get_namespace(
        &self,
        ctx: &RequestContext,
        name: &str,
    ) -> RegistryResult<Contents> {
        let conn = self.db.writer();
        let (id, ns) = find_namespace(conn, ctx, name).await?;
        contents_of(conn, id, ns)
            .await
            .map_err(|e| db_error("reading a namespace", e))
    }

    pub async fn create_namespace(&self, contents: Contents) -> RegistryResult<Contents> {
        let txn = self.begin("creating a namespace").await?;
        let id = insert_contents(&txn, &contents).await?;
        let created = contents_of(&txn, id, contents.namespace)
            .await
            .map_err(|e| db_error("creating a namespace", e))?;
        txn.commit()
            .await
            .map_err(|e| db_error("creating a namespace", e))?;
        Ok(created)
    }

    pub async fn update_namespace(
        &self,
        ctx: &RequestContext,
        name: &str,
        update: Namespace,
    ) -> RegistryResult<Namespace> {
        let what = "updating a namespace";
        let txn = self.begin(what).await?;
        let (id, _) = find_namespace(&txn, ctx, name).await?;
        update_namespace_row(&txn, id, &update).await.map_err(|e| {
            write_error(
                what,
                || {
                    format!(
                        "Metadata definition namespace={} already exists.",
                        update.namespace
                    )
                },
                e,
            )
        })?;
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(update)
    }

    pub async fn delete_namespace(&self, ctx: &RequestContext, name: &str) -> RegistryResult<()> {
        let what = "deleting a namespace";
        let txn = self.begin(what).await?;
        let (id, ns) = find_namespace(&txn, ctx, name).await?;
        if ns.protected {
            return Err(RegistryError::Conflict(format!(
                "Namespace {name} is protected and cannot be deleted."
            )));
        }
        delete_namespace_rows(&txn, id)
            .await
            .map_err(|e| db_error(what, e))?;
        txn.commit().await.map_err(|e| db_error(what, e))
    }

    pub async fn list_elements(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
    ) -> RegistryResult<Vec<Element>> {
        let conn = self.db.writer();
        let (id, _) = find_namespace(conn, ctx, namespace).await?;
        elements(conn, id, kind, None)
            .await
            .map_err(|e| db_error("listing a namespace's contents", e))
    }

    pub async fn get_element(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        name: &str,
    ) -> RegistryResult<Element> {
        let conn = self.db.writer();
        let (id, _) = find_namespace(conn, ctx, namespace).await?;
        elements(conn, id, kind, Some(name))
            .await
            .map_err(|e| db_error("reading a namespace's contents", e))?
            .pop()
            .ok_or_else(|| element_not_found(kind, name))
    }

    pub async fn create_elements(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        new: &[Element],
        replace: bool,
    ) -> RegistryResult<Vec<Element>> {
        let what = "adding to a namespace";
        let txn = self.begin(what).await?;
        let (id, _) = find_namespace(&txn, ctx, namespace).await?;
        if replace {
            delete_elements_of(&txn, id, kind, None)
                .await
                .map_err(|e| db_error(what, e))?;
        }
        let mut seen = HashSet::new();
        for element in new {
            if !seen.insert(name_key(kind, &element.name)) {
                return Err(RegistryError::Duplicate(duplicate_element(
                    kind,
                    &element.name,
                    namespace,
                )));
            }
            let existing = elements(&txn, id, kind, Some(&element.name))
                .await
                .map_err(|e| db_error(what, e))?;
            if !existing.is_empty() {
                return Err(RegistryError::Duplicate(duplicate_element(
                    kind,
                    &element.name,
                    namespace,
                )));
            }
            insert_element(&txn, namespace, id, kind, element).await?;
        }
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(new.to_vec())
    }

    pub async fn update_element(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        name: &str,
        element: Element,
    ) -> RegistryResult<Element> {
        let what = "updating a namespace's contents";
        let txn = self.begin(what).await?;
        let (id, _) = find_namespace(&txn, ctx, namespace).await?;
        let stored = elements(&txn, id, kind, Some(name))
            .await
            .map_err(|e| db_error(what, e))?
            .pop()
            .ok_or_else(|| element_not_found(kind, name))?;
        if name_key(kind, &element.name) != name_key(kind, name)
            && !elements(&txn, id, kind, Some(&element.name))
                .await
                .map_err(|e| db_error(what, e))?
                .is_empty()
        {
            return Err(RegistryError::Duplicate(duplicate_element(
                kind,
                &element.name,
                namespace,
            )));
        }
        update_element_row(&txn, id, kind, name, &element)
            .await
            .map_err(|e| {
                write_error(
                    what,
                    || duplicate_element(kind, &element.name, namespace),
                    e,
                )
            })?;
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(Element {
            created_at: stored.created_at,
            ..element
        })
    }

    pub async fn delete_elements(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        kind: ElementKind,
        name: Option<&str>,
    ) -> RegistryResult<()> {
        let what = "deleting from a namespace";
        let txn = self.begin(what).await?;
        let (id, _) = find_namespace(&txn, ctx, namespace).await?;
        let deleted = delete_elements_of(&txn, id, kind, name)
            .await
            .map_err(|e| db_error(what, e))?;
        if let (Some(name), 0) = (name, deleted) {
            return Err(element_not_found(kind, name));
        }
        txn.commit().await.map_err(|e| db_error(what, e))
    }

    pub async fn list_resource_types(&self) -> RegistryResult<Vec<ResourceType>> {
        let mut q = Query::select();
        q.from(col(RESOURCE_TYPES))
            .columns([
                col("name"),
                col("protected"),
                col("created_at"),
                col("updated_at"),
            ])
            // In the order they were made, as Glance lists them.
            .order_by(col("id"), Order::Asc);
        let rows = query_all(self.db.writer(), &q)
            .await
            .map_err(|e| db_error("listing resource types", e))?;
        rows.iter()
            .map(|row| {
                Ok(ResourceType {
                    name: get(row, "name")?,
                    protected: get(row, "protected")?,
                    created_at: get(row, "created_at")?,
                    updated_at: get(row, "updated_at")?,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(|e| db_error("listing resource types", e))
    }

    pub async fn create_association(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        association: Association,
    ) -> RegistryResult<Association> {
        let what = "associating a resource type";
        let txn = self.begin(what).await?;
        let (id, _) = find_namespace(&txn, ctx, namespace).await?;
        let existing = associations(&txn, &[id])
            .await
            .map_err(|e| db_error(what, e))?;
        if existing.iter().any(|(_, a)| a.name == association.name) {
            return Err(RegistryError::Duplicate(format!(
                "The metadata definition resource-type association of resource-type={} to namespace={namespace}, already exists.",
                association.name
            )));
        }
        insert_association(&txn, namespace, id, &association).await?;
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(association)
    }

    pub async fn delete_association(
        &self,
        ctx: &RequestContext,
        namespace: &str,
        name: &str,
    ) -> RegistryResult<()> {
        let what = "dissociating a resource type";
        let txn = self.begin(what).await?;
        let (id, _) = find_namespace(&txn, ctx, namespace).await?;
        let mut sub = Query::select();
        sub.column(col("id"))
            .from(col(RESOURCE_TYPES))
            .and_where(Expr::col(col("name")).eq(name));
        let mut q = Query::delete();
        q.from_table(col(ASSOCIATIONS))
            .and_where(Expr::col(col("namespace_id")).eq(id))
            .and_where(Expr::col(col("resource_type_id")).in_subquery(sub));
        let deleted = execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
        if deleted == 0 {
            return Err(metadef_not_found(format!(
                "Metadata definition resource-type-association resource-type={name} namespace={namespace}, was not found."
            )));
        }
        txn.commit().await.map_err(|e| db_error(what, e))
    }

    /// Every namespace with its contents, by name (for `export_metadefs`).
    pub async fn export(&self) -> RegistryResult<Vec<Contents>> {
        let conn = self.db.writer();
        let mut q = namespace_select();
        q.order_by(tcol(NAMESPACES, "namespace"), Order::Asc);
        let rows = query_all(conn, &q)
            .await
            .map_err(|e| db_error("exporting metadefs", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let (id, ns) =
                namespace_from_row(row).map_err(|e| db_error("exporting metadefs", e))?;
            out.push(
                contents_of(conn, id, ns)
                    .await
                    .map_err(|e| db_error("exporting metadefs", e))?,
            );
        }
        Ok(out)
    }

    /// Removes every namespace and resource type (for `unload_metadefs`); returns how many
    /// namespaces went.
    pub async fn unload(&self) -> RegistryResult<u64> {
        let what = "unloading metadefs";
        let txn = self.begin(what).await?;
        let mut removed = 0;
        for t in [
            "metadef_objects",
            "metadef_properties",
            "metadef_tags",
            ASSOCIATIONS,
            NAMESPACES,
            RESOURCE_TYPES,
        ] {
            let mut q = Query::delete();
            q.from_table(col(t));
            let n = execute(&txn, &q).await.map_err(|e| db_error(what, e))?;
            if t == NAMESPACES {
                removed = n;
            }
        }
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(removed)
    }

    /// Loads a catalog in one transaction: either every namespace is handled as `mode`
    /// says, or nothing changes.
    pub async fn load(&self, catalog: &[Contents], mode: LoadMode) -> RegistryResult<Vec<Loaded>> {
        let what = "loading metadefs";
        let admin = RequestContext::admin("glance-manage");
        let txn = self.begin(what).await?;
        let mut report = Vec::with_capacity(catalog.len());
        for contents in catalog {
            let name = contents.namespace.namespace.clone();
            let existing = match find_namespace(&txn, &admin, &name).await {
                Ok(found) => Some(found),
                Err(RegistryError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let Some((id, stored)) = existing else {
                insert_contents(&txn, contents).await?;
                report.push(Loaded::Created(name));
                continue;
            };
            match mode {
                LoadMode::Skip => report.push(Loaded::Skipped(name)),
                LoadMode::Overwrite => {
                    delete_namespace_rows(&txn, id)
                        .await
                        .map_err(|e| db_error(what, e))?;
                    insert_contents(&txn, contents).await?;
                    report.push(Loaded::Replaced(name));
                }
                LoadMode::Merge | LoadMode::PreferNew => {
                    let prefer_new = mode == LoadMode::PreferNew;
                    merge(&txn, id, stored, contents, prefer_new).await?;
                    report.push(Loaded::Merged(name));
                }
            }
        }
        txn.commit().await.map_err(|e| db_error(what, e))?;
        Ok(report)
    }
}

/// Glance's merge of a file into a stored namespace: what the database lacks is added;
/// with `prefer_new` the file's version of the namespace's fields and of every element and
/// association both have wins.
async fn merge(
    txn: &DatabaseTransaction,
    id: i32,
    stored: Namespace,
    new: &Contents,
    prefer_new: bool,
) -> RegistryResult<()> {
    let what = "merging metadefs";
    let ns = &stored.namespace;
    if prefer_new {
        let update = Namespace {
            created_at: stored.created_at,
            ..new.namespace.clone()
        };
        update_namespace_row(txn, id, &update)
            .await
            .map_err(|e| db_error(what, e))?;
    }
    for kind in [ElementKind::Object, ElementKind::Property, ElementKind::Tag] {
        let have: HashSet<String> = elements(txn, id, kind, None)
            .await
            .map_err(|e| db_error(what, e))?
            .into_iter()
            .map(|e| name_key(kind, &e.name))
            .collect();
        for element in new.elements(kind) {
            if !have.contains(&name_key(kind, &element.name)) {
                insert_element(txn, ns, id, kind, element).await?;
            } else if prefer_new {
                update_element_row(txn, id, kind, &element.name, element)
                    .await
                    .map_err(|e| db_error(what, e))?;
            }
        }
    }
    let have = associations(txn, &[id])
        .await
        .map_err(|e| db_error(what, e))?;
    for a in &new.associations {
        if !have.iter().any(|(_, h)| h.name == a.name) {
            insert_association(txn, ns, id, a).await?;
        } else if prefer_new {
            let mut sub = Query::select();
            sub.column(col("id"))
                .from(col(RESOURCE_TYPES))
                .and_where(Expr::col(col("name")).eq(a.name.clone()));
            let mut q = Query::update();
            q.table(col(ASSOCIATIONS))
                .value(col("prefix"), a.prefix.clone())
                .value(col("properties_target"), a.properties_target.clone())
                .value(col("updated_at"), a.updated_at)
                .and_where(Expr::col(col("namespace_id")).eq(id))
                .and_where(Expr::col(col("resource_type_id")).in_subquery(sub));
            execute(txn, &q).await.map_err(|e| db_error(what, e))?;
        }
    }
    Ok(())
}
