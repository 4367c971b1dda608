//! One scrub job: re-read the image (or artifact), remove its data, tell the registry.

use std::sync::atomic::Ordering;

use glance_bus::{BusError, Outcome};
use glance_domain::{ArtifactStatus, Image, ImageStatus};
use glance_proto::glare::{DeleteArtifact, GetArtifact};
use glance_proto::registry::GetImage;
use glance_proto::scrub::{ClaimScrub, FinishScrub, ScrubImage};
use glance_registry_client::CallError;
use tracing::Instrument;

use crate::Scrubber;

impl Scrubber {
    /// Handles one job. Idempotent: only a `pending_delete` image is scrubbed, and removing
    /// data that is already gone succeeds.
    pub async fn scrub(&self, job: &ScrubImage) -> Outcome {
        let span = tracing::info_span!("scrub", image_id = %job.image_id);
        let outcome = self.scrub_inner(job).instrument(span).await;
        match &outcome {
            Outcome::Done => {}
            Outcome::Retry(_) | Outcome::Reject(_) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        outcome
    }

    async fn scrub_inner(&self, job: &ScrubImage) -> Outcome {
        if job.artifact {
            return self.scrub_artifact(job).await;
        }
        let ctx = self.ctx();
        let req = GetImage {
            ctx: ctx.clone(),
            id: job.image_id,
            include_deleted: true,
        };
        let image = match self.registry.call(Some(ctx.request_id.clone()), &req).await {
            Ok(image) => Some(image),
            Err(e) if e.missing().is_some() => None,
            Err(e) => return retry(format!("registry: {e}")).await,
        };
        let status = image.as_ref().map(|i| i.status);
        // Extra locations come from a delete that could not remove them at once; only an
        // image that is gone for good may lose them.
        let mut urls: Vec<String> = match status {
            None | Some(ImageStatus::Deleted) | Some(ImageStatus::PendingDelete) => {
                job.locations.clone()
            }
            Some(_) => Vec::new(),
        };
        let pending = status == Some(ImageStatus::PendingDelete);
        if pending {
            urls.extend(pending_urls(image.as_ref().expect("pending image")));
        }
        if urls.is_empty() && !pending {
            tracing::debug!(?status, "nothing to scrub");
            return Outcome::Done;
        }
        if pending {
            // From here on a restore is refused: the data may be partly gone.
            let req = ClaimScrub {
                ctx: ctx.clone(),
                image_id: job.image_id,
            };
            match self.registry.call(Some(ctx.request_id.clone()), &req).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!("image restored or scrubbed meanwhile; nothing to do");
                    return Outcome::Done;
                }
                Err(e) => return retry(format!("registry: {e}")).await,
            }
        }
        tracing::info!(locations = urls.len(), "scrubbing image");
        for url in &urls {
            if !self.config.delete_delay.is_zero() {
                tokio::time::sleep(self.config.delete_delay).await;
            }
            if let Err(e) = self.store.delete(url).await {
                // The image stays pending_delete; the job goes back to the queue.
                return retry(format!("store delete of {url} failed: {e}")).await;
            }
        }
        if pending {
            let req = FinishScrub {
                ctx: ctx.clone(),
                image_id: job.image_id,
            };
            match self.registry.call(Some(ctx.request_id.clone()), &req).await {
                Ok(true) => {
                    tracing::info!("image scrubbed");
                    self.stats.scrubbed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => tracing::warn!("image left pending_delete while being scrubbed"),
                Err(e @ CallError::Bus(BusError::Malformed(_))) => {
                    return Outcome::Reject(e.to_string())
                }
                Err(e) => return retry(format!("registry: {e}")).await,
            }
        } else {
            self.stats.scrubbed.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Done
    }
}

impl Scrubber {
    /// An artifact left `deleted` by a delayed delete: its blobs' data, then its record.
    /// Anything else (gone already, or not deleted) is nothing to do.
    async fn scrub_artifact(&self, job: &ScrubImage) -> Outcome {
        let ctx = self.ctx();
        let rid = Some(ctx.request_id.clone());
        let id = *job.image_id.as_uuid();
        let req = GetArtifact {
            ctx: ctx.clone(),
            type_name: None,
            id,
        };
        let artifact = match self.registry.call(rid.clone(), &req).await {
            Ok(a) if a.status == ArtifactStatus::Deleted => a,
            Ok(_) => {
                tracing::debug!("artifact not deleted; nothing to scrub");
                return Outcome::Done;
            }
            Err(e) if e.missing().is_some() => {
                tracing::debug!("artifact gone; nothing to scrub");
                return Outcome::Done;
            }
            Err(e) => return retry(format!("registry: {e}")).await,
        };
        let urls = artifact.blob_locations();
        tracing::info!(locations = urls.len(), "scrubbing artifact");
        for url in &urls {
            if !self.config.delete_delay.is_zero() {
                tokio::time::sleep(self.config.delete_delay).await;
            }
            if let Err(e) = self.store.delete(url).await {
                // The record stays `deleted`; the job goes back to the queue.
                return retry(format!("store delete of {url} failed: {e}")).await;
            }
        }
        for upload in artifact.saving_uploads() {
            if let Ok(upload) = upload.parse() {
                self.store.remove_partials_of(upload).await;
            }
        }
        let req = DeleteArtifact {
            ctx: ctx.clone(),
            id,
            revision: artifact.revision,
        };
        match self.registry.call(rid, &req).await {
            Err(e) if e.missing().is_none() => retry(format!("registry: {e}")).await,
            _ => {
                tracing::info!("artifact scrubbed");
                self.stats.scrubbed.fetch_add(1, Ordering::Relaxed);
                Outcome::Done
            }
        }
    }
}

/// The locations of a `pending_delete` image: those the delete marked, and any the record
/// still holds.
fn pending_urls(image: &Image) -> Vec<String> {
    image
        .locations
        .iter()
        .filter(|l| l.status != "deleted")
        .map(|l| l.url.clone())
        .collect()
}

/// A failed job goes back to the queue after a pause (`consume_work` backs off), so a store
/// that is down is not hammered; the broker bounds the attempts, and the next wakeup
/// schedules the image again.
async fn retry(reason: String) -> Outcome {
    tracing::warn!(%reason, "scrub failed; will retry");
    Outcome::Retry(reason)
}
