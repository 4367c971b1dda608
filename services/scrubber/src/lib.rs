//! The scrubber: removes the data of images, and of the glare service's artifacts, deleted
//! under delayed delete.
//!
//! Deleting an image with `[DEFAULT] delayed_delete` leaves it `pending_delete` with its
//! locations; deleting an artifact leaves it `deleted` with its blobs (Glare's delayed
//! delete, which glare's own scrubber finished), and its jobs say `artifact`. Each wakeup a scrubber asks the registry for the images whose `deleted_at` is
//! at least `scrub_time` old and publishes one durable scrub job per image on the work queue
//! `glance.v1.scrub`. Every scrubber consumes that queue, at most `scrub_pool_size` jobs at a
//! time; a job is acknowledged only once the image's data is gone and the registry has
//! marked it `deleted`, so a scrubber killed mid-job leaves the job to another. Jobs are
//! hints: the handler re-reads the image, so a duplicate job, or a job for an image restored
//! or already scrubbed, does nothing.
//!
//! The daemon's workers are in [`daemon`]: a wakeup pass still going when the next wakeup
//! comes makes that wakeup wait for it.

pub mod config;
pub mod daemon;
mod job;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use glance_bus::{Bus, BusError};
use glance_domain::{Artifact, Image, ImageId, RequestContext};
use glance_proto::scrub::{
    Backlog, ListDeletedArtifacts, ListPendingDelete, RestoreImage, ScrubBacklog, ScrubImage,
    SCRUB_KEY,
};
use glance_registry_client::{CallError, RegistryClient};
use glance_store::Store;

pub use config::ScrubberConfig;

/// Why a scrubber request failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error(transparent)]
    Registry(#[from] CallError),
}

impl From<BusError> for ScrubError {
    fn from(e: BusError) -> Self {
        ScrubError::Registry(e.into())
    }
}

/// Images read from the registry per request.
const PAGE: u32 = 500;

/// One scrubber: the bus to the registry and the queue, and the store holding the data.
/// Cheap to clone.
#[derive(Clone)]
pub struct Scrubber {
    bus: Bus,
    registry: RegistryClient,
    store: Arc<dyn Store>,
    config: ScrubberConfig,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    backlog: Mutex<Option<Backlog>>,
    last_run: Mutex<Option<DateTime<Utc>>>,
    scheduled: AtomicU64,
    scrubbed: AtomicU64,
    failures: AtomicU64,
}

/// What a one-shot run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub due: usize,
    pub scrubbed: usize,
    pub failed: usize,
}

impl Scrubber {
    pub fn new(bus: Bus, store: Arc<dyn Store>, config: ScrubberConfig) -> Self {
        Self {
            registry: RegistryClient::new(bus.clone()),
            bus,
            store,
            config,
            stats: Arc::default(),
        }
    }

    pub fn config(&self) -> &ScrubberConfig {
        &self.config
    }

    fn ctx(&self) -> RequestContext {
        RequestContext::admin(format!("req-scrubber-{}", ImageId::new()))
    }

