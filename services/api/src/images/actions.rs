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
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2/images/{id}/actions/deactivate")
            .route(web::post().to(deactivate))
            .default_service(crate::not_allowed("POST")),
    )
    .service(
        web::resource("/v2/images/{id}/actions/reactivate")
            .route(web::post().to(reactivate))
            .default_service(crate::not_allowed("POST")),
    );
}

async fn deactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    change(
        req,
        state,
        caller,
        path,
        "deactivate",
        ImageStatus::Active,
        ImageStatus::Deactivated,
    )
    .await
}

async fn reactivate(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    change(
        req,
        state,
        caller,
        path,
        "reactivate",
        ImageStatus::Deactivated,
        ImageStatus::Active,
    )
    .await
}

async fn change(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    rule: &str,
    from: ImageStatus,
    to: ImageStatus,
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
