//! `DELETE /v2/stores/{store_id}/{image_id}` (Glance's `delete_from_store`, API 2.10): removes
//! an active image's data from one of the stores holding it, keeping the others, the inverse
//! of copy-image. Policy `get_image_location` and `delete_image_location` (admins by default).

use actix_web::{web, HttpRequest, HttpResponse};
use glance_domain::ImageStatus;

use crate::error::{ApiError, ApiResult};
use crate::gateway::authorize_modify;
use crate::identity::Caller;
use crate::images::handlers::{image_id, reject_body};
use crate::AppState;

pub async fn delete_from_store(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    reject_body(&req)?;
    let (store_id, raw_id) = path.into_inner();
    let stores = &state.import.stores;
    if !stores.is_multi() {
        return Err(ApiError::NotFound(
            "The resource could not be found.".into(),
        ));
    }
    if stores.get(&store_id).is_none() {
        return Err(ApiError::Conflict(format!(
            "The selected store {store_id} is not available on this node."
        )));
    }
    let id = image_id(&raw_id)?;
    let mut image = match state.gateway.get(&ctx, id).await {
        Err(ApiError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("Failed to find image {id}")))
        }
        other => other?,
    };
    let policy = &state.config().access.policy;
    authorize_modify(policy, &ctx, &image, "get_image_location")?;
    authorize_modify(policy, &ctx, &image, "delete_image_location")?;
    if image.status != ImageStatus::Active {
        return Err(ApiError::Conflict(
            "It's not allowed to remove image data from store if image status is not 'active'"
                .into(),
        ));
    }
    if image.locations.len() == 1 {
        return Err(ApiError::Forbidden(
            "Cannot delete image data from the only store containing it. Consider deleting \
             the image instead."
                .into(),
        ));
    }
    let Some(pos) = image
        .locations
        .iter()
        .position(|l| l.metadata.get("store") == Some(&store_id))
    else {
        return Err(ApiError::NotFound(format!(
            "Image {id} is not stored in store {store_id}."
        )));
    };
    let removed = image.locations.remove(pos);
    // The record first, then the data: a crash in between leaves data nobody points to (a
    // scrub job cleans it), never a record pointing to data that is gone.
    match state
        .gateway
        .save(&ctx, image, Some(ImageStatus::Active))
        .await
    {
        Err(ApiError::Conflict(_)) => {
            return Err(ApiError::Conflict(format!(
                "Image {id} changed while its data was being removed from store {store_id}"
            )))
        }
        other => other?,
    };
    state.remove_data(&ctx, id, [removed.url]).await;
    Ok(HttpResponse::NoContent().finish())
}
