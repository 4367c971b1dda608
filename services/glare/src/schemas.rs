//! `/schemas` and `/schemas/{type}`: each type's JSON schema, built from its field table
//! with Glare's extra keys (`glareType`, `filter_ops`, `sortable`, `mutable`,
//! `required_on_activate`, `readOnly`).

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use crate::error::{GlareError, GlareResult};
use crate::identity::Caller;
use crate::types::{ArtifactType, Default, Field, Kind, TYPES};

const UUID_PATTERN: &str = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-\
                            ([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";
const SEMVER_PATTERN: &str = "/^([0-9]+)\\.([0-9]+)\\.([0-9]+)(?:-([0-9A-Za-z-]+\
                              (?:\\.[0-9A-Za-z-]+)*))?(?:\\+[0-9A-Za-z-]+)?$/";

fn blob_schema() -> Value {
    let nullable = |t: &str| json!({"type": [t, "null"]});
    json!({
        "type": ["object", "null"],
        "properties": {
            "size": nullable("number"),
            "md5": nullable("string"),
            "sha1": nullable("string"),
            "sha256": nullable("string"),
            "external": {"type": "boolean"},
            "status": {"type": "string", "enum": ["saving", "active"]},
            "content_type": {"type": "string"},
        },
        "required": ["size", "md5", "sha1", "sha256", "external", "status", "content_type"],
        "additionalProperties": false,
    })
}

fn json_type(f: &Field, base: &str) -> Value {
    if f.nullable {
        json!([base, "null"])
    } else {
        json!(base)
    }
}

fn field_schema(f: &Field) -> Value {
    let mut s = Map::new();
    let string_item = |f: &Field| {
        let mut item = json!({"type": "string"});
        if let Some(n) = f.max_length {
            item["maxLength"] = json!(n);
        }
        item
    };
    match f.kind {
        Kind::String => {
            s.insert("type".into(), json_type(f, "string"));
            if let Some(n) = f.max_length {
                s.insert("maxLength".into(), json!(n));
            }
            if !f.allowed.is_empty() {
                s.insert("enum".into(), json!(f.allowed));
            }
            if f.uuid {
                s.insert("pattern".into(), json!(UUID_PATTERN));
            }
            if f.name == "version" {
                s.insert("pattern".into(), json!(SEMVER_PATTERN));
            }
            if f.name == "name" {
                s.insert("minLength".into(), json!(1));
            }
        }
        Kind::Integer => {
            s.insert("type".into(), json_type(f, "integer"));
            if let Some(n) = f.minimum {
                s.insert("minimum".into(), json!(n));
            }
        }
        Kind::DateTime => {
            s.insert("type".into(), json_type(f, "string"));
            s.insert("format".into(), json!("date-time"));
        }
        Kind::StringList | Kind::LinkList => {
            s.insert("type".into(), json_type(f, "array"));
            s.insert("maxItems".into(), json!(255));
            let mut item = if f.kind == Kind::LinkList {
                json!({"type": "string"})
            } else {
                string_item(f)
            };
            if f.name == "class_definitions" {
                s.insert("uniqueItems".into(), json!(true));
            }
            if f.name == "tags" {
                s.insert("uniqueItems".into(), json!(true));
                item["pattern"] = json!("^[^,/]+$");
                item["minLength"] = json!(1);
            }
            s.insert("items".into(), item);
        }
        Kind::StringDict | Kind::LinkDict => {
            s.insert("type".into(), json_type(f, "object"));
            s.insert("maxProperties".into(), json!(255));
            let item = if f.kind == Kind::LinkDict {
                json!({"type": "string"})
            } else {
                string_item(f)
            };
            let mut item = item;
            if f.name == "metadata" {
                item["minLength"] = json!(1);
            }
            s.insert("additionalProperties".into(), item);
        }
        Kind::Blob => {
            if let Value::Object(blob) = blob_schema() {
                s.extend(blob);
            }
        }
        Kind::BlobDict => {
            s.insert("type".into(), json_type(f, "object"));
            s.insert("maxProperties".into(), json!(255));
            s.insert("additionalProperties".into(), blob_schema());
        }
    }
    s.insert("glareType".into(), json!(f.kind.glare_type()));
    s.insert("description".into(), json!(f.description));
    if f.system {
        s.insert("readOnly".into(), json!(true));
    }
    if f.mutable {
        s.insert("mutable".into(), json!(true));
    }
    if f.sortable {
        s.insert("sortable".into(), json!(true));
    }
    if !f.required_on_activate {
        s.insert("required_on_activate".into(), json!(false));
    }
    match f.default {
        Default::Null => {}
        Default::Str(v) => {
            s.insert("default".into(), json!(v));
        }
        Default::EmptyList => {
            s.insert("default".into(), json!([]));
        }
        Default::EmptyDict => {
            s.insert("default".into(), json!({}));
        }
    }
    let ops: Vec<&str> = f.filter_ops.iter().map(|op| op.name()).collect();
    s.insert("filter_ops".into(), json!(ops));
    Value::Object(s)
}

pub fn type_schema(t: &ArtifactType) -> Value {
    let properties: Map<String, Value> = t
        .all_fields()
        .map(|f| (f.name.to_owned(), field_schema(f)))
        .collect();
    json!({
        "name": t.name,
        "version": "1.0",
        "title": format!("Artifact type {} of version 1.0", t.name),
        "type": "object",
        "display_name": t.display_name,
        "required": ["name"],
        "properties": properties,
    })
}

fn schema_response(doc: Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/schema+json")
        .body(doc.to_string())
}

pub async fn all(_caller: Caller) -> HttpResponse {
    let schemas: Map<String, Value> = TYPES
        .iter()
        .map(|t| (t.name.to_owned(), type_schema(t)))
        .collect();
    schema_response(json!({ "schemas": schemas }))
}

pub async fn one(_caller: Caller, path: web::Path<String>) -> GlareResult<HttpResponse> {
    let name = path.into_inner();
    let t = ArtifactType::find(&name).ok_or_else(|| GlareError::type_not_found(&name))?;
    Ok(schema_response(
        json!({ "schemas": { t.name: type_schema(t) } }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_images_schema_says_what_may_be_filtered_and_sorted() {
        let s = type_schema(ArtifactType::find("images").unwrap());
        let p = &s["properties"];
        assert_eq!(p["version"]["filter_ops"].as_array().unwrap().len(), 7);
        assert_eq!(p["name"]["sortable"], true);
        assert!(p["description"].get("sortable").is_none());
        assert_eq!(p["image"]["glareType"], "Blob");
        assert_eq!(p["disk_format"]["type"], json!(["string", "null"]));
        assert_eq!(p["id"]["readOnly"], true);
    }
}
