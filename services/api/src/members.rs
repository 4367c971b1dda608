//! `/v2/images/{id}/members`: sharing an image with other projects (Glance's
//! `api/v2/image_members.py`).
//!
//! Only `shared` images have members. The owner (policy `add_member`, `delete_member`) adds
//! and removes them; only the member itself (`modify_member`) accepts or rejects. A member
//! sees the image whatever its status; the status decides whether it is listed.

use actix_web::{web, HttpRequest, HttpResponse};
use glance_domain::{Image, ImageId, MemberStatus, RequestContext, Visibility};
use glance_proto::registry::ImageMember;
use serde_json::Value;

use crate::access::check_count;
use crate::error::{ApiError, ApiResult};
use crate::gateway::authorize_on;
use crate::identity::Caller;
use crate::images::handlers::{image_id, reject_body};
use crate::images::view::timestamp;
use crate::policy::Target;
use crate::routing::{not_allowed, Resource, Routes};
use crate::{ApiConfig, AppState};

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/v2/images/{id}/members")
            .get(list)
            .post(create)
            .others(not_allowed("GET, POST")),
    )
    .add(
        Resource::new("/v2/images/{id}/members/{member_id}")
            .get(show)
            .put(update)
            .delete(delete)
            .others(not_allowed("GET, PUT, DELETE")),
    );
}

/// A member as Glance renders it (its key order too).
#[derive(serde::Serialize)]
struct MemberView<'a> {
    member_id: &'a str,
    image_id: String,
    status: &'static str,
    created_at: String,
    updated_at: String,
    schema: &'static str,
}

fn view(m: &ImageMember) -> MemberView<'_> {
    MemberView {
        member_id: &m.member_id,
        image_id: m.image_id.to_string(),
        status: m.status.as_str(),
        created_at: timestamp(&m.created_at),
        updated_at: timestamp(&m.updated_at),
        schema: "/v2/schemas/member",
    }
}

/// The image, its members as `ctx` sees them, and the policy target: the owner as
/// `project_id` and, as `member_id`, `member` if given, else the caller's own membership.
async fn load(
    state: &AppState,
    ctx: &RequestContext,
    id: ImageId,
    member: Option<&str>,
) -> ApiResult<(Image, Vec<ImageMember>, Target)> {
    let image = state.gateway.get(ctx, id).await?;
    let members = state.gateway.members(ctx, id).await?;
    let member_id = member.map(str::to_owned).or_else(|| {
        members
            .iter()
            .find(|m| Some(m.member_id.as_str()) == ctx.project_id.as_deref())
            .map(|m| m.member_id.clone())
    });
    let target = Target::new()
        .with("project_id", image.owner.clone())
        .with("owner", image.owner.clone())
        .with("visibility", Some(image.visibility.as_str()))
        .with("member_id", member_id);
    Ok((image, members, target))
}

/// A refused rule is 404 for a caller who may not see the image at all, 403 otherwise.
fn enforce(
    config: &ApiConfig,
    ctx: &RequestContext,
    image: &Image,
    target: &Target,
    rule: &str,
) -> ApiResult<()> {
    authorize_on(&config.access.policy, ctx, image, target, rule)
}

/// Only shared images have members; Glance words the refusal by what was tried.
fn only_shared(image: &Image, action: &str) -> ApiResult<()> {
    if image.visibility != Visibility::Shared {
        return Err(ApiError::Forbidden(match action {
            "list" | "create" => format!("Not allowed to {action} members for image {}.", image.id),
            _ => "Only shared images have members.".into(),
        }));
    }
    Ok(())
}

/// The addressed membership among those the caller sees; 404 (before any policy check, as
/// in Glance) when it is not there.
fn find<'a>(members: &'a [ImageMember], id: ImageId, member: &str) -> ApiResult<&'a ImageMember> {
    members
        .iter()
        .find(|m| m.member_id == member)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "{member} not found in the member list of the image {id}."
            ))
        })
}

async fn list(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = image_id(&path)?;
    let (image, members, target) = load(&state, &ctx, id, None).await?;
    enforce(&state.config(), &ctx, &image, &target, "get_members")?;
    only_shared(&image, "list")?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "members": members.iter().map(view).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    })))
}

async fn create(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let id = image_id(&path)?;
    let member_id = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => match map.get("member") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_owned(),
            _ => {
                return Err(ApiError::BadRequest(
                    "Member to be added not specified".into(),
                ))
            }
        },
        _ => {
            return Err(ApiError::BadRequest(
                "Malformed JSON in request body: expected {\"member\": \"<project>\"}".into(),
            ))
        }
    };
    let config = state.config();
    let (image, members, target) = load(&state, &ctx, id, None).await?;
    enforce(&config, &ctx, &image, &target, "add_member")?;
    only_shared(&image, "create")?;
    check_count(
        config.access.quotas.image_members,
        members.len() + 1,
        "image members for this image",
    )?;
    let member = state.gateway.add_member(&ctx, id, member_id).await?;
    Ok(HttpResponse::Ok().json(view(&member)))
}

async fn show(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (raw_id, member_id) = path.into_inner();
    let id = image_id(&raw_id)?;
    let (image, members, target) = load(&state, &ctx, id, Some(&member_id)).await?;
    let member = find(&members, id, &member_id)?;
    enforce(&state.config(), &ctx, &image, &target, "get_member")?;
    only_shared(&image, "get")?;
    Ok(HttpResponse::Ok().json(view(member)))
}

async fn update(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (raw_id, member_id) = path.into_inner();
    let id = image_id(&raw_id)?;
    // The body's shape is checked first, the status's value only after the policy (as in
    // Glance, where setting it on the member is what refuses a bad one).
    let raw_status = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => match map.get("status") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::BadRequest("Status not specified".into())),
        },
        _ => {
            return Err(ApiError::BadRequest(
                "Malformed JSON in request body: expected {\"status\": \"...\"}".into(),
            ))
        }
    };
    let (image, members, target) = load(&state, &ctx, id, Some(&member_id)).await?;
    find(&members, id, &member_id)?;
    enforce(&state.config(), &ctx, &image, &target, "modify_member")?;
    only_shared(&image, "update")?;
    let status = raw_status.parse::<MemberStatus>().map_err(|_| {
        ApiError::BadRequest(
            "Incorrect request: Status must be \"pending\", \"accepted\" or \"rejected\".".into(),
        )
    })?;
    let member = state
        .gateway
        .update_member(&ctx, id, member_id, status)
        .await?;
    Ok(HttpResponse::Ok().json(view(&member)))
}

async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let (raw_id, member_id) = path.into_inner();
    let id = image_id(&raw_id)?;
    let (image, members, target) = load(&state, &ctx, id, None).await?;
    find(&members, id, &member_id)?;
    enforce(&state.config(), &ctx, &image, &target, "delete_member")?;
    only_shared(&image, "delete")?;
    state.gateway.remove_member(&ctx, id, member_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
