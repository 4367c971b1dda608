//! The shapes Glance accepts for metadata definitions (its `/v2/schemas/metadefs/*`
//! documents), checked by hand: the API checks request bodies with them and
//! `glance-manage db load_metadefs` checks definition files, so both refuse the same things
//! with the same words.

use serde_json::{Map, Value};

/// Why a document does not match its schema, and where (`properties.hw_cpu_policy.type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    /// Dotted path of the offending member; empty for the document itself.
    pub path: String,
    /// jsonschema's wording, as Glance shows it.
    pub message: String,
}

impl SchemaError {
    fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    fn within(mut self, prefix: &str) -> Self {
        self.path = join(prefix, &self.path);
        self
    }
}

fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_owned(),
        (_, true) => prefix.to_owned(),
        _ => format!("{prefix}.{rest}"),
    }
}

/// Property types Glance knows (`null` is allowed too, as its schema's enum has `None`).
pub const PROPERTY_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

#[derive(Clone, Copy)]
enum Kind {
    Any,
    Str(Option<usize>),
    Bool,
    Number,
    NonNegativeInt,
    Array,
    StringArray,
    /// Strings, unique (`stringArray`).
    UniqueStrings,
    Type,
    Items,
}

const PROPERTY_MEMBERS: &[(&str, Kind)] = &[
    ("name", Kind::Str(Some(80))),
    ("title", Kind::Str(None)),
    ("description", Kind::Str(None)),
    ("operators", Kind::StringArray),
    ("type", Kind::Type),
    ("required", Kind::UniqueStrings),
    ("minimum", Kind::Number),
    ("maximum", Kind::Number),
    ("maxLength", Kind::NonNegativeInt),
    ("minLength", Kind::NonNegativeInt),
    ("pattern", Kind::Str(None)),
    ("enum", Kind::Array),
    ("readonly", Kind::Bool),
    ("default", Kind::Any),
    ("items", Kind::Items),
    ("maxItems", Kind::NonNegativeInt),
    ("minItems", Kind::NonNegativeInt),
    ("uniqueItems", Kind::Bool),
    ("additionalItems", Kind::Bool),
];

const OBJECT_MEMBERS: &[(&str, Kind)] = &[
    ("name", Kind::Str(Some(80))),
    ("description", Kind::Str(None)),
    ("required", Kind::UniqueStrings),
    ("properties", Kind::Any),
    ("schema", Kind::Str(None)),
    ("self", Kind::Str(None)),
    ("created_at", Kind::Str(None)),
    ("updated_at", Kind::Str(None)),
];

const TAG_MEMBERS: &[(&str, Kind)] = &[
    ("name", Kind::Str(Some(80))),
    ("created_at", Kind::Str(None)),
    ("updated_at", Kind::Str(None)),
];

const ASSOCIATION_MEMBERS: &[(&str, Kind)] = &[
    ("name", Kind::Str(Some(80))),
    ("prefix", Kind::Str(Some(80))),
    ("properties_target", Kind::Str(Some(80))),
    ("created_at", Kind::Str(None)),
    ("updated_at", Kind::Str(None)),
];

