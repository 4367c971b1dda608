//! The registry service: consumes the registry queue and answers every request from the
//! database it owns. Run one in the all-in-one process, or many as separate processes
//! competing for the same queue.

use std::sync::Arc;

use glance_bus::{serve_until, Router, Transport};
use glance_db::{Database, ImageRepo};
use glance_proto::names::REGISTRY_QUEUE;
use glance_proto::registry::{
    AddMember, CreateImage, DeleteImage, GetImage, GetImages, ListImages, ListImagesMany,
    ListMembers, RemoveMember, SaveImage, StorageUsage, UpdateMember,
};
use glance_service::{Task, Workers};

/// A built registry, ready to serve.
pub struct Registry {
    repo: ImageRepo,
    transport: Arc<dyn Transport>,
    concurrency: usize,
    router: Router,
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
        Ok(Registry {
            router: Self::router(repo.clone()),
            repo,
            transport,
            // Enough in flight to keep the read pool busy; writes serialize in the repo.
            concurrency: 64,
        })
    }

    /// Requests being handled right now (for `glance-control status`).
    pub fn in_flight(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.router.in_flight()
    }

    /// Requests taken from the queue since start (for `glance-control status`).
    pub fn served(&self) -> u64 {
        self.router.served()
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
        let get_many = repo.clone();
        let create = repo.clone();
        let save = repo.clone();
        let delete = repo.clone();
        let list = repo.clone();
        let list_many = repo.clone();
        let members = repo;
        let router = Router::new()
            .route::<GetImage, _, _>(move |r| {
                let repo = get.clone();
                async move { repo.get(&r.ctx, r.id, r.include_deleted).await }
            })
            .route::<GetImages, _, _>(move |r| {
                let repo = get_many.clone();
                async move {
                    tracing::debug!("{} image-shows in one message", r.items.len());
                    repo.get_many(&r.items).await
                }
            })
            .route::<CreateImage, _, _>(move |r| {
                let repo = create.clone();
                async move { repo.create(&r.ctx, r.image).await }
            })
            .route::<SaveImage, _, _>(move |r| {
                let repo = save.clone();
                async move {
                    repo.save_guarded(&r.ctx, r.image, r.from_state, r.unmodified_since, &r.lease)
                        .await
                }
            })
            .route::<DeleteImage, _, _>(move |r| {
                let repo = delete.clone();
                async move { repo.delete(&r.ctx, r.id, r.status).await }
            })
            .route::<ListImagesMany, _, _>(move |r| {
                let repo = list_many.clone();
                async move {
                    tracing::debug!("{} image lists in one message", r.items.len());
                    futures::future::join_all(r.items.iter().map(|item| repo.list(item))).await
                }
            })
            .route::<ListImages, _, _>(move |r| {
                let repo = list.clone();
                async move { repo.list(&r).await }
            });
        let router = glance_scrub_routes(router, members.clone());
        let router = lease_routes(router, members.clone());
        let tasks = glance_db::TaskRepo::new(members.database().clone());
        let metadefs = glance_db::MetadefRepo::new(members.database().clone());
        let artifacts = glance_db::ArtifactRepo::new(members.database().clone());
        let router = Self::task_routes(Self::member_routes(router, members), tasks);
        glare_routes(metadef_routes(router, metadefs), artifacts)
    }

    /// Tasks (interoperable import and the Tasks API).
    fn task_routes(router: Router, repo: glance_db::TaskRepo) -> Router {
        use glance_proto::tasks::{CreateTask, GetTask, ListTasks, SaveTask};
        let (create, get, list, save) = (repo.clone(), repo.clone(), repo.clone(), repo);
        router
            .route::<CreateTask, _, _>(move |r| {
                let repo = create.clone();
                async move { repo.create(r.task).await }
            })
            .route::<GetTask, _, _>(move |r| {
                let repo = get.clone();
                async move { repo.get(&r.ctx, &r.id).await }
            })
            .route::<ListTasks, _, _>(move |r| {
                let repo = list.clone();
                async move { repo.list(&r).await }
            })
            .route::<SaveTask, _, _>(move |r| {
                let repo = save.clone();
                async move { repo.save(&r.ctx, r.task, r.from_status, r.ttl_hours).await }
            })
    }

    /// Image members and storage usage (the members API and `user_storage_quota`).
    fn member_routes(router: Router, repo: ImageRepo) -> Router {
        let (list, add, update, remove, usage) =
            (repo.clone(), repo.clone(), repo.clone(), repo.clone(), repo);
        router
            .route::<ListMembers, _, _>(move |r| {
                let repo = list.clone();
                async move { repo.list_members(&r.ctx, r.image_id).await }
            })
            .route::<AddMember, _, _>(move |r| {
                let repo = add.clone();
                async move { repo.create_member(r.image_id, &r.member_id).await }
            })
            .route::<UpdateMember, _, _>(move |r| {
                let repo = update.clone();
                async move { repo.update_member(r.image_id, &r.member_id, r.status).await }
            })
            .route::<RemoveMember, _, _>(move |r| {
                let repo = remove.clone();
                async move { repo.remove_member(r.image_id, &r.member_id).await }
            })
            .route::<StorageUsage, _, _>(move |r| {
                let repo = usage.clone();
                async move { repo.storage_usage(&r.owner, r.except).await }
            })
    }

    /// Serves the registry queue as a worker of `workers`: until they are stopped, then
    /// until the requests in hand are answered.
    pub fn serve(self, workers: &Workers) {
        let Registry {
            transport,
            router,
            concurrency,
            ..
        } = self;
        workers.spawn(Task::new("registry", move |ctx| async move {
            tracing::info!(queue = REGISTRY_QUEUE, "registry serving");
            serve_until(transport, REGISTRY_QUEUE, router, concurrency, ctx.stop).await?;
            tracing::info!("registry stopped");
            Ok(())
        }));
    }
}

