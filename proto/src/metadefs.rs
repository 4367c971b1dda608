//! Metadata definitions (Glance's metadefs catalog): namespaces, their objects, properties
//! and tags, and the resource types namespaces are associated with.
//!
//! The registry keeps the catalog; the API validates and renders it. Objects and
//! properties travel as the JSON documents the API accepted (their `body`), so the registry
//! stores what it is given and never needs to know Glance's property schema.
//!
//! Visibility is the registry's: every request carries the caller's context, and a caller
//! who is not an admin sees public namespaces and their own project's private ones only.

use std::fmt;

use chrono::{DateTime, Utc};
use glance_domain::RequestContext;
use serde::{Deserialize, Serialize};

use crate::registry::RegistryResult;
use crate::{names::REGISTRY_QUEUE, Rpc};

/// A namespace's own fields (`namespace` is its unique name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub namespace: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: String,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub owner: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// What lives inside a namespace under a unique name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementKind {
    Object,
    Property,
    Tag,
}

impl ElementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ElementKind::Object => "object",
            ElementKind::Property => "property",
            ElementKind::Tag => "tag",
        }
    }
}

impl fmt::Display for ElementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object, a property or a tag. `body` is the rest of the document without its name
/// (an object's `description`, `required` and `properties`; a property's schema; `{}` for
/// a tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    pub name: String,
    #[serde(default)]
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A namespace's association with a resource type (`OS::Glance::Image`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Association {
    /// The resource type's name.
    pub name: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub properties_target: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl Association {
    /// Its name, prefix and properties target as Glance writes them (in a definition file
    /// and in the API, which adds the timestamps): the optional ones only when set.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        if let Some(p) = &self.prefix {
            m.insert("prefix".into(), p.clone().into());
        }
        if let Some(t) = &self.properties_target {
            m.insert("properties_target".into(), t.clone().into());
        }
        m
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceType {
    pub name: String,
    #[serde(default)]
    pub protected: bool,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A namespace with everything in it: what a namespace-show renders, what a create with
/// nested contents inserts, and one file of `glance-manage db load_metadefs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contents {
    pub namespace: Namespace,
    #[serde(default)]
    pub associations: Vec<Association>,
    #[serde(default)]
    pub objects: Vec<Element>,
    #[serde(default)]
    pub properties: Vec<Element>,
    #[serde(default)]
    pub tags: Vec<Element>,
}

impl Contents {
    pub fn elements(&self, kind: ElementKind) -> &[Element] {
        match kind {
            ElementKind::Object => &self.objects,
            ElementKind::Property => &self.properties,
            ElementKind::Tag => &self.tags,
        }
    }
}

/// A namespace as listed: its fields and its resource type associations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedNamespace {
    pub namespace: Namespace,
    #[serde(default)]
    pub associations: Vec<Association>,
}

/// A page of the namespaces the caller may see.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListNamespaces {
    pub ctx: RequestContext,
    /// Only `public` or only `private` ones.
    #[serde(default)]
    pub visibility: Option<String>,
    /// Only namespaces associated with one of these resource types.
    #[serde(default)]
    pub resource_types: Vec<String>,
    /// The name of the last namespace of the previous page.
    #[serde(default)]
    pub marker: Option<String>,
    pub limit: u32,
    /// `namespace`, `created_at` or `updated_at`.
    pub sort_key: String,
    #[serde(default)]
    pub ascending: bool,
}

impl Rpc for ListNamespaces {
    const NAME: &'static str = "registry.metadefs.list_namespaces";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<ListedNamespace>>;
}

/// One namespace with its contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetNamespace {
    pub ctx: RequestContext,
    pub namespace: String,
}

impl Rpc for GetNamespace {
    const NAME: &'static str = "registry.metadefs.get_namespace";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Contents>;
}

/// A new namespace with whatever it contains, all or nothing. Resource types named by
/// its associations are created when unknown. A taken name is `Duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateNamespace {
    pub ctx: RequestContext,
    pub contents: Contents,
}

impl Rpc for CreateNamespace {
    const NAME: &'static str = "registry.metadefs.create_namespace";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Contents>;
}

