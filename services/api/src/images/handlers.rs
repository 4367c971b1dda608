//! Handlers for `/v2/images` and its tags.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use glance_domain::{Image, ImageId, ImageStatus};
use serde_json::Value;

use super::patch::{self, Op};
use super::{fields, query, view};
use crate::error::{ApiError, ApiResult};
use crate::gateway::{authorize_create, authorize_modify};
use crate::identity::Caller;
use crate::AppState;

/// Parses an image id from the path; anything that is not a UUID is simply not found.
pub fn image_id(raw: &str) -> ApiResult<ImageId> {
    raw.parse().map_err(|_| ApiError::image_not_found(raw))
}

fn json_body(body: &[u8]) -> ApiResult<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "Request body must be a JSON object.".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!(
            "Malformed JSON in request body: {e}"
        ))),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    authorize_create(&ctx)?;
    let input = json_body(&body)?;
    let now = Utc::now();
    let mut image = Image::new(ImageId::new(), ctx.project_id.clone(), now);
    for (key, value) in &input {
        fields::check_writable(key, true)?;
        fields::set(&mut image, key, value, &ctx, &state.config())?;
    }
    if input.get("owner").is_some() && !ctx.is_admin && image.owner != ctx.project_id {
        return Err(ApiError::Forbidden(
            "You are not permitted to create images owned by another project.".into(),
        ));
    }
    let image = state.gateway.create(&ctx, image).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v2/images/{}", image.id)))
        .json(view::ImageView(&image)))
}

pub async fn show(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    Ok(HttpResponse::Ok().json(view::ImageView(&image)))
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    let list = query::parse(req.query_string(), &ctx, &state.config())?;
    let limit = list.limit as usize;
    let images = state.gateway.list(list).await?;
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
    let mut image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&ctx, &image, "modify_image")?;
    let before = image.clone();
    for change in changes {
        let key = change.key.as_str();
        fields::check_writable(key, false)?;
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
                fields::set(&mut image, key, value, &ctx, &state.config())?;
            }
        }
    }
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
        return Ok(HttpResponse::Ok().json(view::ImageView(&image)));
    }
    let saved = state.gateway.save(&ctx, image, None).await?;
    Ok(HttpResponse::Ok().json(view::ImageView(&saved)))
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
    authorize_modify(&ctx, &image, "delete_image")?;
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
    let deleted = state.gateway.delete(&ctx, id, target).await?;
    if !delayed {
        for location in &deleted.locations {
            // The record is gone either way; a store failure leaves an orphan file that the
            // scrubber can reclaim, so it is logged rather than failing the request.
            if let Err(e) = state.store.delete(&location.url).await {
                tracing::warn!(image_id = %id, error = %e, "could not remove image data");
            }
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Glance refuses a body on routes that take none.
pub fn reject_body(req: &HttpRequest) -> ApiResult<()> {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
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
    let id = image_id(&raw_id)?;
    fields::validate_tag(&tag)?;
    let mut image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&ctx, &image, "modify_image")?;
    if !image.tags.contains(&tag) {
        image.tags.push(tag);
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
    authorize_modify(&ctx, &image, "modify_image")?;
    let before = image.tags.len();
    image.tags.retain(|t| t != &tag);
    if image.tags.len() == before {
        return Err(ApiError::NotFound(format!("Tag {tag} not found")));
    }
    state.gateway.save(&ctx, image, None).await?;
    Ok(HttpResponse::NoContent().finish())
}
