//! `glance-cache-prefetcher`: fetches every image in this node's cache queue once and
//! exits (for cron, as Glance's). Images that fail stay queued for the next run.

use glance_bus::Bus;
use glance_cache_worker::{Fetched, Fetcher, Setup};

fn main() -> anyhow::Result<()> {
    let setup = Setup::from_command_line(
        "glance-cache-prefetcher",
        "Fetch queued images into the image cache once",
        "warn",
    )?;
    let store = setup.store()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let queued = setup.cache.list_queued()?;
        if queued.is_empty() {
            println!("Nothing to prefetch.");
            return Ok(());
        }
        let fetcher = Fetcher::new(
            Bus::new(setup.transport().await?),
            store,
            setup.cache.clone(),
            &setup.cache_settings,
        );
        let progress = glance_telemetry::progress::bar(queued.len() as u64, "images");
        progress.set_message("prefetching");
        let results = futures::future::join_all(queued.iter().map(|id| {
            let (fetcher, progress) = (&fetcher, progress.clone());
            async move {
                let fetched = fetcher.fetch(*id, None).await;
                progress.inc(1);
                fetched
            }
        }))
        .await;
        progress.finish_and_clear();
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
