//! An upload's hold on its image: taken with the status change that starts the upload,
//! renewed while bytes arrive, released with the status change that ends it. A process
//! that dies (or loses the bus) stops renewing; the sweep ([`super::sweep`]) of any API
//! node then removes the partial data and puts the image back to `queued`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use glance_config::UploadSettings;
use glance_domain::{Image, ImageId, ImageStatus, RequestContext};
use glance_proto::leases::LeaseChange;

use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::AppState;

/// `host:pid:nonce`: which process holds a lease, for the operator reading the table or a
/// log line.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &nonce[..8])
}

/// A name for one upload's lease: this process, then a nonce of its own.
pub(crate) fn new_holder(instance: &str) -> String {
    format!("{instance}/{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn take(holder: &str, settings: &UploadSettings) -> LeaseChange {
    LeaseChange::Take {
        holder: holder.to_owned(),
        seconds: settings.lease_seconds,
    }
}

/// Starts an upload of `image`: moves it from `queued` to `to` (`saving` for an upload,
/// `uploading` for a stage) with the same save that takes a new lease, and starts renewing
/// the lease. Another upload, or any status change since `image` was read, is a 409 that
/// says the image is already being `doing`.
pub(crate) async fn begin(
    state: &AppState,
    ctx: &RequestContext,
    mut image: Image,
    to: ImageStatus,
    doing: &str,
    settings: UploadSettings,
) -> ApiResult<(Image, Lease)> {
    let id = image.id;
    image.status = to;
    let holder = new_holder(&state.instance);
    let taken = take(&holder, &settings);
    let started = state
        .gateway
        .save_leased(ctx, image, ImageStatus::Queued, taken)
        .await
        .map_err(|e| match e {
            ApiError::Conflict(_) => ApiError::Conflict(format!(
                "Image {id} is already being {doing} or its status changed"
            )),
            other => other,
        })?;
    let lease = Lease::hold(state.gateway.clone(), ctx.clone(), id, holder, settings);
    Ok((started, lease))
}

/// A lease this upload holds, renewed in the background while it makes progress.
pub(crate) struct Lease {
    holder: String,
    progress: Arc<AtomicU64>,
    finishing: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Starts renewing `holder`'s lease on `id`, taken by the save that began the upload.
    pub(crate) fn hold(
        gateway: Gateway,
        ctx: RequestContext,
        id: ImageId,
        holder: String,
        settings: UploadSettings,
    ) -> Self {
        let progress = Arc::new(AtomicU64::new(0));
        let finishing = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn({
            let (holder, progress, finishing, lost) = (
                holder.clone(),
                progress.clone(),
                finishing.clone(),
                lost.clone(),
            );
            async move {
                let mut tick = tokio::time::interval(settings.renew_every());
                tick.tick().await;
                let mut seen = 0;
                loop {
                    tick.tick().await;
                    // Only an upload whose bytes still flow (or that is storing what it
                    // received) keeps its image: a client that stalls past the lease loses
                    // it, as a dead process does.
                    let now = progress.load(Ordering::Relaxed);
                    if now == seen && !finishing.load(Ordering::Relaxed) {
                        continue;
                    }
                    seen = now;
                    match gateway
                        .renew_lease(&ctx, id, &holder, settings.lease_seconds)
                        .await
                    {
                        Ok(()) => {}
                        Err(ApiError::Conflict(_)) | Err(ApiError::NotFound(_)) => {
                            tracing::warn!(image_id = %id, %holder, "upload lease lost");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(image_id = %id, error = %e, "upload lease not renewed")
                        }
                    }
                }
            }
        });
        Self {
            holder,
            progress,
            finishing,
            lost,
            renewer,
        }
    }

    /// Bytes arrived: the lease is worth renewing.
    pub(crate) fn progressed(&self, bytes: u64) {
        self.progress.fetch_add(bytes.max(1), Ordering::Relaxed);
    }

    /// Everything arrived; the data is being made durable and recorded.
    pub(crate) fn finishing(&self) {
        self.finishing.store(true, Ordering::Relaxed);
    }

    /// `Err` once the lease ran out or was taken over: the upload must keep nothing.
    pub(crate) fn check(&self) -> ApiResult<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(ApiError::ServiceUnavailable(
                "The upload stalled for longer than its lease and was abandoned; upload again"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The change that ends the upload, only while this lease still holds.
    pub(crate) fn release(&self) -> LeaseChange {
        LeaseChange::Release {
            holder: self.holder.clone(),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
