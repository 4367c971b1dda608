//! `glance-cache-worker`: fills one API node's image cache from its prefetch queue. Run it
//! on the API node's host with the same configuration (`image_cache_dir`, `[glance_cache]
//! node_id`, the broker and the store); run two or more and they share the queue.

use std::sync::Arc;

use glance_bus::Bus;
use glance_cache_worker::{Fetcher, Setup, WorkerLifecycle};
use glance_service::{Identity, InFlight};

fn main() -> anyhow::Result<()> {
    let setup =
        Setup::from_command_line("glance-cache-worker", "Glance image cache worker", "info")?;
    let store = setup.store()?;
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
    .block_on(async move {
        let transport = setup.transport().await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let in_flight = InFlight::default();
        let node = setup.cache_settings.node_id.clone();
        glance_service::start_control(
            transport.clone(),
            Identity::new("cache-worker"),
            in_flight.clone(),
            Arc::new(WorkerLifecycle {
                cache: setup.cache.clone(),
                node: node.clone(),
                stop: stop_tx,
            }),
        )
        .await?;
        let fetcher = Fetcher {
            bus: Bus::new(transport.clone()),
            store,
            cache: setup.cache.clone(),
            rate_limit: setup.cache_settings.fetch_rate_limit,
        };
        tracing::info!(%node, "glance-cache-worker started");
        glance_cache_worker::run(transport, fetcher, setup.cache_settings, in_flight, stop_rx)
            .await?;
        Ok::<(), anyhow::Error>(())
    })?;
    glance_service::exec_if_restart_requested();
    Ok(())
}
