//! Metadefs as Glance renders them: members that are unset are left out (WSME's
//! rendering), timestamps to the second.

use glance_proto::metadefs::{Association, Contents, Element, Namespace, ResourceType};
use serde_json::{json, Map, Value};

use crate::images::view::timestamp;

pub fn namespace_href(name: &str) -> String {
    format!("/v2/metadefs/namespaces/{name}")
}

fn times(
    m: &mut Map<String, Value>,
    created: &chrono::DateTime<chrono::Utc>,
    updated: &Option<chrono::DateTime<chrono::Utc>>,
) {
    m.insert("created_at".into(), json!(timestamp(created)));
    if let Some(u) = updated {
        m.insert("updated_at".into(), json!(timestamp(u)));
    }
}

pub fn association(a: &Association) -> Value {
    let mut m = a.fields();
    times(&mut m, &a.created_at, &a.updated_at);
    Value::Object(m)
}

pub fn resource_type(r: &ResourceType) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(r.name));
    times(&mut m, &r.created_at, &r.updated_at);
    Value::Object(m)
}

/// The namespace's own members (no contents), with `self` and `schema`.
fn namespace_fields(ns: &Namespace) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("namespace".into(), json!(ns.namespace));
    if let Some(d) = &ns.display_name {
        m.insert("display_name".into(), json!(d));
    }
    if let Some(d) = &ns.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("visibility".into(), json!(ns.visibility));
    m.insert("protected".into(), json!(ns.protected));
    if let Some(o) = &ns.owner {
        m.insert("owner".into(), json!(o));
    }
    times(&mut m, &ns.created_at, &ns.updated_at);
    m
}

fn finish(mut m: Map<String, Value>, ns: &Namespace) -> Value {
    m.insert("self".into(), json!(namespace_href(&ns.namespace)));
    m.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    Value::Object(m)
}

pub fn namespace(ns: &Namespace) -> Value {
    finish(namespace_fields(ns), ns)
}

/// A namespace in a list: its members and its associations.
pub fn listed(ns: &Namespace, associations: &[Association]) -> Value {
    let mut m = namespace_fields(ns);
    if !associations.is_empty() {
        m.insert(
            "resource_type_associations".into(),
            associations.iter().map(association).collect(),
        );
    }
    finish(m, ns)
}

/// Prefixes property names (and an object's required names) with the prefix of the
/// association with `resource_type`, as Glance's namespace-show does with
/// `?resource_type=`.
fn prefixed(name: &str, prefix: Option<&str>) -> String {
    format!("{}{name}", prefix.unwrap_or_default())
}

/// A namespace with everything in it (namespace-show), tags newest first as Glance lists
/// them.
pub fn contents(c: &Contents, resource_type: Option<&str>) -> Value {
    let prefix = resource_type.and_then(|rt| {
        c.associations
            .iter()
            .find(|a| a.name == rt)
            .and_then(|a| a.prefix.as_deref())
    });
    let mut m = namespace_fields(&c.namespace);
    if !c.associations.is_empty() {
        m.insert(
            "resource_type_associations".into(),
            c.associations.iter().map(association).collect(),
        );
    }
    if !c.properties.is_empty() {
        let props: Map<String, Value> = c
            .properties
            .iter()
            .map(|p| (prefixed(&p.name, prefix), property_body(&p.body)))
            .collect();
        m.insert("properties".into(), Value::Object(props));
    }
    if !c.objects.is_empty() {
        m.insert(
            "objects".into(),
            c.objects
                .iter()
                .map(|o| {
                    let mut doc = object(&c.namespace.namespace, o);
                    if prefix.is_some() {
                        prefix_object(&mut doc, prefix);
                    }
                    doc
                })
                .collect(),
        );
    }
    if !c.tags.is_empty() {
        m.insert(
            "tags".into(),
            c.tags
                .iter()
                .rev()
                .map(|t| json!({"name": t.name}))
                .collect(),
        );
    }
    finish(m, &c.namespace)
}

fn prefix_object(doc: &mut Value, prefix: Option<&str>) {
    if let Some(Value::Object(props)) = doc.get_mut("properties") {
        let renamed: Map<String, Value> = std::mem::take(props)
            .into_iter()
            .map(|(k, v)| (prefixed(&k, prefix), v))
            .collect();
        *props = renamed;
    }
    if let Some(Value::Array(required)) = doc.get_mut("required") {
        for r in required.iter_mut() {
            if let Value::String(s) = r {
                *s = prefixed(s, prefix);
            }
        }
    }
}

/// An object as shown and listed: `required` and `properties` are always there.
pub fn object(namespace: &str, o: &Element) -> Value {
    object_as(namespace, o, true)
}

/// An object as a create or update answers it: what the request gave, without defaults
/// (Glance renders the request's object there).
pub fn object_as(namespace: &str, o: &Element, defaults: bool) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(o.name));
    if defaults {
        m.insert("required".into(), json!([]));
        m.insert("properties".into(), json!({}));
    }
    if let Value::Object(body) = &o.body {
        for (k, v) in body {
            let v = if k == "properties" {
                property_map(v)
            } else {
                v.clone()
            };
            m.insert(k.clone(), v);
        }
    }
    times(&mut m, &o.created_at, &o.updated_at);
    m.insert(
        "self".into(),
        json!(format!("{}/objects/{}", namespace_href(namespace), o.name)),
    );
    m.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(m)
}

/// A namespace-create's answer: the namespace, and its contents as the request gave them
/// (definitions without timestamps or links), as Glance answers it.
pub fn created(c: &Contents) -> Value {
    let mut m = namespace_fields(&c.namespace);
    if !c.associations.is_empty() {
        let docs: Vec<Value> = c
            .associations
            .iter()
            .map(|a| {
                let mut d = association(a);
                if let Value::Object(m) = &mut d {
                    m.remove("created_at");
                    m.remove("updated_at");
                }
                d
            })
            .collect();
        m.insert("resource_type_associations".into(), Value::Array(docs));
    }
    if !c.properties.is_empty() {
        let props: Map<String, Value> = c
            .properties
            .iter()
            .map(|p| (p.name.clone(), property_body(&p.body)))
            .collect();
        m.insert("properties".into(), Value::Object(props));
    }
    if !c.objects.is_empty() {
        m.insert(
            "objects".into(),
            c.objects.iter().map(Element::to_document).collect(),
        );
    }
    if !c.tags.is_empty() {
        m.insert(
            "tags".into(),
            c.tags.iter().map(|t| json!({"name": t.name})).collect(),
        );
    }
    finish(m, &c.namespace)
}

/// A property: its name and its schema.
pub fn property(p: &Element) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(p.name));
    if let Value::Object(body) = property_body(&p.body) {
        m.extend(body);
    }
    Value::Object(m)
}

/// A property's schema as Glance renders it: its WSME model types `default` as a string,
/// so a numeric default (`"default": 8` in a definition file) is shown as `"8"`.
pub fn property_body(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(Value::Number(n)) = body.get("default").cloned() {
        body["default"] = Value::String(n.to_string());
    }
    body
}

/// The `properties` map of a namespace or an object, rendered as [`property_body`].
pub fn property_map(props: &Value) -> Value {
    match props {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), property_body(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn tag(t: &Element) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(t.name));
    times(&mut m, &t.created_at, &t.updated_at);
    Value::Object(m)
}
