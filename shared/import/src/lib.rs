//! Image import: Glance's `api_image_import` flow, apart from the HTTP edge that starts it.
//!
//! The API validates an import, creates its task, takes the image's import lock and
//! publishes one durable `ImportImage` message; the [`worker`] in any API process (or the
//! all-in-one) runs it. What a run needs is an [`Importer`]: the stores, the registry (for
//! the task and the image) and the notifier, with no HTTP state. The [`pipeline`] takes a
//! byte stream to a store through the one [`ingest`] path that uploads and stages use too
//! (size cap, format inspection, md5 and the multihash); [`download`] and [`fetch`] bring
//! remote data in (web-download, glance-download), and [`plugins`] rework it in between.

pub mod config;
pub mod download;
pub mod fetch;
pub mod filter;
pub mod hashing;
pub mod ingest;
pub mod pipeline;
pub mod plugins;
pub mod tasks;
pub mod worker;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use glance_bus::Bus;
use glance_domain::{Image, ImageId, ImageStatus, RequestContext};
use glance_notify::Notifier;
use glance_proto::leases::LeaseChange;
use glance_proto::registry::{GetImage, SaveImage};
use glance_proto::scrub::{ScrubImage, SCRUB_KEY};
use glance_registry_client::{CallError, RegistryClient};
use glance_store::{FilesystemStore, Store, Stores};

pub use config::ImportConfig;
pub use tasks::TaskClient;

/// What an import reads from the configuration, taken afresh for each run so that a
/// reloaded configuration applies to the next import.
#[derive(Debug, Clone)]
pub struct Settings {
    pub import: Arc<ImportConfig>,
    /// `[DEFAULT] image_size_cap`.
    pub image_size_cap: u64,
    /// `[DEFAULT] hashing_algorithm`.
    pub hashing_algorithm: String,
    /// `[image_format] require_image_format_match`.
    pub require_image_format_match: bool,
}

/// Where [`Settings`] come from: the process's live configuration.
pub type SettingsSource = Arc<dyn Fn() -> Settings + Send + Sync>;

/// Everything the import worker works with. Cheap to share (`Arc`).
pub struct Importer {
    pub stores: Stores,
    pub bus: Bus,
    pub tasks: TaskClient,
    pub registry: RegistryClient,
    pub notifier: Notifier,
    settings: SettingsSource,
}

impl Importer {
    pub fn new(stores: Stores, bus: Bus, notifier: Notifier, settings: SettingsSource) -> Self {
        let registry = RegistryClient::new(bus.clone());
        Self {
            stores,
            tasks: TaskClient::new(registry.clone()),
            registry,
            bus,
            notifier,
            settings,
        }
    }

    pub fn settings(&self) -> Settings {
        (self.settings)()
    }

    pub async fn image(&self, ctx: &RequestContext, id: ImageId) -> Result<Image, CallError> {
        let req = GetImage {
            ctx: ctx.clone(),
            id,
            include_deleted: false,
        };
        self.registry.call(Some(ctx.request_id.clone()), &req).await
    }

    /// Saves `image` if it is still in `from` (a compare-and-set), and announces the save.
    pub async fn save(
        &self,
        ctx: &RequestContext,
        image: Image,
        from: Option<ImageStatus>,
    ) -> Result<Image, CallError> {
        let req = SaveImage {
            ctx: ctx.clone(),
            image,
            from_state: from,
            unmodified_since: None,
            lease: LeaseChange::Keep,
        };
        let saved = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        self.notifier.image_saved(ctx, from, &saved).await;
        Ok(saved)
    }

    /// [`remove_data`] from this importer's stores.
    pub async fn remove_data(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        locations: impl IntoIterator<Item = String>,
    ) {
        remove_data(&self.stores, &self.bus, ctx, id, locations).await
    }
}

/// An error that may go away if the same operation is tried again unchanged.
pub trait Transient: Display {
    fn is_transient(&self) -> bool;
}

impl Transient for CallError {
    fn is_transient(&self) -> bool {
        CallError::is_transient(self)
    }
}

/// Runs `op` again while it fails transiently (the registry or its database away for a
/// moment: a restart, a failover), backing off up to 2 s between tries, for up to 30 s.
pub async fn persist<T, E, F, Fut>(what: &str, mut op: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, retry_in = ?pause, "{what} failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Removes image data at `locations` whose record no longer points to it. Data a store
/// would not remove becomes a scrub job, retried by the scrubbers until it is gone, rather
/// than an orphan.
pub async fn remove_data(
    store: &dyn Store,
    bus: &Bus,
    ctx: &RequestContext,
    id: ImageId,
    locations: impl IntoIterator<Item = String>,
) {
    let mut left = Vec::new();
    for url in locations {
        if let Err(e) = store.delete(&url).await {
            tracing::warn!(image_id = %id, error = %e, "could not remove image data; scheduling a scrub");
            left.push(url);
        }
    }
    if left.is_empty() {
        return;
    }
    // Without a scrubber to take the job, the data is orphaned: logged.
    let job = ScrubImage {
        image_id: id,
        locations: left,
        artifact: false,
    };
    if let Err(e) = bus
        .publish_work(SCRUB_KEY, Some(ctx.request_id.clone()), &job)
        .await
    {
        tracing::error!(image_id = %id, error = %e, locations = ?job.locations,
            "could not schedule the scrub of image data; it is orphaned");
    }
}

/// Removes the staged data of image `id` once nothing needs it. What will not go is
/// logged, not lost track of: the data sweep removes staged files that no upload or import
/// owns.
pub async fn remove_staged(staging: &FilesystemStore, id: ImageId) {
    if let Err(e) = staging.delete(&staging.location_of(id)).await {
        tracing::warn!(image_id = %id, error = %e,
            "could not remove staged data; the data sweep will");
    }
}

/// The `virtual_size` an image records for what the format inspector found: Glance sets it
/// only when it is not 0, so an empty image has none.
pub fn recorded_virtual_size(found: Option<u64>) -> Option<i64> {
    found.filter(|&v| v > 0).map(|v| v as i64)
}