/// Replaces a namespace's fields (a new `namespace` renames it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateNamespace {
    pub ctx: RequestContext,
    pub namespace: String,
    pub update: Namespace,
}

impl Rpc for UpdateNamespace {
    const NAME: &'static str = "registry.metadefs.update_namespace";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Namespace>;
}

/// Deletes a namespace and everything in it; a protected one is `Conflict`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteNamespace {
    pub ctx: RequestContext,
    pub namespace: String,
}

impl Rpc for DeleteNamespace {
    const NAME: &'static str = "registry.metadefs.delete_namespace";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<()>;
}

/// A namespace's objects, properties or tags, in the order they were added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListElements {
    pub ctx: RequestContext,
    pub namespace: String,
    pub kind: ElementKind,
}

impl Rpc for ListElements {
    const NAME: &'static str = "registry.metadefs.list_elements";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Element>>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetElement {
    pub ctx: RequestContext,
    pub namespace: String,
    pub kind: ElementKind,
    pub name: String,
}

impl Rpc for GetElement {
    const NAME: &'static str = "registry.metadefs.get_element";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Element>;
}

/// Adds elements of one kind, all or nothing; a name already there (or twice in
/// `elements`) is `Duplicate`. With `replace`, the namespace's elements of that kind are
/// removed first (Glance's create-many tags without `X-Openstack-Append: true`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateElements {
    pub ctx: RequestContext,
    pub namespace: String,
    pub kind: ElementKind,
    pub elements: Vec<Element>,
    #[serde(default)]
    pub replace: bool,
}

impl Rpc for CreateElements {
    const NAME: &'static str = "registry.metadefs.create_elements";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Element>>;
}

/// Replaces element `name` with `element` (a new name renames it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateElement {
    pub ctx: RequestContext,
    pub namespace: String,
    pub kind: ElementKind,
    pub name: String,
    pub element: Element,
}

impl Rpc for UpdateElement {
    const NAME: &'static str = "registry.metadefs.update_element";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Element>;
}

/// Deletes element `name`, or with `None` every element of that kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteElements {
    pub ctx: RequestContext,
    pub namespace: String,
    pub kind: ElementKind,
    #[serde(default)]
    pub name: Option<String>,
}

impl Rpc for DeleteElements {
    const NAME: &'static str = "registry.metadefs.delete_elements";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<()>;
}

/// Every resource type, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResourceTypes {
    pub ctx: RequestContext,
}

impl Rpc for ListResourceTypes {
    const NAME: &'static str = "registry.metadefs.list_resource_types";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<ResourceType>>;
}

/// Associates a namespace with a resource type, creating the type when unknown; an
/// existing association is `Duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAssociation {
    pub ctx: RequestContext,
    pub namespace: String,
    pub association: Association,
}

impl Rpc for CreateAssociation {
    const NAME: &'static str = "registry.metadefs.create_association";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Association>;
}

/// Removes a namespace's association with resource type `name` (the type stays).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteAssociation {
    pub ctx: RequestContext,
    pub namespace: String,
    pub name: String,
}

impl Rpc for DeleteAssociation {
    const NAME: &'static str = "registry.metadefs.delete_association";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<()>;
}

/// Members of an object or element document that are the server's, not the definition's.
const READ_ONLY: &[&str] = &["name", "self", "schema", "created_at", "updated_at"];

fn text(doc: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    doc.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

impl Element {
    /// An element named `name` with the rest of `doc` (read-only members dropped) as body.
    pub fn from_document(doc: &serde_json::Value, now: DateTime<Utc>) -> Element {
        let mut body = doc.as_object().cloned().unwrap_or_default();
        let name = text(&body, "name").unwrap_or_default();
        body.retain(|k, _| !READ_ONLY.contains(&k.as_str()));
        Element {
            name,
            body: serde_json::Value::Object(body),
            created_at: now,
            updated_at: Some(now),
        }
    }

    /// The definition as written in a file: its name and its body.
    pub fn to_document(&self) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("name".into(), self.name.clone().into());
        if let serde_json::Value::Object(body) = &self.body {
            doc.extend(body.clone());
        }
        serde_json::Value::Object(doc)
    }
}

