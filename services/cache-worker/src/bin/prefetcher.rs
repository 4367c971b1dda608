//! `glance-cache-prefetcher`: fetches every image in this node's cache queue once and
//! exits (for cron, as Glance's). Images that fail stay queued for the next run.

use std::path::PathBuf;

use clap::Parser;
use glance_bus::Bus;
use glance_cache_worker::{Fetched, Fetcher, Setup};

#[derive(Parser)]
#[command(
    name = "glance-cache-prefetcher",
    version,
    about = "Fetch queued images into the image cache once"
)]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    glance_telemetry::init("warn");
    let args = Args::parse();
    let setup = Setup::load(&args.config_file)?;
    let store = setup.store()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let queued = setup.cache.list_queued()?;
        if queued.is_empty() {
            println!("Nothing to prefetch.");
            return Ok(());
        }
        let fetcher = Fetcher {
            bus: Bus::new(setup.transport().await?),
            store,
            cache: setup.cache.clone(),
            rate_limit: setup.cache_settings.fetch_rate_limit,
        };
        let results =
            futures::future::join_all(queued.iter().map(|id| fetcher.fetch(*id, None))).await;
        let mut failed = 0;
        for (id, result) in queued.iter().zip(results) {
            match result {
                Fetched::Cached => println!("{id}: cached"),
                Fetched::Skipped(why) => println!("{id}: skipped ({why})"),
                Fetched::Failed(why) | Fetched::Invalid(why) => {
                    failed += 1;
                    println!("{id}: failed ({why})");
                }
            }
        }
        if failed > 0 {
            eprintln!("Failed to successfully cache all images in queue ({failed} failed).");
        }
        Ok::<(), anyhow::Error>(())
    })
}