const NAMESPACE_MEMBERS: &[(&str, Kind)] = &[
    ("namespace", Kind::Str(Some(80))),
    ("display_name", Kind::Str(Some(80))),
    ("description", Kind::Str(Some(500))),
    ("visibility", Kind::Any),
    ("protected", Kind::Bool),
    ("owner", Kind::Str(Some(255))),
    ("created_at", Kind::Str(None)),
    ("updated_at", Kind::Str(None)),
    ("schema", Kind::Str(None)),
    ("self", Kind::Str(None)),
    ("resource_type_associations", Kind::Any),
    ("properties", Kind::Any),
    ("objects", Kind::Any),
    ("tags", Kind::Any),
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn not_of_type(v: &Value, want: &str) -> String {
    format!("{v} is not of type '{want}'")
}

fn check_kind(path: &str, v: &Value, kind: Kind) -> Result<(), SchemaError> {
    let bad = |msg: String| Err(SchemaError::new(path, msg));
    match kind {
        Kind::Any => Ok(()),
        Kind::Str(max) => match v {
            Value::String(s) => match max {
                Some(max) if s.chars().count() > max => {
                    bad(format!("{v} is too long (at most {max} characters)"))
                }
                _ => Ok(()),
            },
            _ => bad(not_of_type(v, "string")),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            _ => bad(not_of_type(v, "boolean")),
        },
        Kind::Number => match v {
            Value::Number(_) => Ok(()),
            _ => bad(not_of_type(v, "number")),
        },
        Kind::NonNegativeInt => match v.as_i64() {
            Some(n) if n >= 0 && type_name(v) == "integer" => Ok(()),
            Some(_) => bad(format!("{v} is less than the minimum of 0")),
            None => bad(not_of_type(v, "integer")),
        },
        Kind::Array => match v {
            Value::Array(_) => Ok(()),
            _ => bad(not_of_type(v, "array")),
        },
        Kind::StringArray | Kind::UniqueStrings => {
            let Value::Array(items) = v else {
                return bad(not_of_type(v, "array"));
            };
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return Err(SchemaError::new(
                        &join(path, &i.to_string()),
                        not_of_type(item, "string"),
                    ));
                }
            }
            if matches!(kind, Kind::UniqueStrings) {
                let mut seen = std::collections::HashSet::new();
                if !items.iter().all(|i| seen.insert(i.as_str())) {
                    return bad(format!("{v} has non-unique elements"));
                }
            }
            Ok(())
        }
        Kind::Type => match v {
            Value::Null => Ok(()),
            Value::String(s) if PROPERTY_TYPES.contains(&s.as_str()) => Ok(()),
            _ => bad(format!(
                "{v} is not one of ['array', 'boolean', 'integer', 'number', 'object', 'string', None]"
            )),
        },
        Kind::Items => {
            let Value::Object(m) = v else {
                return bad(not_of_type(v, "object"));
            };
            if let Some(t) = m.get("type") {
                check_kind(&join(path, "type"), t, Kind::Type)?;
            }
            if let Some(e) = m.get("enum") {
                check_kind(&join(path, "enum"), e, Kind::Array)?;
            }
            Ok(())
        }
    }
}

fn check_members(
    doc: &Map<String, Value>,
    members: &[(&str, Kind)],
    required: &[&str],
    closed: bool,
) -> Result<(), SchemaError> {
    for name in required {
        if !doc.contains_key(*name) {
            return Err(SchemaError::new(
                "",
                format!("'{name}' is a required property"),
            ));
        }
    }
    for (key, value) in doc {
        match members.iter().find(|(k, _)| *k == key) {
            Some((_, kind)) => check_kind(key, value, *kind)?,
            None if closed => {
                return Err(SchemaError::new(
                    "",
                    format!("Additional properties are not allowed ('{key}' was unexpected)"),
                ))
            }
            None => {}
        }
    }
    Ok(())
}

fn as_object<'a>(path: &str, v: &'a Value) -> Result<&'a Map<String, Value>, SchemaError> {
    v.as_object()
        .ok_or_else(|| SchemaError::new(path, not_of_type(v, "object")))
}

/// A property document as `POST .../properties` takes it (Glance's `property` schema):
/// `name`, `title` and `type` required, nothing else than the schema's members.
pub fn check_property(doc: &Value) -> Result<(), SchemaError> {
    let doc = as_object("", doc)?;
    check_members(doc, PROPERTY_MEMBERS, &["type", "title", "name"], true)
}

/// A property inside a namespace or an object (keyed by its name): `title` and `type`
/// required; other members are not refused, as the namespace schema leaves them open.
pub fn check_nested_property(doc: &Value) -> Result<(), SchemaError> {
    let doc = as_object("", doc)?;
    check_members(doc, PROPERTY_MEMBERS, &["title", "type"], false)
}

