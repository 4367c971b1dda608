//! `PUT /v2/images/{id}/file`: bytes stream from the client through the ingest (size cap,
//! format inspector, both hashers; see [`super::ingest`]) into the store; the image moves queued -> saving -> active, and back to
//! queued with nothing kept if anything fails on the way.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use glance_digest::Algorithm;
use glance_domain::{Image, ImageId, ImageStatus, Location, RequestContext};
use glance_format::FormatError;

use super::lease::{self, Lease};
use super::Undo;
use crate::error::{ApiError, ApiResult};
use crate::gateway::{authorize_modify, Gateway};
use crate::identity::Caller;
use crate::images::handlers::{declared_length, image_id, require_octet_stream};
use crate::AppState;
use glance_import::ingest::{Ingest, IngestError, Ingested};
use glance_proto::leases::LeaseChange;
use glance_store::StoreError;

struct Received {
    location: String,
    size: u64,
    md5: String,
    multihash: String,
    virtual_size: Option<u64>,
}

pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    require_octet_stream(&req)?;
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    let config = state.config();
    authorize_modify(&config.access.policy, &ctx, &image, "upload_image")?;
    if image.status != ImageStatus::Queued {
        return Err(ApiError::Conflict(format!(
            "Image status transition from {} to saving is not allowed",
            image.status
        )));
    }
    let Some(disk_format) = image
        .disk_format
        .filter(|_| image.container_format.is_some())
    else {
        return Err(ApiError::BadRequest(
            "Properties disk_format, container_format must be set prior to saving data.".into(),
        ));
    };
    // With enabled_backends, `X-Image-Meta-Store` picks the store (400 for an unknown one).
    let target = crate::import::upload_target(&req, &state)?;
    let size_cap = Limit::SizeCap(state.config().image_size_cap);
    // `user_storage_quota`: what the owner may still store bounds this upload like the
    // size cap does (Glance's `check_quota`).
    let cap = match (config.access.quotas.user_storage, image.owner.clone()) {
        (Some(quota), Some(owner)) => {
            let used = state.gateway.storage_usage(&ctx, owner, Some(id)).await?;
            let remaining = quota.saturating_sub(used);
            let declared_size = declared_length(&req);
            if remaining == 0 || declared_size.is_some_and(|n| n > remaining) {
                return Err(ApiError::PayloadTooLarge(format!(
                    "The size of the data {} will exceed the limit. {remaining} bytes remaining.",
                    declared_size.map_or_else(|| "(unknown)".to_owned(), |n| n.to_string())
                )));
            }
            if remaining < size_cap.bytes() {
                Limit::Quota(remaining)
            } else {
                size_cap
            }
        }
        _ => size_cap,
    };
    let declared = declared_length(&req);
    if declared.is_some_and(|n| n > cap.bytes()) {
        return Err(cap.exceeded());
    }

    // From here on the image must end active or back in queued, whatever happens to this
    // request, including the client going away and the handler being dropped; and if this
    // process dies, the lease runs out and another node's sweep puts it back.
    let (saving, lease) = lease::begin(
        &state,
        &ctx,
        image,
        ImageStatus::Saving,
        "uploaded",
        config.upload,
    )
    .await?;
    let guard = {
        let (gateway, ctx, saving) = (state.gateway.clone(), ctx.clone(), saving.clone());
        let release = lease.release();
        Undo::new(async move {
            restore_queued(gateway, ctx, saving, release).await;
        })
    };

    let received = match receive(
        &state,
        &saving,
        disk_format,
        payload,
        cap,
        target.as_ref(),
        &lease,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            guard.run().await;
            return Err(e);
        }
    };
    // Uploads of one project running side by side may pass the quota together: with the
    // size known, check again (as Glance's quota `ImageProxy.set_data` does).
    if let Err(e) = recheck_storage_quota(&state, &ctx, &saving, received.size).await {
        state
            .remove_data(&ctx, id, [received.location.clone()])
            .await;
        guard.run().await;
        return Err(e);
    }

    let mut active = saving.clone();
    active.status = ImageStatus::Active;
    active.size = Some(received.size as i64);
    active.virtual_size = glance_import::recorded_virtual_size(received.virtual_size);
    active.checksum = Some(received.md5);
    active.os_hash_algo = Some(state.config().hashing_algorithm.clone());
    active.os_hash_value = Some(received.multihash);
    active.locations = vec![Location {
        url: received.location.clone(),
        metadata: target
            .iter()
            .map(|b| ("store".to_owned(), b.id.clone()))
            .collect(),
        status: "active".into(),
    }];
    let saved = state
        .gateway
        .save_leased(&ctx, active, ImageStatus::Saving, lease.release())
        .await;
    let error = match saved {
        Ok(_) => None,
        // An error does not prove the save did not land: a registry that committed it and
        // died before acknowledging leaves the request to another, which then finds the image
        // active (a conflict); a broker lost meanwhile fails the call (503) whatever became
        // of it. So look before removing data an active record may already point to.
        Err(e) if saved_anyway(&state, id, &received.location).await => {
            tracing::warn!(image_id = %id, error = %e, "the save of the upload answered an error but had landed");
            None
        }
        Err(e) => Some(e),
    };
    guard.disarm();
    let Some(error) = error else {
        tracing::info!(image_id = %id, size = received.size, "image uploaded");
        return Ok(HttpResponse::NoContent().finish());
    };
    match error {
        ApiError::NotFound(_) | ApiError::Conflict(_) => {
            // Deleted (or otherwise changed) while we were receiving: keep nothing.
            state
                .remove_data(&ctx, id, [received.location.clone()])
                .await;
            Err(ApiError::Gone(format!(
                "Image {id} could not be found after upload. The image may have been deleted during the upload."
            )))
        }
        e => {
            // When no registry answered, the data goes only once the image is back in
            // queued: then no record points to it, and a save still on its way can no longer
            // land (it wants `saving`). If the image cannot be put back, the data stays (the
            // lease runs out and the sweep puts the image back): an orphan file at worst,
            // never an active image without its data.
            // A registry's own error (a full database, say) means the save was not made
            // and will not be: only a registry nobody heard from may still make it.
            let restored =
                restore_queued(state.gateway.clone(), ctx.clone(), saving, lease.release()).await;
            if restored || !matches!(e, ApiError::RegistryUnreachable(_)) {
                state
                    .remove_data(&ctx, id, [received.location.clone()])
                    .await;
            } else {
                tracing::warn!(image_id = %id, location = %received.location, "upload failed and the image could not be put back to queued: its data is kept");
            }
            Err(e)
        }
    }
}

