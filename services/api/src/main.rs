//! `glance-api`: the Images API as its own process. It reaches the registry over the broker
//! named by `[DEFAULT] transport_url` and keeps no state but its node-local files, so any
//! number of them can serve behind a load balancer.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use glance_api::{ApiConfig, Application};
use glance_bus::{Amqp, Bus};
use glance_config::AuthStrategy;
use glance_proto::names::REGISTRY_QUEUE;

/// Request handling allocates many small, short-lived objects (JSON trees, rows);
/// mimalloc serves them faster than glibc malloc under concurrency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "glance-api", version, about = "Glance Images API v2 server")]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    glance_telemetry::init("info");
    let args = Args::parse();
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let settings = glance_config::Settings::from_raw(&raw)?;
    let url = settings.transport_url.clone().context(
        "glance-api needs [DEFAULT] transport_url (GLANCE__DEFAULT__TRANSPORT_URL=rabbit://...) to \
         reach the registry; to run everything in one process use glance-all-in-one",
    )?;
    // On loopback the API is assumed to sit behind a local authenticating proxy; anything
    // reachable from elsewhere validates Keystone tokens unless configured otherwise.
    let default_auth = AuthStrategy::default_for(&settings.bind_host, AuthStrategy::TrustedHeaders);
    let config = ApiConfig::from_raw(&raw, default_auth).map_err(anyhow::Error::msg)?;
    // The image store (or each of enabled_backends) and the staging area must be shared
    // storage: any API node may serve a download or run an import.
    let stores = config
        .import
        .stores
        .open_shared()
        .context("glance-api cannot open its image stores")?;
    // Kept open across `glance-control api restart`, which hands it to the new image.
    let listener = glance_service::listener::inherited_or(|| {
        TcpListener::bind((settings.bind_host.as_str(), settings.bind_port))
    })
    .with_context(|| {
        format!(
            "cannot listen on {}:{}",
            settings.bind_host, settings.bind_port
        )
    })?;
    let threads = config.mesh.runtime_threads;
    glance_service::run(Some(threads), || async move {
        let amqp = Amqp::connect(&url, 64)
            .await
            .with_context(|| format!("cannot reach the broker at {url}"))?;
        amqp.ensure_queue(REGISTRY_QUEUE).await?;
        let transport: Arc<dyn glance_bus::Transport> = Arc::new(amqp);
        let import_worker = config.import.worker.clone();
        glance_api::keystone::check_at_start(&config)
            .await
            .map_err(anyhow::Error::msg)?;
        let app = Application::build(config, Bus::new(transport.clone()), stores, listener)?;
        let workers = app.workers();
        if import_worker.enabled {
            // Its own connection, prefetching no more than it runs at once, so imports
            // queue at the broker for whichever API node is free rather than here.
            let prefetch = u16::try_from(import_worker.concurrency).unwrap_or(u16::MAX);
            let work = glance_service::connect(&url, prefetch).await?;
            glance_import::worker::start(glance_api::import::importer(app.state()), work, &workers)
                .await?;
        }
        let lifecycle = glance_api::lifecycle::ApiLifecycle {
            state: app.state(),
            server: app.handle(),
            connections: app.connections(),
            config_files: args.config_file.clone(),
            default_auth,
            workers: workers.clone(),
        };
        let port = app.port();
        // Serving before answering the control plane: after a restart, `glance-control`
        // takes the first status answer of the new instance as "back".
        let running = app.start().await?;
        glance_service::start_control(
            transport,
            glance_service::Identity::new("api"),
            workers,
            Arc::new(lifecycle),
        )
        .await?;
        tracing::info!(port, "glance-api serving");
        running.until_stopped().await?;
        Ok(())
    })
}
