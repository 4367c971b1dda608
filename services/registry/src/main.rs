//! `glance-registry`: the registry as its own process, serving the registry queue on the
//! broker named by `[DEFAULT] transport_url` from the database in `[database] connection`.
//! Start as many as you like: they share the queue.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use glance_bus::{Amqp, Transport};
use glance_registry::Registry;

#[derive(Parser)]
#[command(name = "glance-registry", version, about = "Glance image registry")]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    glance_telemetry::init("info");
    let args = Args::parse();
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let settings = glance_config::Settings::from_raw(&raw)?;
    let url = settings.transport_url.context(
        "glance-registry needs [DEFAULT] transport_url (GLANCE__DEFAULT__TRANSPORT_URL=rabbit://...) \
         to serve the API over a broker; to run everything in one process use glance-all-in-one",
    )?;
    let connection = settings.database_connection.context(
        "glance-registry needs [database] connection (GLANCE__DATABASE__CONNECTION=postgresql://...)",
    )?;
    let transport: Arc<dyn Transport> = Arc::new(
        Amqp::connect(&url, 64)
            .await
            .with_context(|| format!("cannot reach the broker at {url}"))?,
    );
    let registry = Registry::build(&connection, transport).await?;
    registry.run_until_stopped().await
}
