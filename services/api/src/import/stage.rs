//! `PUT /v2/images/{id}/stage`: data for a later `glance-direct` import goes to the staging
//! store, and the image moves queued -> uploading (back to queued, with nothing kept, if the
//! upload fails or the client goes away).

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use glance_domain::{Image, ImageStatus, RequestContext};
use glance_proto::leases::LeaseChange;
use glance_store::{Store, StoreError};

use crate::data::lease::{self, Lease};
use crate::data::upload::{storage_full, store_error};
use crate::data::Undo;
use crate::error::{ApiError, ApiResult};
use crate::gateway::{authorize_modify, Gateway};
use crate::identity::Caller;
use crate::images::handlers::{declared_length, image_id, require_octet_stream};
use crate::AppState;
use glance_import::ingest::{Ingest, IngestError};

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
    let image = state.gateway.get(&ctx, id).await?;
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
    let (uploading, lease) = lease::begin(
        &state,
        &ctx,
        image,
        ImageStatus::Uploading,
        "staged",
        config.upload,
    )
    .await?;
    let guard = Undo::new(unstage(
        state.clone(),
        ctx.clone(),
        uploading.clone(),
        lease.release(),
    ));

    let staging = state.import.stores.staging().clone();
    let mut writer = match staging.writer(id).await {
        Ok(w) => w,
        Err(e) => {
            guard.run().await;
            return Err(store_error(id, "cannot open the staging store", e));
        }
    };
    let size = match receive(&mut payload, &mut writer, cap, &lease).await {
        Ok(size) => size,
        Err(e) => {
            // The partial data goes first, so a full disk has room for the restore.
            writer.abort().await;
            guard.run().await;
            return Err(e);
        }
    };
    lease.finishing();
    if let Err(e) = writer.commit().await {
        guard.run().await;
        return Err(store_error(id, "staging image data failed", e));
    }
    let mut staged = uploading.clone();
    staged.size = Some(size as i64);
    match state
        .gateway
        .save_leased(&ctx, staged, ImageStatus::Uploading, lease.release())
        .await
    {
        Ok(_) => {
            guard.disarm();
            tracing::info!(image_id = %id, size, "image data staged");
            Ok(HttpResponse::NoContent().finish())
        }
        Err(ApiError::NotFound(_)) | Err(ApiError::Conflict(_)) => {
            guard.disarm();
            glance_import::remove_staged(&staging, id).await;
            Err(ApiError::Gone(format!(
                "Image {id} could not be found after staging. The image may have been deleted."
            )))
        }
        Err(e) if staged_anyway(&state, id, size).await => {
            // The reply was lost, not the save: the image says its data is staged.
            guard.disarm();
            tracing::warn!(image_id = %id, error = %e, "the save of a stage looked failed but was recorded");
            Ok(HttpResponse::NoContent().finish())
        }
        Err(e @ ApiError::RegistryUnreachable(_)) => {
            // No registry answered, so the save may still land: the staged data goes only
            // once the image is back in `queued`. If it cannot be put back, the data stays:
            // a staged image if the save landed, else an image whose lease runs out and
            // which the sweep puts back.
            guard.disarm();
            if put_back(&state, &ctx, uploading, lease.release()).await {
                glance_import::remove_staged(&staging, id).await;
            } else {
                tracing::warn!(image_id = %id, "stage failed and the image could not be put back to queued: its staged data is kept");
            }
            Err(e)
        }
        Err(e) => {
            guard.run().await;
            Err(e)
        }
    }
}

/// Whether image `id` was recorded as staged with `size` bytes after all.
async fn staged_anyway(state: &AppState, id: glance_domain::ImageId, size: u64) -> bool {
    let admin = RequestContext::admin(glance_telemetry::new_request_id());
    state.gateway.get(&admin, id).await.is_ok_and(|image| {
        image.status == ImageStatus::Uploading && image.size == Some(size as i64)
    })
}

/// The request's bytes into the staging writer, within the size cap; returns the size.
async fn receive(
    payload: &mut web::Payload,
    writer: &mut Box<dyn glance_store::StoreWriter>,
    cap: u64,
    lease: &Lease,
) -> ApiResult<u64> {
    // Staged bytes are only counted: their hashes and format are checked by the import.
    let mut ingest = Ingest::new(cap);
    let refused = |e: IngestError| match e {
        IngestError::TooLarge(cap) => too_large(cap),
        IngestError::Store(StoreError::Full { .. }) => storage_full(),
        other => ApiError::Internal(format!("staging image data failed: {other}")),
    };
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("Error receiving image data: {e}")))?;
        lease.check()?;
        lease.progressed(chunk.len() as u64);
        ingest.push(&chunk, writer).await.map_err(refused)?;
    }
    let size = ingest.finish(writer).await.map_err(refused)?.size;
    lease.check()?;
    Ok(size)
}

fn too_large(cap: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "Image exceeds the storage quota: the image size cap is {cap} bytes."
    ))
}

/// Glance's `_unstage`: drops the staged data and puts the image back to `queued` (run
/// by the guard unless disarmed, from `Drop` too, so a client that vanishes mid-stream
/// leaves nothing behind).
async fn unstage(
    state: web::Data<AppState>,
    ctx: RequestContext,
    image: Image,
    release: LeaseChange,
) {
    let staging = state.import.stores.staging();
    glance_import::remove_staged(staging, image.id).await;
    put_back(&state, &ctx, image, release).await;
}

/// Puts a staging image back to `queued`; whether that was saved.
async fn put_back(
    state: &AppState,
    ctx: &RequestContext,
    mut image: Image,
    release: LeaseChange,
) -> bool {
    image.status = ImageStatus::Queued;
    image.size = None;
    image.virtual_size = None;
    let gateway: &Gateway = &state.gateway;
    match gateway
        .save_leased(ctx, image, ImageStatus::Uploading, release)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not restore image to queued after a failed stage");
            false
        }
    }
}
