//! The registry service: consumes the registry queue and answers every request from the
//! database it owns. Run one in the all-in-one process, or many as separate processes
//! competing for the same queue.

use std::sync::Arc;

use glance_bus::{serve_until, Router, Transport};
use glance_db::{Database, ImageRepo};
use glance_proto::names::REGISTRY_QUEUE;
use glance_proto::registry::{CreateImage, DeleteImage, GetImage, ListImages, SaveImage};

/// A built registry, ready to serve.
pub struct Registry {
    repo: ImageRepo,
    transport: Arc<dyn Transport>,
    concurrency: usize,
    stop_tx: tokio::sync::watch::Sender<bool>,
    router: Router,
}

/// Stops a running registry: it takes no new requests and returns once in-flight ones end.
#[derive(Clone)]
pub struct StopHandle(tokio::sync::watch::Sender<bool>);

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Registry {
    /// Connects to the database at `connection` and brings its schema up to date.
    pub async fn build(
        connection: &str,
        transport: Arc<dyn Transport>,
    ) -> anyhow::Result<Registry> {
        let db = Database::connect(connection).await?;
        db.migrate_up().await?;
        // SQLite means this registry is the database's only writer, so it may keep records
        // in memory; with PostgreSQL other registries write too, so it must not.
        let repo = if db.backend() == glance_db::DbBackend::Sqlite {
            ImageRepo::new(db).with_record_cache(10_000)
        } else {
            ImageRepo::new(db)
        };
        let (stop_tx, _) = tokio::sync::watch::channel(false);
        Ok(Registry {
            router: Self::router(repo.clone()),
            repo,
            transport,
            // Enough in flight to keep the read pool busy; writes serialize in the repo.
            concurrency: 64,
            stop_tx,
        })
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop_tx.clone())
    }

    /// Requests being handled right now (for `glance-control status`).
    pub fn in_flight(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.router.in_flight()
    }

    /// The router answering registry requests, for transports that dispatch inline.
    pub fn request_router(&self) -> Router {
        self.router.clone()
    }

    pub fn repo(&self) -> &ImageRepo {
        &self.repo
    }

    pub fn router(repo: ImageRepo) -> Router {
        let get = repo.clone();
        let create = repo.clone();
        let save = repo.clone();
        let delete = repo.clone();
        let list = repo;
        Router::new()
            .route::<GetImage, _, _>(move |r| {
                let repo = get.clone();
                async move { repo.get(&r.ctx, r.id, r.include_deleted).await }
            })
            .route::<CreateImage, _, _>(move |r| {
                let repo = create.clone();
                async move { repo.create(&r.ctx, r.image).await }
            })
            .route::<SaveImage, _, _>(move |r| {
                let repo = save.clone();
                async move { repo.save(&r.ctx, r.image, r.from_state).await }
            })
            .route::<DeleteImage, _, _>(move |r| {
                let repo = delete.clone();
                async move { repo.delete(&r.ctx, r.id, r.status).await }
            })
            .route::<ListImages, _, _>(move |r| {
                let repo = list.clone();
                async move { repo.list(&r).await }
            })
    }

    /// Serves the registry queue until the transport closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(queue = REGISTRY_QUEUE, "registry serving");
        let stop = self.stop_tx.subscribe();
        serve_until(
            self.transport,
            REGISTRY_QUEUE,
            self.router,
            self.concurrency,
            stop,
        )
        .await?;
        tracing::info!("registry stopped");
        Ok(())
    }
}
