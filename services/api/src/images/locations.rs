//! The locations API of Images API 2.17, which Nova and Cinder call:
//! `GET /v2/images/{id}/locations` (policy `fetch_image_location`: services and admins) and
//! `POST /v2/images/{id}/locations` (policy `add_image_location`), with Glance's checks in
//! Glance's order: the body against the location schema (400), the image (404), its status
//! (409 unless queued), the policy (403), an HTTP store for the URL (403).
//!
//! A location can only be added where it can be read back: an HTTP URL needs an `http`
//! store, and we have only filesystem stores, so every add ends in the 403 Glance answers
//! to callers without the `service` role (docs/parity.md).

use actix_web::{web, HttpResponse};
use glance_domain::ImageStatus;
use serde_json::{json, Map, Value};

use super::handlers::image_id;
use crate::error::{ApiError, ApiResult};
use crate::gateway::authorize_modify;
use crate::identity::Caller;
use crate::routing::{not_allowed, Resource, Routes};
use crate::AppState;

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/v2/images/{id}/locations")
            .get(list)
            .post(add)
            .others(not_allowed("POST")),
    );
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn schema_error(msg: impl std::fmt::Display) -> ApiError {
    bad(format!(
        "Provided object does not match schema 'add_location': {msg}"
    ))
}

const HASH_ALGOS: &[&str] = &["sha1", "sha256", "sha512", "md5"];

/// The body as the `add_location` schema takes it: `url` (required, a string) and
/// `validation_data` with `os_hash_algo` and `os_hash_value`, each needing the other.
fn parse(body: &[u8]) -> ApiResult<(String, Map<String, Value>)> {
    if body.is_empty() {
        return Err(bad("Body expected in request."));
    }
    let doc = crate::error::parse_json(body)?;
    let Value::Object(doc) = doc else {
        return Err(schema_error(format_args!("{doc} is not of type 'object'")));
    };
    let url = match doc.get("url") {
        Some(Value::String(url)) => url.clone(),
        Some(other) => {
            return Err(schema_error(format_args!(
                "{other} is not of type 'string'"
            )))
        }
        None => return Err(schema_error("'url' is a required property")),
    };
    let data = match doc.get("validation_data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(data)) => data.clone(),
        Some(other) => {
            return Err(schema_error(format_args!(
                "{other} is not of type 'object'"
            )))
        }
    };
    for (key, value) in &data {
        match (key.as_str(), value) {
            ("os_hash_algo", Value::String(a)) if HASH_ALGOS.contains(&a.as_str()) => {}
            ("os_hash_value", Value::String(v)) if v.len() <= 128 => {}
            ("os_hash_algo" | "os_hash_value", other) => {
                return Err(schema_error(format_args!(
                    "{other} is not valid for '{key}'"
                )))
            }
            _ => {
                return Err(schema_error(format_args!(
                    "Additional properties are not allowed ('{key}' was unexpected)"
                )))
            }
        }
    }
    if data.contains_key("os_hash_algo") != data.contains_key("os_hash_value") {
        return Err(schema_error(
            "os_hash_algo and os_hash_value are required together",
        ));
    }
    Ok((url, data))
}

async fn list(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    authorize_modify(
        &state.config().access.policy,
        &ctx,
        &image,
        "fetch_image_location",
    )?;
    let locations: Vec<Value> = image
        .locations
        .iter()
        .map(|l| json!({"url": l.url, "metadata": l.metadata}))
        .collect();
    Ok(HttpResponse::Ok().json(locations))
}

async fn add(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (url, data) = parse(&body)?;
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    if image.status != ImageStatus::Queued {
        return Err(ApiError::Conflict(format!(
            "It's not allowed to add locations if image status is {}.",
            image.status
        )));
    }
    let config = state.config();
    authorize_modify(&config.access.policy, &ctx, &image, "add_image_location")?;
    // Glance goes on to check the validation data's hash and the import filter, then reads
    // the URL through its `http` store. None of our stores reads URLs, so it stops here for
    // every caller; the body has been checked against the schema above all the same.
    let _ = (url, data);
    Err(ApiError::Forbidden(
        "http store must be enabled to use location API by normal user.".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_must_match_the_add_location_schema() {
        assert!(parse(br#"{"url":"http://x/y"}"#).is_ok());
        assert!(parse(
            br#"{"url":"http://x/y","validation_data":{"os_hash_algo":"sha256","os_hash_value":"00"}}"#
        )
        .is_ok());
        for body in [
            &b""[..],
            b"{",
            br#"{}"#,
            br#"{"url":5}"#,
            br#"{"url":"u","validation_data":[]}"#,
            br#"{"url":"u","validation_data":{"os_hash_algo":"crc32","os_hash_value":"00"}}"#,
            br#"{"url":"u","validation_data":{"os_hash_value":"00"}}"#,
            br#"{"url":"u","validation_data":{"x":"00"}}"#,
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
