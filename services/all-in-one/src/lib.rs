//! The embedded deployment: the same registry and API services the distributed mode runs,
//! joined by the in-process bus, with SQLite and the filesystem store under one data dir.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use glance_api::{ApiConfig, Application};
use glance_bus::{Bus, InProcess, Transport};
use glance_config::{AuthStrategy, Settings};
use glance_registry::Registry;
use glance_store::FilesystemStore;

/// Where everything lives when the configuration does not say otherwise.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("glance.sqlite").display()
    )
}

/// Loopback callers get `noauth` unless configured; anything reachable from outside must
/// say who may call, so it defaults to trusted headers.
pub fn default_auth(bind_host: &str) -> AuthStrategy {
    let loopback = bind_host
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(bind_host == "localhost");
    if loopback {
        AuthStrategy::NoAuth
    } else {
        AuthStrategy::TrustedHeaders
    }
}

/// Builds every service against one in-process bus and starts the registry. The returned
/// application serves HTTP on `listener` once awaited.
pub async fn build(
    settings: &Settings,
    data_dir: &Path,
    listener: TcpListener,
) -> anyhow::Result<Application> {
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
    let store = FilesystemStore::new(&images_dir)
        .with_context(|| format!("cannot use image store dir {}", images_dir.display()))?;

    let config = ApiConfig::from_settings(settings, default_auth(&settings.bind_host));
    let app = Application::build(config, Bus::new(transport), Arc::new(store), listener)?;
    Ok(app)
}