impl Association {
    pub fn from_document(doc: &serde_json::Value, now: DateTime<Utc>) -> Association {
        let doc = doc.as_object().cloned().unwrap_or_default();
        Association {
            name: text(&doc, "name").unwrap_or_default(),
            prefix: text(&doc, "prefix"),
            properties_target: text(&doc, "properties_target"),
            created_at: now,
            updated_at: Some(now),
        }
    }
}

impl Contents {
    /// A namespace document in Glance's shape (the API's create body, and one definition
    /// file of `glance-manage db load_metadefs`), checked against Glance's namespace
    /// schema. `owner` is used when the document names none; `updated_at` is what the new
    /// rows get (the API sets it, Glance's loader leaves it empty).
    pub fn from_document(
        doc: &serde_json::Value,
        owner: Option<String>,
        now: DateTime<Utc>,
        updated_at: Option<DateTime<Utc>>,
    ) -> Result<Contents, glance_domain::metadef::SchemaError> {
        glance_domain::metadef::check_namespace(doc)?;
        let map = doc.as_object().cloned().unwrap_or_default();
        let list = |key: &str| {
            map.get(key)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        let stamp = |mut e: Element| {
            e.updated_at = updated_at;
            e
        };
        let properties = map
            .get("properties")
            .and_then(|v| v.as_object())
            .map(|props| {
                props
                    .iter()
                    .map(|(name, body)| {
                        let mut body = body.as_object().cloned().unwrap_or_default();
                        body.remove("name");
                        stamp(Element {
                            name: name.clone(),
                            body: serde_json::Value::Object(body),
                            created_at: now,
                            updated_at: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Contents {
            namespace: Namespace {
                namespace: text(&map, "namespace").unwrap_or_default(),
                display_name: text(&map, "display_name"),
                description: text(&map, "description"),
                visibility: text(&map, "visibility").unwrap_or_else(|| "private".into()),
                protected: map
                    .get("protected")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
                owner: text(&map, "owner").or(owner),
                created_at: now,
                updated_at,
            },
            associations: list("resource_type_associations")
                .iter()
                .map(|a| Association {
                    updated_at,
                    ..Association::from_document(a, now)
                })
                .collect(),
            objects: list("objects")
                .iter()
                .map(|o| stamp(Element::from_document(o, now)))
                .collect(),
            properties,
            tags: list("tags")
                .iter()
                .map(|t| {
                    let mut tag = stamp(Element::from_document(t, now));
                    tag.body = serde_json::json!({});
                    tag
                })
                .collect(),
        })
    }

    /// The namespace as a definition file (what `export_metadefs` writes and
    /// `load_metadefs` reads back): Glance's file format, without timestamps.
    pub fn to_document(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let ns = &self.namespace;
        let mut doc = Map::new();
        doc.insert("namespace".into(), json!(ns.namespace));
        for (key, value) in [
            ("display_name", &ns.display_name),
            ("description", &ns.description),
        ] {
            if let Some(v) = value {
                doc.insert(key.into(), json!(v));
            }
        }
        doc.insert("visibility".into(), json!(ns.visibility));
        doc.insert("protected".into(), json!(ns.protected));
        if let Some(owner) = &ns.owner {
            doc.insert("owner".into(), json!(owner));
        }
        let associations: Vec<Value> = self
            .associations
            .iter()
            .map(|a| Value::Object(a.fields()))
            .collect();
        doc.insert(
            "resource_type_associations".into(),
            Value::Array(associations),
        );
        let properties: Map<String, Value> = self
            .properties
            .iter()
            .map(|p| (p.name.clone(), p.body.clone()))
            .collect();
        doc.insert("properties".into(), Value::Object(properties));
        doc.insert(
            "objects".into(),
            Value::Array(self.objects.iter().map(Element::to_document).collect()),
        );
        doc.insert(
            "tags".into(),
            Value::Array(self.tags.iter().map(|t| json!({"name": t.name})).collect()),
        );
        Value::Object(doc)
    }
}