/// Whether image `id` is active with its data at `location`: the save of this upload landed.
async fn saved_anyway(state: &AppState, id: ImageId, location: &str) -> bool {
    let admin = RequestContext::admin(glance_telemetry::new_request_id());
    state.gateway.get(&admin, id).await.is_ok_and(|image| {
        image.status == ImageStatus::Active && image.locations.iter().any(|l| l.url == location)
    })
}

async fn recheck_storage_quota(
    state: &AppState,
    ctx: &RequestContext,
    image: &Image,
    size: u64,
) -> ApiResult<()> {
    let (Some(quota), Some(owner)) = (
        state.config().access.quotas.user_storage,
        image.owner.clone(),
    ) else {
        return Ok(());
    };
    let used = state
        .gateway
        .storage_usage(ctx, owner, Some(image.id))
        .await?;
    if used.saturating_add(size) > quota {
        return Err(ApiError::PayloadTooLarge(format!(
            "The size of the data {size} will exceed the limit. {} bytes remaining.",
            quota.saturating_sub(used)
        )));
    }
    Ok(())
}

/// What bounds an upload: the size cap, or what is left of the owner's storage quota when
/// that is less. Each says so in its 413.
#[derive(Debug, Clone, Copy)]
enum Limit {
    SizeCap(u64),
    Quota(u64),
}

impl Limit {
    fn bytes(self) -> u64 {
        match self {
            Limit::SizeCap(n) | Limit::Quota(n) => n,
        }
    }

    fn exceeded(self) -> ApiError {
        ApiError::PayloadTooLarge(match self {
            Limit::SizeCap(cap) => {
                format!("Image exceeds the storage quota: the image size cap is {cap} bytes.")
            }
            Limit::Quota(remaining) => format!(
                "The size of the data will exceed the limit of the storage quota. {remaining} bytes remaining."
            ),
        })
    }
}