/// The scrubber's requests (`glance_proto::scrub`): due `pending_delete` images, the
/// backlog, finishing a scrub and restoring an image.
fn glance_scrub_routes(router: Router, repo: ImageRepo) -> Router {
    use glance_proto::scrub::{
        ClaimScrub, FinishScrub, ListPendingDelete, RestoreImage, ScrubBacklog,
    };
    let (pending, backlog, claim, finish, restore) =
        (repo.clone(), repo.clone(), repo.clone(), repo.clone(), repo);
    router
        .route::<ClaimScrub, _, _>(move |r| {
            let repo = claim.clone();
            async move { repo.claim_scrub(&r.ctx, r.image_id).await }
        })
        .route::<ListPendingDelete, _, _>(move |r| {
            let repo = pending.clone();
            async move {
                repo.pending_delete(&r.ctx, r.deleted_before, r.limit, r.marker)
                    .await
            }
        })
        .route::<ScrubBacklog, _, _>(move |r| {
            let repo = backlog.clone();
            async move { repo.scrub_backlog(&r.ctx).await }
        })
        .route::<FinishScrub, _, _>(move |r| {
            let repo = finish.clone();
            async move { repo.finish_scrub(&r.ctx, r.image_id).await }
        })
        .route::<RestoreImage, _, _>(move |r| {
            let repo = restore.clone();
            async move { repo.restore(&r.ctx, r.image_id).await }
        })
}

/// Upload leases (`glance_proto::leases`): renewals from running uploads, and the sweep's
/// questions from every API node.
fn lease_routes(router: Router, repo: ImageRepo) -> Router {
    use glance_proto::leases::{BreakLease, ExpiredLeases, RenewLease, UploadStates};
    let (renew, expired, broken, states) = (repo.clone(), repo.clone(), repo.clone(), repo);
    router
        .route::<RenewLease, _, _>(move |r| {
            let repo = renew.clone();
            async move { repo.renew_lease(r.image_id, &r.holder, r.seconds).await }
        })
        .route::<ExpiredLeases, _, _>(move |r| {
            let repo = expired.clone();
            async move {
                repo.expired_leases(&r.ctx, r.unleased_after_seconds, r.limit)
                    .await
            }
        })
        .route::<BreakLease, _, _>(move |r| {
            let repo = broken.clone();
            async move {
                repo.break_lease(&r.ctx, &r.lease, r.unleased_after_seconds)
                    .await
            }
        })
        .route::<UploadStates, _, _>(move |r| {
            let repo = states.clone();
            async move { repo.upload_states(&r.ctx, &r.ids).await }
        })
}

