//! `glance-glare`: the artifact repository (Glare's artifacts API v1) as its own process.
//! It reaches the registry over the broker named by `[DEFAULT] transport_url` and keeps
//! blobs in the image stores, so any number of them can serve behind a load balancer.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use glance_bus::{Amqp, Bus};
use glance_config::AuthStrategy;
use glance_glare::{Application, GlareConfig};
use glance_proto::names::REGISTRY_QUEUE;

#[derive(Parser)]
#[command(
    name = "glance-glare",
    version,
    about = "Glance artifact repository (Glare v1 API)"
)]
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
        "glance-glare needs [DEFAULT] transport_url (GLANCE__DEFAULT__TRANSPORT_URL=rabbit://...) \
         to reach the registry; to run everything in one process use glance-all-in-one",
    )?;
    let glare = glance_config::GlareSettings::from_raw(&raw)?;
    // As glance-api: on loopback behind a local authenticating proxy, else Keystone.
    let default_auth = AuthStrategy::default_for(&glare.bind_host, AuthStrategy::TrustedHeaders);
    let config = GlareConfig::from_raw(&raw, default_auth).map_err(anyhow::Error::msg)?;
    // Blobs live in the image stores, which must be shared storage across nodes.
    let stores = config
        .identity
        .import
        .stores
        .open_shared()
        .context("glance-glare cannot open the image stores")?;
    let listener = TcpListener::bind((glare.bind_host.as_str(), glare.bind_port))
        .with_context(|| format!("cannot listen on {}:{}", glare.bind_host, glare.bind_port))?;
    let threads = config.identity.mesh.runtime_threads;
    glance_service::run(Some(threads), || async move {
        let amqp = Amqp::connect(&url, 64)
            .await
            .with_context(|| format!("cannot reach the broker at {url}"))?;
        amqp.ensure_queue(REGISTRY_QUEUE).await?;
        let transport: Arc<dyn glance_bus::Transport> = Arc::new(amqp);
        glance_api::keystone::check_at_start(&config.identity)
            .await
            .map_err(anyhow::Error::msg)?;
        let app = Application::build(
            config,
            Bus::new(transport.clone()),
            Arc::new(stores),
            listener,
        )?;
        let lifecycle = glance_glare::lifecycle::GlareLifecycle {
            state: app.state(),
            server: app.handle(),
            config_files: args.config_file.clone(),
            default_auth,
            workers: app.workers(),
        };
        let port = app.port();
        glance_service::start_control(
            transport,
            glance_service::Identity::new("glare"),
            app.workers(),
            Arc::new(lifecycle),
        )
        .await?;
        tracing::info!(port, "glance-glare serving");
        app.run_until_stopped().await?;
        Ok(())
    })
}
