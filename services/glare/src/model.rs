//! Artifacts as the API sees them: a value checked against its field, and the flat JSON
//! document Glare renders (type fields, then base fields, blobs as their public view).

use chrono::{DateTime, SecondsFormat, Utc};
use glance_domain::{Artifact, Semver};
use serde_json::{json, Map, Value};

use crate::error::GlareError;
use crate::types::{ArtifactType, Default, Field, Kind};

/// Glare's validation message: `Type: images. Field: min_ram. Exception: ...`.
pub fn invalid(t: &ArtifactType, f: &Field, detail: impl std::fmt::Display) -> GlareError {
    GlareError::BadRequest(format!(
        "Type: {}. Field: {}. Exception: {detail}",
        t.name, f.name
    ))
}

pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn default_value(f: &Field) -> Value {
    match f.default {
        Default::Null => Value::Null,
        Default::Str(s) => json!(s),
        Default::EmptyList => json!([]),
        Default::EmptyDict => json!({}),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn check_string(
    t: &ArtifactType,
    f: &Field,
    s: &str,
    max: Option<usize>,
) -> Result<(), GlareError> {
    if let Some(max) = max {
        if s.chars().count() > max {
            return Err(invalid(
                t,
                f,
                format!(
                    "String length {} is more than max length {max}",
                    s.chars().count()
                ),
            ));
        }
    }
    Ok(())
}

/// A value as Glare's string fields take it: a string, or the text of a number or a
/// boolean (Python's `str()`: `True`, `False`).
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        _ => None,
    }
}

/// `value` for field `f`, as stored: coerced the way Glare's fields coerce (`"5"` is 5 for
/// an integer), or a 400 naming the field.
pub fn check(t: &ArtifactType, f: &Field, value: &Value) -> Result<Value, GlareError> {
    if value.is_null() {
        return if f.nullable {
            Ok(Value::Null)
        } else {
            Err(invalid(t, f, "Field value cannot be None"))
        };
    }
    match f.kind {
        Kind::String => {
            let s = as_text(value).ok_or_else(|| {
                invalid(
                    t,
                    f,
                    format!(
                        "A string is required in field {}, not a {}",
                        f.name,
                        type_name(value)
                    ),
                )
            })?;
            check_string(t, f, &s, f.max_length)?;
            if !f.allowed.is_empty() && !f.allowed.contains(&s.as_str()) {
                return Err(invalid(
                    t,
                    f,
                    format!(
                        "Value must be one of the following: {}",
                        f.allowed.join(", ")
                    ),
                ));
            }
            if f.uuid && uuid::Uuid::parse_str(&s).is_err() {
                return Err(invalid(t, f, format!("{s} is not a valid UUID")));
            }
            Ok(Value::String(s))
        }
        Kind::Integer => {
            let n = match value {
                Value::Number(n) if n.is_i64() => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| invalid(t, f, format!("invalid literal for int(): {value}")))?;
            if let Some(min) = f.minimum {
                if n < min {
                    return Err(invalid(
                        t,
                        f,
                        format!("Number is too small: {n}. Min allowed number is {min}"),
                    ));
                }
            }
            Ok(json!(n))
        }
        Kind::StringList | Kind::LinkList => {
            let Value::Array(items) = value else {
                return Err(invalid(
                    t,
                    f,
                    format!(
                        "A list is required in field {}, not a {}",
                        f.name,
                        type_name(value)
                    ),
                ));
            };
            if items.len() > 255 {
                return Err(invalid(t, f, "Too many items in the list (more than 255)"));
            }
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                let Value::String(s) = item else {
                    return Err(invalid(t, f, format!("{item} is not a string")));
                };
                check_string(t, f, s, f.max_length)?;
                if f.name == "tags" {
                    if s.is_empty() {
                        return Err(invalid(t, f, "Tags cannot be empty"));
                    }
                    if let Some(c) = s.chars().find(|c| matches!(c, ',' | '/')) {
                        return Err(invalid(
                            t,
                            f,
                            format!("Forbidden character {c} found in string {s}"),
                        ));
                    }
                    // Tags are a set: a repeated tag is kept once.
                    if out.iter().any(|o| o == item) {
                        continue;
                    }
                }
                out.push(item.clone());
            }
            Ok(Value::Array(out))
        }
        Kind::StringDict | Kind::LinkDict => {
            let Value::Object(map) = value else {
                return Err(invalid(
                    t,
                    f,
                    format!(
                        "A dict is required in field {}, not a {}",
                        f.name,
                        type_name(value)
                    ),
                ));
            };
            if map.len() > 255 {
                return Err(invalid(t, f, "Too many keys in the dict (more than 255)"));
            }
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                // Values coerce as Glare's string fields do (a number becomes its text).
                let s = match v {
                    Value::String(s) => Some(s.clone()),
                    _ if f.kind == Kind::StringDict => as_text(v),
                    _ => None,
                }
                .ok_or_else(|| invalid(t, f, format!("Value of key {k} is not a string")))?;
                check_string(t, f, &s, f.max_length)?;
                if f.name == "metadata" && s.is_empty() {
                    return Err(invalid(t, f, format!("Value of key {k} cannot be empty")));
                }
                out.insert(k.clone(), Value::String(s));
            }
            Ok(Value::Object(out))
        }
        Kind::DateTime | Kind::Blob | Kind::BlobDict => {
            Err(invalid(t, f, "This field cannot be set in a request"))
        }
    }
}

