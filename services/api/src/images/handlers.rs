//! Handlers for `/v2/images` and its tags.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use glance_domain::{Image, ImageId, ImageStatus};
use glance_store::Store as _;
use serde_json::Value;

use super::patch::{self, Op};
use super::{fields, query, view};
use crate::access::check_count;
use crate::error::{ApiError, ApiResult};
use crate::gateway::{authorize, authorize_create, authorize_modify};
use crate::identity::Caller;
use crate::policy::Target;
use crate::protections::PropOp;
use crate::AppState;

/// Parses an image id from the path; anything that is not a UUID is simply not found.
pub fn image_id(raw: &str) -> ApiResult<ImageId> {
    raw.parse().map_err(|_| ApiError::image_not_found(raw))
}

fn json_body(body: &[u8]) -> ApiResult<serde_json::Map<String, Value>> {
    match crate::error::parse_json(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::BadRequest(
            "Request body must be a JSON object.".into(),
        )),
    }
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let config = state.config();
    let input = json_body(&body)?;
    let now = Utc::now();
    let mut image = Image::new(ImageId::new(), ctx.project_id.clone(), now);
    // The schema comes before the reserved names in Glance: an extra property must be a
    // string (400) before its name is looked at (403).
    for (key, value) in &input {
        // `deleted` and `deleted_at` are columns, not members of the image schema.
        let in_schema = fields::is_core(key) && !matches!(key.as_str(), "deleted" | "deleted_at");
        if !in_schema && !value.is_string() {
            return Err(ApiError::BadRequest(format!(
                "Provided object does not match schema 'image': {value} is not of type 'string'"
            )));
        }
    }
    for (key, value) in &input {
        fields::check_writable(key, true)?;
        if !fields::is_core(key) {
            protect(&config, &ctx, key, PropOp::Create)?;
        }
        fields::set(&mut image, key, value, &ctx, &config)?;
    }
    if input.get("owner").is_some() && !ctx.is_admin && image.owner != ctx.project_id {
        return Err(ApiError::Forbidden(
            "You are not permitted to create images owned by another project.".into(),
        ));
    }
    authorize_create(&config.access.policy, &ctx, &image)?;
    check_quotas(&config, &Image::new(image.id, None, now), &image)?;
    let mut image = state.gateway.create(&ctx, image).await?;
    hide_unreadable(&config, &ctx, &mut image);
    Ok(HttpResponse::Created()
        // Absolute, as Glance writes it (from the request's own scheme and host).
        .insert_header((header::LOCATION, {
            let info = req.connection_info();
            format!("{}://{}/v2/images/{}", info.scheme(), info.host(), image.id)
        }))
        .json(view::ImageView(&image)))
}

pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let id = image_id(&path)?;
    let mut image = state.gateway.get(&ctx, id).await?;
    let config = state.config();
    authorize_modify(&config.access.policy, &ctx, &image, "get_image")?;
    hide_unreadable(&config, &ctx, &mut image);
    Ok(HttpResponse::Ok().json(view::ImageView(&image)))
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    let config = state.config();
    authorize(
        &config.access.policy,
        &ctx,
        "get_images",
        &Target::new().with("project_id", ctx.project_id.clone()),
    )?;
    let list = query::parse(req.query_string(), &ctx, &config)?;
    let limit = list.limit as usize;
    let mut images = state.gateway.list(list).await?;
    for image in &mut images {
        hide_unreadable(&config, &ctx, image);
    }
    // Links repeat the caller's query (less any marker) so a client can walk the pages.
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k != "marker")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let encode = |extra: Option<(&str, String)>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            s.append_pair(k, v);
        }
        if let Some((k, v)) = extra {
            s.append_pair(k, &v);
        }
        let q = s.finish();
        if q.is_empty() {
            "/v2/images".to_owned()
        } else {
            format!("/v2/images?{q}")
        }
    };
    #[derive(serde::Serialize)]
    struct Page<'a> {
        images: Vec<view::ImageView<'a>>,
        first: String,
        schema: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    }
    let next = (limit > 0 && images.len() == limit).then(|| {
        let last = images.last().expect("a full page is not empty").id;
        encode(Some(("marker", last.to_string())))
    });
    Ok(HttpResponse::Ok().json(Page {
        images: images.iter().map(view::ImageView).collect(),
        first: encode(None),
        schema: "/v2/schemas/images",
        next,
    }))
}

pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let dialect = patch::dialect(
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )?;
    let id = image_id(&path)?;
    let changes = patch::parse(&body, dialect)?;
    // Glance's request deserializer refuses these before it looks the image up, so even a
    // caller who cannot see the image gets 400/403 for them, not 404.
    for change in &changes {
        if change.key == "locations" {
            if change.op != Op::Replace {
                return Err(ApiError::BadRequest(
                    "Invalid JSON pointer for this resource: '/locations'".into(),
                ));
            }
            continue;
        }
        fields::check_writable(&change.key, false)?;
    }
    let config = state.config();
    let mut image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&config.access.policy, &ctx, &image, "modify_image")?;
    let before = image.clone();
    for change in changes {
        let key = change.key.as_str();
        check_owner_change(&ctx, &image, &change)?;
        if key == "locations" {
            let empty = change
                .value
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|l| l.is_empty());
            return Err(ApiError::Forbidden(if empty {
                "Cannot set locations to empty list.".into()
            } else {
                "Attribute 'locations' is read-only.".into()
            }));
        }
        if !fields::is_core(key) {
            let op = match change.op {
                Op::Remove => PropOp::Delete,
                _ if image.properties.contains_key(key) => PropOp::Update,
                _ => PropOp::Create,
            };
            protect(&config, &ctx, key, op)?;
        }
        match change.op {
            Op::Remove => {
                if fields::is_core(key) {
                    return Err(ApiError::Forbidden(format!(
                        "Property {key} may not be removed."
                    )));
                }
                if image.properties.remove(key).is_none() {
                    return Err(ApiError::Conflict(format!(
                        "Property {key} does not exist."
                    )));
                }
            }
            Op::Add | Op::Replace => {
                let value = change.value.as_ref().expect("add/replace carry a value");
                let exists = fields::is_core(key) || image.properties.contains_key(key);
                if change.op == Op::Replace && !exists {
                    return Err(ApiError::Conflict(format!(
                        "Property {key} does not exist."
                    )));
                }
                if change.op == Op::Add
                    && dialect == patch::Dialect::V20
                    && image.properties.contains_key(key)
                {
                    return Err(ApiError::Conflict(format!(
                        "Property {key} already present."
                    )));
                }
                fields::set(&mut image, key, value, &ctx, &config)?;
            }
        }
    }
    check_quotas(&config, &before, &image)?;
    let format_changed = image.disk_format != before.disk_format
        || image.container_format != before.container_format;
    if format_changed && !matches!(before.status, ImageStatus::Queued | ImageStatus::Importing) {
        let attr = if image.disk_format != before.disk_format {
            "disk_format"
        } else {
            "container_format"
        };
        return Err(ApiError::Forbidden(format!(
            "Attribute {attr} can be only replaced for a queued image."
        )));
    }
    if image == before {
        hide_unreadable(&config, &ctx, &mut image);
        return Ok(HttpResponse::Ok().json(view::ImageView(&image)));
    }
    let mut saved = state.gateway.save(&ctx, image, None).await?;
    hide_unreadable(&config, &ctx, &mut saved);
    Ok(HttpResponse::Ok().json(view::ImageView(&saved)))
}