/// The metadefs catalog (`glance_proto::metadefs`).
fn metadef_routes(router: Router, repo: glance_db::MetadefRepo) -> Router {
    use glance_proto::metadefs::{
        CreateAssociation, CreateElements, CreateNamespace, DeleteAssociation, DeleteElements,
        DeleteNamespace, GetElement, GetNamespace, ListElements, ListNamespaces, ListResourceTypes,
        UpdateElement, UpdateNamespace,
    };
    // Each handler owns a handle on the repo; cloning one is cloning a pool handle.
    macro_rules! route {
        ($router:expr, $req:ty, |$repo:ident, $r:ident| $body:expr) => {{
            let $repo = repo.clone();
            $router.route::<$req, _, _>(move |$r| {
                let $repo = $repo.clone();
                async move { $body }
            })
        }};
    }
    let router = route!(router, ListNamespaces, |repo, r| repo
        .list_namespaces(&r)
        .await);
    let router = route!(router, GetNamespace, |repo, r| repo
        .get_namespace(&r.ctx, &r.namespace)
        .await);
    let router = route!(router, CreateNamespace, |repo, r| repo
        .create_namespace(r.contents)
        .await);
    let router = route!(router, UpdateNamespace, |repo, r| repo
        .update_namespace(&r.ctx, &r.namespace, r.update)
        .await);
    let router = route!(router, DeleteNamespace, |repo, r| repo
        .delete_namespace(&r.ctx, &r.namespace)
        .await);
    let router = route!(router, ListElements, |repo, r| repo
        .list_elements(&r.ctx, &r.namespace, r.kind)
        .await);
    let router = route!(router, GetElement, |repo, r| repo
        .get_element(&r.ctx, &r.namespace, r.kind, &r.name)
        .await);
    let router = route!(router, CreateElements, |repo, r| repo
        .create_elements(&r.ctx, &r.namespace, r.kind, &r.elements, r.replace)
        .await);
    let router = route!(router, UpdateElement, |repo, r| repo
        .update_element(&r.ctx, &r.namespace, r.kind, &r.name, r.element)
        .await);
    let router = route!(router, DeleteElements, |repo, r| repo
        .delete_elements(&r.ctx, &r.namespace, r.kind, r.name.as_deref())
        .await);
    let router = route!(router, ListResourceTypes, |repo, _r| repo
        .list_resource_types()
        .await);
    let router = route!(router, CreateAssociation, |repo, r| repo
        .create_association(&r.ctx, &r.namespace, r.association)
        .await);
    route!(router, DeleteAssociation, |repo, r| repo
        .delete_association(&r.ctx, &r.namespace, &r.name)
        .await)
}

/// The artifact repository's records (`glance_proto::glare`).
fn glare_routes(router: Router, repo: glance_db::ArtifactRepo) -> Router {
    use glance_proto::glare::{
        CreateArtifact, DeleteArtifact, GetArtifact, ListArtifacts, ListQuotas, SaveArtifact,
        SetQuotas,
    };
    let (create, get, save, delete, list) = (
        repo.clone(),
        repo.clone(),
        repo.clone(),
        repo.clone(),
        repo.clone(),
    );
    use glance_proto::scrub::ListDeletedArtifacts;
    let (set_quotas, list_quotas, deleted) = (repo.clone(), repo.clone(), repo);
    router
        .route::<SetQuotas, _, _>(move |r| {
            let repo = set_quotas.clone();
            async move { repo.set_quotas(&r.values).await }
        })
        .route::<ListQuotas, _, _>(move |r| {
            let repo = list_quotas.clone();
            async move { repo.list_quotas(r.project_id.as_deref()).await }
        })
        .route::<CreateArtifact, _, _>(move |r| {
            let repo = create.clone();
            async move { repo.create(r.artifact).await }
        })
        .route::<GetArtifact, _, _>(move |r| {
            let repo = get.clone();
            async move { repo.get(&r.ctx, r.type_name.as_deref(), r.id).await }
        })
        .route::<SaveArtifact, _, _>(move |r| {
            let repo = save.clone();
            async move { repo.save(&r.ctx, r.artifact).await }
        })
        .route::<DeleteArtifact, _, _>(move |r| {
            let repo = delete.clone();
            async move { repo.delete(&r.ctx, r.id, r.revision).await }
        })
        .route::<ListArtifacts, _, _>(move |r| {
            let repo = list.clone();
            async move {
                let (t, owner) = (r.type_name.as_deref(), r.owner.as_deref());
                repo.list(&r.ctx, t, owner, r.include_deleted, &r.names)
                    .await
            }
        })
        .route::<ListDeletedArtifacts, _, _>(move |r| {
            let repo = deleted.clone();
            async move {
                repo.deleted_due(&r.ctx, r.deleted_before, r.limit, r.marker)
                    .await
            }
        })
}
