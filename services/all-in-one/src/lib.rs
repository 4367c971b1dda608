//! The embedded deployment: the same registry and API services the distributed mode runs,
//! joined by the in-process bus, with SQLite and the filesystem store under one data dir.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use glance_api::{ApiConfig, Application};
use glance_bus::{Bus, InProcess, Transport};
use glance_config::{AuthStrategy, RawConfig, Settings};
use glance_registry::Registry;

/// Where everything lives when the configuration does not say otherwise.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("glance.sqlite").display()
    )
}

/// Loopback callers get `noauth` unless configured; anything reachable from outside
/// validates Keystone tokens unless told otherwise (and refuses to start without
/// `[keystone_authtoken]`).
pub fn default_auth(bind_host: &str) -> AuthStrategy {
    AuthStrategy::default_for(bind_host, AuthStrategy::NoAuth)
}

/// Builds every service against one in-process bus and starts the registry. The returned
/// application serves HTTP on `listener` once awaited.
///
/// Only the core [`Settings`]: the options features read from the raw configuration
/// (policy and token files, quotas, ...) keep their defaults. Prefer [`build_from_raw`].
pub async fn build(
    settings: &Settings,
    data_dir: &Path,
    listener: TcpListener,
) -> anyhow::Result<Application> {
    let config = ApiConfig::from_settings(settings, default_auth(&settings.bind_host));
    let scrubber = glance_scrubber::ScrubberConfig::default();
    Ok(
        build_with(settings, config, scrubber, data_dir, listener, None)
            .await?
            .api,
    )
}

/// [`build`] from the whole configuration, so every feature's options apply.
pub async fn build_from_raw(
    raw: &RawConfig,
    data_dir: &Path,
    listener: TcpListener,
) -> anyhow::Result<Application> {
    Ok(build_all(raw, data_dir, listener, None).await?.api)
}

/// The services of one all-in-one process that serve HTTP.
pub struct AllInOne {
    /// The Images API.
    pub api: Application,
    /// The artifact API (Glare v1), when a listener was given for it.
    pub glare: Option<glance_glare::Application>,
}

/// [`build_from_raw`], with the artifact API (`glance-glare`) on `glare_listener` too,
/// over the same registry and stores.
pub async fn build_all(
    raw: &RawConfig,
    data_dir: &Path,
    listener: TcpListener,
    glare_listener: Option<TcpListener>,
) -> anyhow::Result<AllInOne> {
    let settings = Settings::from_raw(raw)?;
    let auth = default_auth(&settings.bind_host);
    let config = ApiConfig::from_raw(raw, auth).map_err(anyhow::Error::msg)?;
    let scrubber = glance_scrubber::ScrubberConfig::from_raw(raw)?;
    let glare = match glare_listener {
        Some(listener) => {
            // The artifact API takes the same credentials as the image API.
            let config =
                glance_glare::GlareConfig::from_raw(raw, auth).map_err(anyhow::Error::msg)?;
            Some((config, listener))
        }
        None => None,
    };
    build_with(&settings, config, scrubber, data_dir, listener, glare).await
}

async fn build_with(
    settings: &Settings,
    config: ApiConfig,
    scrubber: glance_scrubber::ScrubberConfig,
    data_dir: &Path,
    listener: TcpListener,
    glare: Option<(glance_glare::GlareConfig, TcpListener)>,
) -> anyhow::Result<AllInOne> {
    // Before the registry and the stores allocate anything (see the function).
    glance_service::memory::keep_small_pages();
    glance_api::keystone::check_at_start(&config)
        .await
        .map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let in_process = InProcess::new();
    let transport: Arc<dyn Transport> = Arc::new(in_process.clone());

    let connection = settings
        .database_connection
        .clone()
        .unwrap_or_else(|| sqlite_url(data_dir));
    let registry = Registry::build(&connection, transport.clone())
        .await
        .with_context(|| format!("cannot open the database at {connection}"))?;
    // One process owns the database here, so the API calls the registry's handlers on its
    // own task: the same messages, without a hop to another thread and back.
    in_process.serve_inline(
        glance_proto::names::REGISTRY_QUEUE,
        registry.request_router(),
    );

    let images_dir: PathBuf = settings
        .filesystem_store_datadir
        .clone()
        .unwrap_or_else(|| data_dir.join("images"));
    // With enabled_backends each store has its own directory; staging defaults under the
    // data dir.
    let stores = config
        .import
        .open_stores(&images_dir, &data_dir.join("staging"))?;

    // The node's image cache lives under the data dir unless configured, with a cache
    // worker in this process: queueing an image fills the cache with nothing else running.
    let mut config = config;
    if config.cache.dir.is_none() {
        config.cache.dir = Some(data_dir.join("cache"));
    }
    config.cache_enabled = true;
    let bus = Bus::new(transport);
    // Glare's per-type option may turn delayed delete on for artifacts alone.
    let delayed_delete = config.delayed_delete
        || glare
            .as_ref()
            .is_some_and(|(g, _)| g.glare.delayed_delete_by_type.values().any(|on| *on));
    let import_worker = config.import.worker.enabled;
    let app = Application::build(config, bus.clone(), stores, listener)?;
    let glare = match glare {
        Some((config, listener)) => Some(glance_glare::Application::build(
            config,
            bus.clone(),
            app.state().store.clone(),
            listener,
        )?),
        None => None,
    };
    let workers = app.workers();
    if import_worker {
        // Imports run in this process, consuming the in-process work queue.
        let importer = glance_api::import::importer(app.state());
        glance_import::worker::start(importer, bus.transport().clone(), &workers).await?;
    }
    // The scrubber in this process: its wakeups under delayed delete (of images or of
    // artifacts), and always its job consumer, which removes data an immediate delete could
    // not.
    let scrubber = glance_scrubber::Scrubber::new(bus.clone(), app.state().store.clone(), scrubber);
    glance_scrubber::daemon::start(scrubber, delayed_delete, &workers).await?;
    if let Some(node) = &app.state().cache {
        let store = app.state().store.clone();
        glance_cache_worker::start_embedded(
            bus,
            store,
            node.cache.clone(),
            &node.settings,
            &workers,
        )
        .await?;
    }
    Ok(AllInOne { api: app, glare })
}