/// Only an admin may hand an image to another project. Glance refuses `replace /owner` from
/// anyone else, whatever the value. Its `add /owner` is refused only after the database has
/// already saved the new owner (or saved no owner at all for `null`); we refuse any `add` that
/// would change the owner before anything is saved, and let one that names the current owner
/// through as the no-op it is (docs/parity.md).
fn check_owner_change(
    ctx: &glance_domain::RequestContext,
    image: &Image,
    change: &patch::Change,
) -> ApiResult<()> {
    if change.key != "owner" || ctx.is_admin {
        return Ok(());
    }
    let unchanged = change.op == Op::Add
        && change.value.as_ref().and_then(Value::as_str) == image.owner.as_deref()
        && image.owner.is_some();
    match change.op {
        Op::Remove => Ok(()), // refused below as the removal of a core attribute
        _ if unchanged => Ok(()),
        _ => Err(ApiError::Forbidden(
            "Owner can't be updated by non admin.".into(),
        )),
    }
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&state.config().access.policy, &ctx, &image, "delete_image")?;
    if image.protected {
        return Err(ApiError::Forbidden(format!(
            "Image {id} is protected and cannot be deleted."
        )));
    }
    let delayed = state.config().delayed_delete && !image.locations.is_empty();
    if delayed && !image.status.can_transition_to(ImageStatus::PendingDelete) {
        return Err(ApiError::BadRequest(format!(
            "Image status transition from {} to pending_delete is not allowed",
            image.status
        )));
    }
    let target = if delayed {
        ImageStatus::PendingDelete
    } else {
        ImageStatus::Deleted
    };
    // Under delayed delete the image waits in pending_delete, its locations kept, until a
    // scrubber run finds it due (`[DEFAULT] scrub_time`) and removes the data.
    let deleted = state.gateway.delete(&ctx, id, target).await?;
    if matches!(
        image.status,
        ImageStatus::Uploading | ImageStatus::Importing
    ) {
        // Staged data of a glance-direct import that will never run (Glance unlinks it too).
        let staging = state.import.stores.staging();
        if let Err(e) = staging.delete(&staging.location_of(id)).await {
            tracing::debug!(image_id = %id, error = %e, "no staged data removed");
        }
    }
    if !delayed {
        let urls = deleted.locations.into_iter().map(|l| l.url);
        state.remove_data(&ctx, id, urls).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// The request's `Content-Length`, when it is a number.
pub fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Image data comes as `application/octet-stream`; anything else, or no `Content-Type`
/// at all, is 415 (as in Glance; its clients always say it).
pub fn require_octet_stream(req: &HttpRequest) -> ApiResult<()> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/octet-stream") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Unsupported Content-Type {content_type}: image data is application/octet-stream"
        )));
    }
    Ok(())
}

/// Glance refuses a body on routes that take none.
pub fn reject_body(req: &HttpRequest) -> ApiResult<()> {
    let has_body = declared_length(req).is_some_and(|n| n > 0)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return Err(ApiError::BadRequest(
            "A body is not expected with this request.".into(),
        ));
    }
    Ok(())
}

pub async fn add_tag(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let (raw_id, tag) = path.into_inner();
    // Glance's router decodes `%2F` before matching: such a tag names no route.
    if tag.contains('/') {
        return Err(ApiError::NotFound(
            "The resource could not be found.".into(),
        ));
    }
    let id = image_id(&raw_id)?;
    fields::validate_tag(&tag)?;
    let mut image = state.gateway.get(&ctx, id).await?;
    let config = state.config();
    authorize_modify(&config.access.policy, &ctx, &image, "modify_image")?;
    if !image.tags.contains(&tag) {
        image.tags.push(tag);
        check_count(
            config.access.quotas.image_tags,
            image.tags.len(),
            "image tags",
        )?;
        state.gateway.save(&ctx, image, None).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_tag(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let (raw_id, tag) = path.into_inner();
    let id = image_id(&raw_id)?;
    let mut image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&state.config().access.policy, &ctx, &image, "modify_image")?;
    let before = image.tags.len();
    image.tags.retain(|t| t != &tag);
    if image.tags.len() == before {
        return Err(ApiError::NotFound(format!("Tag {tag} not found")));
    }
    state.gateway.save(&ctx, image, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Property protections: 403 when `ctx` may not do `op` on the extra property `key`.
fn protect(
    config: &crate::ApiConfig,
    ctx: &glance_domain::RequestContext,
    key: &str,
    op: PropOp,
) -> ApiResult<()> {
    match &config.access.protections {
        Some(p) if !p.allows(ctx, &config.access.policy, key, op) => Err(ApiError::Forbidden(
            format!("Property '{key}' is protected"),
        )),
        _ => Ok(()),
    }
}

/// Removes the extra properties `ctx` may not read.
pub fn hide_unreadable(
    config: &crate::ApiConfig,
    ctx: &glance_domain::RequestContext,
    image: &mut Image,
) {
    if let Some(p) = &config.access.protections {
        image
            .properties
            .retain(|key, _| p.allows(ctx, &config.access.policy, key, PropOp::Read));
    }
}

/// `image_property_quota` and `image_tag_quota`, checked only when a count grows (so an
/// image already over a lowered quota can still shrink), as Glance's quota proxy does.
fn check_quotas(config: &crate::ApiConfig, before: &Image, after: &Image) -> ApiResult<()> {
    let quotas = &config.access.quotas;
    if after.properties.len() > before.properties.len() {
        check_count(
            quotas.image_properties,
            after.properties.len(),
            "image properties",
        )?;
    }
    if after.tags.len() > before.tags.len() {
        check_count(quotas.image_tags, after.tags.len(), "image tags")?;
    }
    Ok(())
}