/// A map of property name to property, as in a namespace's or an object's `properties`.
pub fn check_properties(path: &str, doc: &Value) -> Result<(), SchemaError> {
    let doc = as_object(path, doc)?;
    for (name, prop) in doc {
        check_nested_property(prop).map_err(|e| e.within(&join(path, name)))?;
    }
    Ok(())
}

/// An object document (Glance's `object` schema).
pub fn check_object(doc: &Value) -> Result<(), SchemaError> {
    let map = as_object("", doc)?;
    check_members(map, OBJECT_MEMBERS, &["name"], true)?;
    if let Some(props) = map.get("properties") {
        check_properties("properties", props)?;
    }
    Ok(())
}

/// A tag document (Glance's `tag` schema).
pub fn check_tag(doc: &Value) -> Result<(), SchemaError> {
    check_members(as_object("", doc)?, TAG_MEMBERS, &["name"], true)
}

/// A resource type association (Glance's `resource_type_association` schema).
pub fn check_association(doc: &Value) -> Result<(), SchemaError> {
    check_members(as_object("", doc)?, ASSOCIATION_MEMBERS, &["name"], true)
}

/// A namespace document with whatever it nests (Glance's `namespace` schema), as
/// `POST /v2/metadefs/namespaces` takes it and as Glance's definition files are written.
pub fn check_namespace(doc: &Value) -> Result<(), SchemaError> {
    let map = as_object("", doc)?;
    check_members(map, NAMESPACE_MEMBERS, &["namespace"], true)?;
    if let Some(v) = map.get("visibility") {
        if !matches!(v.as_str(), Some("public" | "private")) {
            return Err(SchemaError::new(
                "visibility",
                format!("{v} is not one of ['public', 'private']"),
            ));
        }
    }
    let list = |key: &str, check: fn(&Value) -> Result<(), SchemaError>| {
        let Some(v) = map.get(key) else {
            return Ok(());
        };
        let Value::Array(items) = v else {
            return Err(SchemaError::new(key, not_of_type(v, "array")));
        };
        for (i, item) in items.iter().enumerate() {
            check(item).map_err(|e| e.within(&format!("{key}.{i}")))?;
        }
        Ok(())
    };
    list("resource_type_associations", check_association)?;
    list("objects", check_object)?;
    list("tags", check_tag)?;
    if let Some(props) = map.get("properties") {
        check_properties("properties", props)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_property_needs_a_name_a_title_and_a_known_type() {
        assert!(check_property(&json!({"name": "p", "title": "P", "type": "string"})).is_ok());
        let e = check_property(&json!({"name": "p", "type": "string"})).unwrap_err();
        assert_eq!(e.message, "'title' is a required property");
        let e = check_property(&json!({"name": "p", "title": "P", "type": "bogus"})).unwrap_err();
        assert_eq!(e.path, "type");
        let e = check_property(&json!({"name": "p", "title": "P", "type": "string", "foo": 1}))
            .unwrap_err();
        assert!(e.message.contains("'foo' was unexpected"), "{e}");
        assert!(check_property(
            &json!({"name": "p", "title": "P", "type": "integer", "minimum": "1"})
        )
        .is_err());
        assert!(check_property(
            &json!({"name": "p", "title": "P", "type": "string", "maxLength": -1})
        )
        .is_err());
    }

    #[test]
    fn a_namespace_error_names_the_nested_field() {
        let e = check_namespace(&json!({
            "namespace": "N",
            "objects": [{"name": "o", "properties": {"p": {"title": "P", "type": 7}}}]
        }))
        .unwrap_err();
        assert_eq!(e.path, "objects.0.properties.p.type");
        let e = check_namespace(&json!({"namespace": "N", "visibility": "shared"})).unwrap_err();
        assert_eq!(e.path, "visibility");
        assert!(check_namespace(&json!({"display_name": "x"})).is_err());
    }
}
