//! `PUT /v2/images/{id}/stage`: data for a later `glance-direct` import goes to the staging
//! store, and the image moves queued -> uploading (back to queued, with nothing kept, if the
//! upload fails or the client goes away).

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use glance_domain::{Image, ImageStatus, RequestContext};
use glance_store::Store;

use crate::data::Undo;
use crate::error::{ApiError, ApiResult};
use crate::gateway::{authorize_modify, Gateway};
use crate::identity::Caller;
use crate::images::handlers::{declared_length, image_id, require_octet_stream};
use crate::AppState;

pub async fn stage(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let config = state.config();
    if !config.import.method_enabled("glance-direct") {
        return Err(ApiError::NotFound(
            "The glance-direct import method is not enabled.".into(),
        ));
    }
    require_octet_stream(&req)?;
    let id = image_id(&path)?;
    let mut image = state.gateway.get(&ctx, id).await?;
    authorize_modify(&config.access.policy, &ctx, &image, "upload_image")?;
    if image.status != ImageStatus::Queued {
        return Err(ApiError::Conflict(format!(
            "Image status transition from {} to uploading is not allowed",
            image.status
        )));
    }
    let cap = config.image_size_cap;
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > cap) {
        return Err(too_large(cap));
    }
    image.status = ImageStatus::Uploading;
    let uploading = state
        .gateway
        .save(&ctx, image, Some(ImageStatus::Queued))
        .await
        .map_err(|e| match e {
            ApiError::Conflict(_) => ApiError::Conflict(format!(
                "Image {id} is already being staged or its status changed"
            )),
            other => other,
        })?;
    let guard = Undo::new(unstage(state.clone(), ctx.clone(), uploading.clone()));

    let staging = state.import.stores.staging().clone();
    let mut writer = staging
        .writer(id)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot open the staging store: {e}")))?;
    let mut size = 0u64;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                guard.run().await;
                return Err(ApiError::BadRequest(format!(
                    "Error receiving image data: {e}"
                )));
            }
        };
        size += chunk.len() as u64;
        if size > cap {
            guard.run().await;
            return Err(too_large(cap));
        }
        if let Err(e) = writer.write(chunk).await {
            guard.run().await;
            return Err(ApiError::Internal(format!(
                "staging image data failed: {e}"
            )));
        }
    }
    if let Err(e) = writer.commit().await {
        guard.run().await;
        return Err(ApiError::Internal(format!(
            "staging image data failed: {e}"
        )));
    }
    let mut staged = uploading;
    staged.size = Some(size as i64);
    match state
        .gateway
        .save(&ctx, staged, Some(ImageStatus::Uploading))
        .await
    {
        Ok(_) => {
            guard.disarm();
            tracing::info!(image_id = %id, size, "image data staged");
            Ok(HttpResponse::NoContent().finish())
        }
        Err(ApiError::NotFound(_)) | Err(ApiError::Conflict(_)) => {
            guard.disarm();
            let _ = staging.delete(&staging.location_of(id)).await;
            Err(ApiError::Gone(format!(
                "Image {id} could not be found after staging. The image may have been deleted."
            )))
        }
        Err(e) => {
            guard.run().await;
            Err(e)
        }
    }
}

fn too_large(cap: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "Image exceeds the storage quota: the image size cap is {cap} bytes."
    ))
}

/// Glance's `_unstage`: drops the staged data and puts the image back to `queued` (run
/// by the guard unless disarmed, from `Drop` too, so a client that vanishes mid-stream
/// leaves nothing behind).
async fn unstage(state: web::Data<AppState>, ctx: RequestContext, mut image: Image) {
    let staging = state.import.stores.staging();
    let _ = staging.delete(&staging.location_of(image.id)).await;
    image.status = ImageStatus::Queued;
    image.size = None;
    image.virtual_size = None;
    let gateway: &Gateway = &state.gateway;
    if let Err(e) = gateway
        .save(&ctx, image, Some(ImageStatus::Uploading))
        .await
    {
        tracing::warn!(error = %e, "could not restore image to queued after a failed stage");
    }
}