/// A name Glare accepts: 1 to 255 characters.
pub fn check_name(t: &ArtifactType, value: &Value) -> Result<String, GlareError> {
    let f = t.field("name").expect("every type has a name");
    // A number or a boolean becomes its text, as for any of Glare's string fields.
    let coerced = as_text(value).map_or_else(|| value.clone(), Value::String);
    match &coerced {
        Value::String(s) if !s.is_empty() => {
            check_string(t, f, s, Some(255))?;
            Ok(s.clone())
        }
        Value::String(_) | Value::Null => Err(invalid(t, f, "Name cannot be empty")),
        other => Err(invalid(
            t,
            f,
            format!(
                "A string is required in field name, not a {}",
                type_name(other)
            ),
        )),
    }
}

pub fn check_version(t: &ArtifactType, value: &Value) -> Result<Semver, GlareError> {
    let f = t.field("version").expect("every type has a version");
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(invalid(
                t,
                f,
                format!(
                    "A string is required in field version, not a {}",
                    type_name(other)
                ),
            ))
        }
    };
    text.parse::<Semver>().map_err(|_| {
        invalid(
            t,
            f,
            format!("Version string is not valid semver: '{text}'"),
        )
    })
}

/// A blob's public view: where to download it and what it holds (its store location
/// stays inside).
fn blob_view(a: &Artifact, path: &str, blob: &Value) -> Value {
    if blob.is_null() {
        return Value::Null;
    }
    let external = blob["external"].as_bool().unwrap_or(false);
    let url = if external {
        blob["url"].clone()
    } else {
        json!(format!("/artifacts/{}/{}/{}", a.type_name, a.id, path))
    };
    json!({
        "url": url,
        "status": blob["status"],
        "external": external,
        "md5": blob["md5"],
        "sha1": blob["sha1"],
        "sha256": blob["sha256"],
        "size": blob["size"],
        "content_type": blob["content_type"],
    })
}

/// The value of field `f` of `a` as the API shows it.
pub fn field_value(t: &ArtifactType, a: &Artifact, f: &Field) -> Value {
    match f.name {
        "id" => json!(a.id.to_string()),
        "name" => json!(a.name),
        "owner" => json!(a.owner),
        "status" => json!(a.status.as_str()),
        "created_at" => json!(time(&a.created_at)),
        "updated_at" => json!(time(&a.updated_at)),
        "activated_at" => a
            .activated_at
            .as_ref()
            .map_or(Value::Null, |t| json!(time(t))),
        "visibility" => json!(a.visibility.as_str()),
        "version" => json!(a.version.to_string()),
        "display_type_name" => match ArtifactType::find(&a.type_name) {
            Some(own) => json!(own.display_name),
            None => json!(t.display_name),
        },
        "type_name" if t.is_all() => json!(a.type_name),
        name => {
            let stored = a
                .fields
                .get(name)
                .cloned()
                .unwrap_or_else(|| default_value(f));
            match f.kind {
                Kind::Blob => blob_view(a, name, &stored),
                Kind::BlobDict => match stored {
                    Value::Object(map) => Value::Object(
                        map.iter()
                            .map(|(k, v)| (k.clone(), blob_view(a, &format!("{name}/{k}"), v)))
                            .collect(),
                    ),
                    other => other,
                },
                _ => stored,
            }
        }
    }
}

/// The artifact as the API shows it, under type `t` (its own, or `all`).
pub fn render(t: &ArtifactType, a: &Artifact) -> Value {
    let doc: Map<String, Value> = t
        .all_fields()
        .map(|f| (f.name.to_owned(), field_value(t, a, f)))
        .collect();
    Value::Object(doc)
}