    /// The end of the window: what was deleted at or before this is due.
    fn due_before(&self) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::from_std(self.config.scrub_time).unwrap_or_default()
    }

    /// Every `pending_delete` image due for scrubbing now, oldest first.
    pub async fn due_images(&self) -> Result<Vec<Image>, ScrubError> {
        let (deleted_before, ctx) = (self.due_before(), self.ctx());
        let page = |marker| {
            let req = ListPendingDelete {
                ctx: ctx.clone(),
                deleted_before,
                limit: PAGE,
                marker,
            };
            let (registry, rid) = (&self.registry, Some(ctx.request_id.clone()));
            async move { Ok(registry.call(rid, &req).await?) }
        };
        all_pages(page, |image: &Image| image.id).await
    }

    /// Every artifact a delayed delete left `deleted` at least `scrub_time` ago, oldest
    /// first (Glare's scrubber's query).
    pub async fn due_artifacts(&self) -> Result<Vec<Artifact>, ScrubError> {
        let (deleted_before, ctx) = (self.due_before(), self.ctx());
        let page = |marker| {
            let req = ListDeletedArtifacts {
                ctx: ctx.clone(),
                deleted_before,
                limit: PAGE,
                marker,
            };
            let (registry, rid) = (&self.registry, Some(ctx.request_id.clone()));
            async move { Ok(registry.call(rid, &req).await?) }
        };
        all_pages(page, |a: &Artifact| a.id).await
    }

    /// The jobs due now: one per `pending_delete` image, then one per `deleted` artifact.
    async fn due_jobs(&self) -> Result<Vec<ScrubImage>, ScrubError> {
        let images = self
            .due_images()
            .await?
            .into_iter()
            .map(|image| ScrubImage {
                image_id: image.id,
                locations: Vec::new(),
                artifact: false,
            });
        let artifacts = self.due_artifacts().await?.into_iter().map(|a| ScrubImage {
            image_id: ImageId::from(a.id),
            locations: Vec::new(),
            artifact: true,
        });
        Ok(images.chain(artifacts).collect())
    }

    /// One wakeup: a durable scrub job for each due image and artifact. Returns how many.
    pub async fn schedule_due(&self) -> Result<usize, ScrubError> {
        let due = self.due_jobs().await?;
        for job in &due {
            self.bus.publish_work(SCRUB_KEY, None, job).await?;
        }
        self.stats
            .scheduled
            .fetch_add(due.len() as u64, Ordering::Relaxed);
        *self.stats.last_run.lock().expect("stats lock") = Some(Utc::now());
        if !due.is_empty() {
            tracing::info!(jobs = due.len(), "scrub jobs scheduled");
        }
        Ok(due.len())
    }

    /// A one-shot run (`glance-scrubber` without `--daemon`): scrubs every due image and
    /// artifact here, `scrub_pool_size` at a time, and reports. Failures stay for the next
    /// run.
    pub async fn run_once(&self) -> Result<RunReport, ScrubError> {
        let due = self.due_jobs().await?;
        let mut report = RunReport {
            due: due.len(),
            ..RunReport::default()
        };
        let outcomes: Vec<bool> = futures::stream::iter(due)
            .map(|job| {
                let this = self.clone();
                async move { matches!(this.scrub(&job).await, glance_bus::Outcome::Done) }
            })
            .buffer_unordered(self.config.pool_size)
            .collect()
            .await;
        report.scrubbed = outcomes.iter().filter(|ok| **ok).count();
        report.failed = outcomes.len() - report.scrubbed;
        Ok(report)
    }

    /// `--restore`: see [`restore`].
    pub async fn restore(&self, id: ImageId) -> Result<Image, ScrubError> {
        restore(&self.registry, id).await
    }

    /// Asks the registry how much waits in `pending_delete`, and remembers it for `status`.
    pub async fn refresh_backlog(&self) -> Result<Backlog, ScrubError> {
        let ctx = self.ctx();
        let req = ScrubBacklog { ctx: ctx.clone() };
        let backlog = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        *self.stats.backlog.lock().expect("stats lock") = Some(backlog);
        Ok(backlog)
    }

    /// Figures for `glance-control scrubber status`.
    pub fn detail(&self) -> BTreeMap<String, String> {
        let s = &self.stats;
        let mut detail = BTreeMap::from([
            (
                "scrub_time_secs".into(),
                self.config.scrub_time.as_secs().to_string(),
            ),
            ("scrub_pool_size".into(), self.config.pool_size.to_string()),
            (
                "wakeup_time_secs".into(),
                self.config.wakeup_time.as_secs().to_string(),
            ),
            (
                "jobs_scheduled".into(),
                s.scheduled.load(Ordering::Relaxed).to_string(),
            ),
            (
                "images_scrubbed".into(),
                s.scrubbed.load(Ordering::Relaxed).to_string(),
            ),
            (
                "scrub_failures".into(),
                s.failures.load(Ordering::Relaxed).to_string(),
            ),
        ]);
        if let Some(b) = *s.backlog.lock().expect("stats lock") {
            detail.insert("backlog_images".into(), b.images.to_string());
            detail.insert("backlog_bytes".into(), b.bytes.to_string());
        }
        if let Some(at) = *s.last_run.lock().expect("stats lock") {
            detail.insert("last_run".into(), at.to_rfc3339());
        }
        detail
    }
}

/// Every page of a registry listing of up to [`PAGE`] items, each page asked for after the
/// last item of the one before.
async fn all_pages<T, M, F, Fut>(
    mut page: F,
    marker_of: impl Fn(&T) -> M,
) -> Result<Vec<T>, ScrubError>
where
    F: FnMut(Option<M>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, ScrubError>>,
{
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let items = page(marker.take()).await?;
        let full = items.len() == PAGE as usize;
        marker = items.last().map(&marker_of);
        all.extend(items);
        if !full {
            return Ok(all);
        }
    }
}

/// `--restore`: a `pending_delete` image back to `active`, data and all. Touches no data,
/// so it needs only the registry.
pub async fn restore(registry: &RegistryClient, id: ImageId) -> Result<Image, ScrubError> {
    let ctx = RequestContext::admin(format!("req-scrubber-{}", ImageId::new()));
    let req = RestoreImage {
        ctx: ctx.clone(),
        image_id: id,
    };
    Ok(registry.call(Some(ctx.request_id.clone()), &req).await?)
}
