//! `glance-cache-worker`: fills one API node's image cache from its prefetch queue. Run it
//! on the API node's host with the same configuration (`image_cache_dir`, `[glance_cache]
//! node_id`, the broker and the store); run two or more and they share the queue.

use std::sync::Arc;

use glance_bus::Bus;
use glance_cache_worker::{Fetcher, Setup, WorkerLifecycle};
use glance_service::Workers;

fn main() -> anyhow::Result<()> {
    let setup =
        Setup::from_command_line("glance-cache-worker", "Glance image cache worker", "info")?;
    let store = setup.store()?;
    glance_service::run(None, || async move {
        let transport = setup.transport().await?;
        let workers = Workers::new();
        let node = setup.cache_settings.node_id.clone();
        let fetcher = Fetcher::new(
            Bus::new(transport.clone()),
            store,
            setup.cache.clone(),
            &setup.cache_settings,
        );
        glance_cache_worker::start(transport.clone(), fetcher, &setup.cache_settings, &workers)
            .await?;
        let lifecycle = WorkerLifecycle {
            cache: setup.cache.clone(),
            node: node.clone(),
            workers: workers.clone(),
        };
        tracing::info!(%node, "glance-cache-worker started");
        glance_service::serve(transport, "cache-worker", workers, Arc::new(lifecycle)).await
    })
}
