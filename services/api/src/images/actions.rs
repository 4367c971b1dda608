//! `POST /v2/images/{id}/actions/deactivate|reactivate` (policy `deactivate`/`reactivate`:
//! admins and the owning project's members, as in Glance 33): a deactivated
//! image keeps its data but non-admins may not download it. Repeating either is a no-op;
//! from any status other than active or deactivated it is 403, as in Glance's
//! `Image.deactivate` / `Image.reactivate`.

use actix_web::{web, HttpRequest, HttpResponse};
use glance_domain::ImageStatus;

use super::handlers::{image_id, reject_body};
use crate::error::{ApiError, ApiResult};
use crate::gateway::authorize_modify;
use crate::identity::Caller;
use crate::routing::{not_allowed, Resource, Routes};
use crate::AppState;

/// One of the two actions: its policy rule (also its path segment), the status it
/// applies to and the status it leaves.
struct Action {
    rule: &'static str,
    from: ImageStatus,
    to: ImageStatus,
}

const ACTIONS: [Action; 2] = [
    Action {
        rule: "deactivate",
        from: ImageStatus::Active,
        to: ImageStatus::Deactivated,
    },
    Action {
        rule: "reactivate",
        from: ImageStatus::Deactivated,
        to: ImageStatus::Active,
    },
];

pub fn routes(r: &mut Routes) {
    for action in &ACTIONS {
        r.add(
            Resource::new(format!("/v2/images/{{id}}/actions/{}", action.rule))
                .post(
                    move |req: HttpRequest,
                          state: web::Data<AppState>,
                          caller: Caller,
                          path: web::Path<String>| {
                        change(req, state, caller, path, action)
                    },
                )
                .others(not_allowed("POST")),
        );
    }
}

async fn change(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    &Action { rule, from, to }: &Action,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let id = image_id(&path)?;
    let mut image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&state.config().access.policy, &ctx, &image, rule)?;
    if image.status == to {
        return Ok(HttpResponse::NoContent().finish());
    }
    if image.status != from {
        return Err(ApiError::Forbidden(format!(
            "Not allowed to {rule} image in status '{}'",
            image.status
        )));
    }
    image.status = to;
    match state.gateway.save(&ctx, image, Some(from)).await {
        Ok(_) => Ok(HttpResponse::NoContent().finish()),
        // Someone else changed the status first: report what it is now.
        Err(ApiError::Conflict(_)) => Err(ApiError::Conflict(format!(
            "Image {id} changed status while it was being {rule}d"
        ))),
        Err(e) => Err(e),
    }
}
