//! Setting and removing image attributes from user input, shared by create and update, with
//! Glance's rules: read-only and reserved names refused (403), values checked against the
//! image schema (400).

use glance_domain::{ContainerFormat, DiskFormat, Image, ImageId, RequestContext, Visibility};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::ApiConfig;

const READ_ONLY: &[&str] = &[
    "status",
    "checksum",
    "size",
    "virtual_size",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "stores",
];
const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];
const MAX_STRING: usize = 255;

fn schema_error(msg: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!(
        "Provided object does not match schema 'image': {msg}"
    ))
}

/// Refuses names no user may write, whatever the operation.
pub fn check_writable(key: &str, id_allowed: bool) -> ApiResult<()> {
    if READ_ONLY.contains(&key) || (key == "id" && !id_allowed) {
        return Err(ApiError::Forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    if RESERVED.contains(&key) || key.starts_with("os_glance") {
        return Err(ApiError::Forbidden(format!(
            "Attribute '{key}' is reserved."
        )));
    }
    Ok(())
}

fn string_or_null(key: &str, value: &Value) -> ApiResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= MAX_STRING => Ok(Some(s.clone())),
        Value::String(_) => Err(schema_error(format_args!(
            "'{key}' is longer than {MAX_STRING} characters"
        ))),
        other => Err(schema_error(format_args!(
            "{other} is not of type 'string'"
        ))),
    }
}

fn boolean(value: &Value) -> ApiResult<bool> {
    value
        .as_bool()
        .ok_or_else(|| schema_error(format_args!("{value} is not of type 'boolean'")))
}

fn non_negative(key: &str, value: &Value) -> ApiResult<i32> {
    value
        .as_i64()
        .filter(|n| (0..=i32::MAX as i64).contains(n))
        .map(|n| n as i32)
        .ok_or_else(|| {
            schema_error(format_args!(
                "{value} is not a valid non-negative integer for '{key}'"
            ))
        })
}

fn allowed<T: std::str::FromStr>(
    key: &str,
    value: &Value,
    allowed: &[String],
) -> ApiResult<Option<T>> {
    let Some(s) = string_or_null(key, value)? else {
        return Ok(None);
    };
    if !allowed.iter().any(|a| a == &s) {
        return Err(schema_error(format_args!(
            "'{s}' is not one of {allowed:?}"
        )));
    }
    s.parse::<T>()
        .map(Some)
        .map_err(|_| schema_error(format_args!("'{s}' is not a supported {key}")))
}

/// Sets `key` to `value` on `image` (a core attribute or an extra property).
pub fn set(
    image: &mut Image,
    key: &str,
    value: &Value,
    ctx: &RequestContext,
    cfg: &ApiConfig,
) -> ApiResult<()> {
    match key {
        "name" => image.name = string_or_null(key, value)?,
        "visibility" => {
            let v: Visibility = value.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                schema_error(format_args!(
                    "{value} is not one of ['community', 'public', 'private', 'shared']"
                ))
            })?;
            // Glance's `publicize_image` and `communitize_image` rules, on the image as
            // it was before this change; checked even when the value does not change, as
            // Glance's `ImageAPIPolicy.update_property` does.
            let rule = match v {
                Visibility::Public => Some("publicize_image"),
                Visibility::Community => Some("communitize_image"),
                _ => None,
            };
            if let Some(rule) = rule {
                let target = crate::policy::Target::image(image, ctx);
                if !cfg.access.policy.check(rule, ctx, &target) {
                    return Err(crate::gateway::forbidden(rule));
                }
            }
            image.visibility = v;
        }
        "protected" => image.protected = boolean(value)?,
        "os_hidden" => image.os_hidden = boolean(value)?,
        "min_disk" => image.min_disk = non_negative(key, value)?,
        "min_ram" => image.min_ram = non_negative(key, value)?,
        "owner" => image.owner = string_or_null(key, value)?,
        "disk_format" => image.disk_format = allowed::<DiskFormat>(key, value, &cfg.disk_formats)?,
        "container_format" => {
            image.container_format = allowed::<ContainerFormat>(key, value, &cfg.container_formats)?
        }
        "tags" => image.tags = tags(value)?,
        "id" => {
            image.id = value
                .as_str()
                .and_then(|s| s.parse::<ImageId>().ok())
                .ok_or_else(|| schema_error(format_args!("{value} is not a valid UUID")))?
        }
        _ => {
            if key.is_empty() || key.chars().count() > MAX_STRING {
                return Err(schema_error(format_args!(
                    "property name '{key}' must be 1 to {MAX_STRING} characters"
                )));
            }
            match value {
                Value::String(s) => {
                    image.properties.insert(key.to_owned(), s.clone());
                }
                other => {
                    return Err(schema_error(format_args!(
                        "{other} is not of type 'string'"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn tags(value: &Value) -> ApiResult<Vec<String>> {
    let items = value
        .as_array()
        .ok_or_else(|| schema_error(format_args!("{value} is not of type 'array'")))?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let tag = match item {
            Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_STRING => s.clone(),
            other => {
                return Err(schema_error(format_args!(
                    "{other} is not a valid tag (a string of 1 to {MAX_STRING} characters)"
                )))
            }
        };
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// Checks a tag given in a URL path.
pub fn validate_tag(tag: &str) -> ApiResult<()> {
    if tag.is_empty() || tag.chars().count() > MAX_STRING {
        return Err(ApiError::BadRequest(format!(
            "Invalid tag: tags must be 1 to {MAX_STRING} characters"
        )));
    }
    Ok(())
}

/// Whether `key` names a core attribute (which can never be removed).
pub fn is_core(key: &str) -> bool {
    Image::CORE_ATTRIBUTES.contains(&key)
}
