//! The sweep every API node runs at start and every `[glance_upload] sweep_interval`:
//!
//! * images whose upload lease ran out (their uploader died, stalled or lost the bus) get
//!   their partial data removed, then go back to `queued` (the registry's compare-and-set
//!   on status, holder and expiry makes that happen once, whichever node gets there first);
//! * files in the stores' incoming areas and the staging area that no live upload or
//!   import owns, and incomplete cache files nobody wrote to for a lease, are removed.
//!
//! Only API nodes sweep: they hold the stores (registries do not). Imports in progress are
//! the import workers' (their stale-task sweep, `[import_worker] stale_after`); files of an
//! image an import holds are never touched here.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use actix_web::web;
use glance_domain::{ImageId, ImageStatus, RequestContext};
use glance_proto::leases::{ExpiredLease, UploadState};
use glance_service::Periodic;
use glance_store::{Partial, Store};

use crate::AppState;

/// The `upload-sweep` worker: a pass now, then every `sweep_interval` (re-read each time,
/// so a reload applies).
pub fn worker(state: web::Data<AppState>) -> Periodic {
    let every = state.config().upload.sweep_interval;
    let config = state.clone();
    Periodic::new("upload-sweep", every, move || {
        let state = state.clone();
        async move { sweep(&state).await }
    })
    .every_with(move || config.config().upload.sweep_interval)
}

/// One pass; what it did is logged.
pub async fn sweep(state: &AppState) {
    let ctx = RequestContext::admin(glance_telemetry::new_request_id());
    let lease_seconds = state.config().upload.lease_seconds;
    match state.gateway.expired_leases(&ctx, lease_seconds).await {
        Ok(expired) => {
            for lease in expired {
                recover(state, &ctx, lease, lease_seconds).await;
            }
        }
        Err(e) => tracing::debug!(error = %e, "upload sweep: registry not reachable"),
    }
    remove_orphans(state, &ctx).await;
    if let Some(node) = &state.cache {
        let cache = node.cache.clone();
        let stall = Duration::from_secs(u64::from(lease_seconds));
        let _ = tokio::task::spawn_blocking(move || cache.remove_stalled_incomplete(stall)).await;
    }
}

/// Removes the partial data of an upload whose lease ran out, then puts its image back.
async fn recover(state: &AppState, ctx: &RequestContext, lease: ExpiredLease, lease_seconds: u32) {
    let id = lease.image_id;
    // Still as found? A retry that started since holds a live lease on the same image.
    match state.gateway.upload_states(ctx, vec![id]).await {
        Ok(states)
            if states
                .first()
                .is_some_and(|s| s.status == Some(lease.status) && !s.live_lease) => {}
        _ => return,
    }
    let staging = state.import.stores.staging();
    let mut removed = Vec::new();
    let found = match lease.status {
        ImageStatus::Uploading => {
            let mut all = staging.partials().await.unwrap_or_default();
            all.extend(staging.committed().await.unwrap_or_default());
            all
        }
        _ => state.store.partials().await.unwrap_or_default(),
    };
    for file in found.into_iter().filter(|f| f.image_id == id) {
        let gone = if file.path.parent() == Some(staging.dir()) {
            staging.remove_committed(&file).await
        } else if lease.status == ImageStatus::Uploading {
            staging.remove_partial(&file).await
        } else {
            state.store.remove_partial(&file).await
        };
        match gone {
            Ok(()) => removed.push(file.path.display().to_string()),
            Err(e) => {
                // Put the image back only once its data is gone; the next sweep retries.
                tracing::warn!(image_id = %id, path = %file.path.display(), error = %e,
                    "could not remove the partial data of an abandoned upload");
                return;
            }
        }
    }
    let holder = lease.holder.clone().unwrap_or_default();
    let status = lease.status;
    match state.gateway.break_lease(ctx, lease, lease_seconds).await {
        Ok(true) => tracing::warn!(image_id = %id, %holder, %status, ?removed,
            "upload lease ran out (its uploader died, stalled or lost the bus): partial data removed, image back to queued"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(image_id = %id, error = %e, "could not put an abandoned upload's image back")
        }
    }
}

/// Where a file was found, which says who may own it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    /// A store's incoming area: a live upload or import writing.
    Incoming,
    /// The staging area's incoming files: a live stage or web-download writing.
    StagingIncoming,
    /// Staged data: kept while its image waits for (or runs) its import.
    Staged,
}

async fn remove_orphans(state: &AppState, ctx: &RequestContext) {
    let started = SystemTime::now();
    let staging = state.import.stores.staging();
    let mut files: Vec<(Area, Partial)> = Vec::new();
    let listed = [
        (Area::Incoming, state.store.partials().await),
        (Area::StagingIncoming, staging.partials().await),
        (Area::Staged, staging.committed().await),
    ];
    for (area, found) in listed {
        match found {
            Ok(found) => files.extend(found.into_iter().map(|f| (area, f))),
            Err(e) => tracing::warn!(error = %e, "upload sweep: cannot list a store's files"),
        }
    }
    if files.is_empty() {
        return;
    }
    let mut ids: Vec<ImageId> = files.iter().map(|(_, f)| f.image_id).collect();
    ids.sort();
    ids.dedup();
    let mut states: HashMap<ImageId, UploadState> = HashMap::new();
    for chunk in ids.chunks(100) {
        match state.gateway.upload_states(ctx, chunk.to_vec()).await {
            Ok(found) => states.extend(found.into_iter().map(|s| (s.image_id, s))),
            Err(e) => {
                tracing::debug!(error = %e, "upload sweep: registry not reachable");
                return;
            }
        }
    }
    for (area, file) in files {
        let Some(owner) = states.get(&file.image_id) else {
            continue;
        };
        let orphan = match area {
            Area::Incoming | Area::StagingIncoming => !owner.may_be_writing(),
            Area::Staged => !owner.keeps_staged_data(),
        };
        // Listed before the registry was asked, and unchanged since: not a file a write
        // that began after the question made (or replaced).
        if !orphan || file.changed >= started || changed_since(&file) {
            continue;
        }
        let gone = match area {
            Area::Incoming => state.store.remove_partial(&file).await,
            Area::StagingIncoming => staging.remove_partial(&file).await,
            Area::Staged => staging.remove_committed(&file).await,
        };
        match gone {
            Ok(()) => tracing::info!(image_id = %file.image_id, path = %file.path.display(),
                "removed image data no live upload or import owns"),
            Err(e) => tracing::warn!(path = %file.path.display(), error = %e,
                "could not remove an orphaned image file"),
        }
    }
}

/// Whether the file changed (or was replaced) since it was listed.
fn changed_since(file: &Partial) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(Path::new(&file.path)) else {
        return true;
    };
    let ctime =
        std::time::UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    meta.modified().map_or(ctime, |m| m.max(ctime)) != file.changed
}