fn format_error(e: FormatError) -> ApiError {
    ApiError::UnsupportedMediaType(e.to_string())
}

async fn receive(
    state: &AppState,
    image: &Image,
    disk_format: glance_domain::DiskFormat,
    payload: web::Payload,
    cap: Limit,
    target: Option<&glance_store::Backend>,
    lease: &Lease,
) -> ApiResult<Received> {
    let multihash = configured_multihash(state)?;
    let mut writer = target
        .map_or(&state.store, |b| &b.store)
        .writer(image.id)
        .await
        .map_err(|e| store_error(image.id, "cannot open store for writing", e))?;
    let ingest = Ingest::new(cap.bytes())
        .inspecting(disk_format, state.config().require_image_format_match)
        .hashing(multihash);
    let ingested = match pump(ingest, payload, lease, &mut writer).await {
        Ok(done) => done,
        Err(e) => {
            // What was written goes before the caller restores the image, so a full disk
            // has its room back by then.
            writer.abort().await;
            return Err(match e {
                Refused::Ingest(e) => ingest_error(e, cap),
                Refused::Api(e) => e,
            });
        }
    };
    lease.finishing();
    let location = writer
        .commit()
        .await
        .map_err(|e| store_error(image.id, "storing image data failed", e))?;
    let digests = ingested.digests.expect("hashed");
    Ok(Received {
        location,
        size: ingested.size,
        md5: digests.md5,
        multihash: digests.multihash,
        virtual_size: ingested.virtual_size,
    })
}

/// `[DEFAULT] hashing_algorithm`, checked when the configuration was read.
fn configured_multihash(state: &AppState) -> ApiResult<Algorithm> {
    let name = &state.config().hashing_algorithm;
    name.parse()
        .map_err(|_| ApiError::Internal(format!("hashing_algorithm {name} is not computed here")))
}

/// The message Glance answers a full store with (its `StorageFull`, as a 413).
pub(crate) fn storage_full() -> ApiError {
    ApiError::PayloadTooLarge(
        "Image storage media is full: There is not enough disk space on the image storage media."
            .into(),
    )
}

/// A store failure as the client sees it: a full store is 413, anything else 500.
pub(crate) fn store_error(id: glance_domain::ImageId, what: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::Full { path } => {
            tracing::error!(image_id = %id, path = %path.display(),
                "image storage media is full; the partial data was removed");
            storage_full()
        }
        other => ApiError::Internal(format!("{what}: {other}")),
    }
}

enum Refused {
    Ingest(IngestError),
    Api(ApiError),
}

/// Bytes from the client into `ingest` under the upload's lease.
async fn pump(
    mut ingest: Ingest,
    mut payload: web::Payload,
    lease: &Lease,
    writer: &mut Box<dyn glance_store::StoreWriter>,
) -> Result<Ingested, Refused> {
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Refused::Api(ApiError::BadRequest(format!(
                "Error receiving image data: {e}"
            )))
        })?;
        lease.check().map_err(Refused::Api)?;
        lease.progressed(chunk.len() as u64);
        ingest.push(&chunk, writer).await.map_err(Refused::Ingest)?;
    }
    let ingested = ingest.finish(writer).await.map_err(Refused::Ingest)?;
    lease.check().map_err(Refused::Api)?;
    Ok(ingested)
}

/// An ingest's refusal as the client sees it.
fn ingest_error(e: IngestError, cap: Limit) -> ApiError {
    match e {
        IngestError::TooLarge(_) => cap.exceeded(),
        IngestError::Format(e) => format_error(e),
        IngestError::Store(StoreError::Full { .. }) => storage_full(),
        IngestError::Store(other) => {
            ApiError::Internal(format!("writing image data failed: {other}"))
        }
    }
}

/// Puts a `saving` image back to `queued` (the undo of a failed or cancelled upload),
/// releasing its lease. A lease already lost means another node's sweep restores it.
async fn restore_queued(
    gateway: Gateway,
    ctx: RequestContext,
    mut image: Image,
    release: LeaseChange,
) -> bool {
    image.status = ImageStatus::Queued;
    image.size = None;
    image.virtual_size = None;
    match gateway
        .save_leased(&ctx, image, ImageStatus::Saving, release)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "could not restore image to queued after a failed upload");
            false
        }
    }
}
