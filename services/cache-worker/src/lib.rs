//! Cache workers fill an API node's image cache without the API's help.
//!
//! Each API node declares a durable work queue `glance.v1.cache.<node>` bound to
//! `cache.prefetch.<node>` and `cache.prefetch.all`. `PUT /v2/cache/{id}` publishes a
//! [`Prefetch`](glance_proto::cache::Prefetch) there; a `glance-cache-worker` on the same
//! host (same `image_cache_dir`) takes it, asks the registry for the image record, reads
//! the store, verifies the checksums and promotes the entry, and only then acknowledges. A
//! worker killed mid-fetch leaves an incomplete file for the cleaner and its message goes
//! back to the queue for another worker. The same workers prune and clean on a timer; the
//! `glance-cache-prefetcher`, `-pruner` and `-cleaner` programs do one pass and exit.

mod fetch;
mod worker;

pub use fetch::{Fetched, Fetcher};
pub use worker::{start, start_embedded, WorkerLifecycle};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use glance_cache::{CacheSettings, ImageCache};
use glance_config::{RawConfig, Settings};
use glance_store::{Store, StoresConfig};

/// What every cache program reads from configuration.
pub struct Setup {
    pub settings: Settings,
    pub cache_settings: CacheSettings,
    pub cache: ImageCache,
    /// The API nodes' stores (`enabled_backends` or the single store).
    pub stores: StoresConfig,
}

/// The command line every cache program takes.
#[derive(clap::Parser)]
#[command(version)]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

impl Setup {
    /// How a cache program starts: logging at `log_level`, its command line (`--config-file`,
    /// shown under `name` and `about`), then its configuration.
    pub fn from_command_line(
        name: &'static str,
        about: &'static str,
        log_level: &str,
    ) -> anyhow::Result<Self> {
        use clap::{CommandFactory, FromArgMatches};
        glance_telemetry::init(log_level);
        let matches = Args::command().name(name).about(about).get_matches();
        let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        Self::load(&args.config_file)
    }

    pub fn load(config_files: &[PathBuf]) -> anyhow::Result<Self> {
        let raw = RawConfig::load(config_files)?;
        let settings = Settings::from_raw(&raw)?;
        let cache_settings = CacheSettings::from_raw(&raw)?;
        let stores = StoresConfig::from_raw(&raw).map_err(anyhow::Error::msg)?;
        let dir = cache_settings.dir.clone().context(
            "the image cache needs [DEFAULT] image_cache_dir (GLANCE__DEFAULT__IMAGE_CACHE_DIR), \
             the same directory as the API node it serves",
        )?;
        let cache = ImageCache::open(&dir)
            .with_context(|| format!("cannot use image cache dir {}", dir.display()))?;
        Ok(Self {
            settings,
            cache_settings,
            cache,
            stores,
        })
    }

    /// Every store the API nodes write to, so an image in any of them can be read.
    pub fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        let stores = self
            .stores
            .open_shared()
            .context("reading images needs the API nodes' image stores")?;
        Ok(Arc::new(stores))
    }

    pub async fn transport(&self) -> anyhow::Result<Arc<dyn glance_bus::Transport>> {
        let url = self.settings.transport_url.clone().context(
            "cache workers reach the registry and their queue over the broker: set [DEFAULT] \
             transport_url (GLANCE__DEFAULT__TRANSPORT_URL=rabbit://...)",
        )?;
        glance_service::connect(&url, 16).await
    }
}
