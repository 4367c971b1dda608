//! `glance-registry`: the registry as its own process, serving the registry queue on the
//! broker named by `[DEFAULT] transport_url` from the database in `[database] connection`.
//! Start as many as you like: they share the queue. `glance-control registry ...` reaches
//! every one of them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use glance_registry::Registry;
use glance_service::{Lifecycle, Workers};

/// Request handling allocates many small, short-lived objects (JSON trees, rows);
/// mimalloc serves them faster than glibc malloc under concurrency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "glance-registry", version, about = "Glance image registry")]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

struct RegistryLifecycle {
    workers: Workers,
    config_files: Vec<PathBuf>,
    router: glance_bus::Router,
}

impl Lifecycle for RegistryLifecycle {
    fn detail(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::from([(
            "requests_served".into(),
            self.router.served().to_string(),
        )])
    }

    /// The registry's options (database, broker) need a restart to change; a reload checks
    /// that the files still parse so a later restart will not fail.
    fn reload(&self) -> Result<String, String> {
        let raw = glance_config::RawConfig::load(&self.config_files).map_err(|e| e.to_string())?;
        glance_config::Settings::from_raw(&raw).map_err(|e| e.to_string())?;
        Ok("configuration is valid; database and broker changes take effect on restart".into())
    }

    fn shutdown(&self, graceful: bool) {
        self.workers.stop();
        if !graceful {
            std::process::exit(0);
        }
    }
}

fn main() -> anyhow::Result<()> {
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
    let mesh = glance_config::MeshSettings::from_raw(&raw)?;
    glance_service::run(Some(mesh.runtime_threads), || async move {
        let transport = glance_service::connect(&url, 64).await?;
        let registry = Registry::build(&connection, transport.clone()).await?;
        let workers = Workers::with_in_flight(registry.in_flight().into());
        let lifecycle = RegistryLifecycle {
            workers: workers.clone(),
            config_files: args.config_file.clone(),
            router: registry.request_router(),
        };
        registry.serve(&workers);
        glance_service::serve(transport, "registry", workers, Arc::new(lifecycle)).await
    })
}
