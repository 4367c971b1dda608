//! The one place the artifact API talks to the registry and removes blob data: each call
//! is a typed bus request (`glance_proto::glare`), and data a store will not remove now
//! becomes a scrub job, as for images.

use std::sync::Arc;

use glance_bus::Bus;
use glance_domain::{Artifact, ImageId, RequestContext};
use glance_notify::{Notifier, NotifyConfig};
use glance_proto::glare::{
    CreateArtifact, DeleteArtifact, GetArtifact, ListArtifacts, ListQuotas, Quotas, SaveArtifact,
    SetQuotas,
};
use glance_registry_client::RegistryClient;
use glance_store::Store;
use uuid::Uuid;

use crate::error::{GlareError, GlareResult};

#[derive(Clone)]
pub struct Gateway {
    bus: Bus,
    registry: RegistryClient,
    pub store: Arc<dyn Store>,
    notifier: Notifier,
}

impl Gateway {
    pub fn new(bus: Bus, store: Arc<dyn Store>, notifications: NotifyConfig) -> Self {
        let notifier = Notifier::for_service(bus.clone(), notifications, "artifact");
        Self {
            registry: RegistryClient::new(bus.clone()),
            bus,
            store,
            notifier,
        }
    }

    /// Glare's notifications (see [`crate::notify`]).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    fn rid(ctx: &RequestContext) -> Option<String> {
        Some(ctx.request_id.clone())
    }

    pub async fn get(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
        id: &str,
    ) -> GlareResult<Artifact> {
        let uuid = Uuid::parse_str(id).map_err(|_| GlareError::artifact_not_found(id))?;
        let req = GetArtifact {
            ctx: ctx.clone(),
            type_name: type_name.map(str::to_owned),
            id: uuid,
        };
        match self.registry.call(Self::rid(ctx), &req).await {
            Ok(a) => Ok(a),
            // The id as the caller gave it, as Glare's message has it.
            Err(e) if e.missing().is_some() => Err(GlareError::artifact_not_found(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// What the caller may see of `type_name` (every type when `None`), but what a
    /// delayed delete left for the scrubber.
    pub async fn list(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
    ) -> GlareResult<Vec<Artifact>> {
        self.list_scoped(ctx, type_name, None, false, Vec::new())
            .await
    }

    /// The same, only the artifacts named `names` (a list filter the registry applies in
    /// SQL).
    pub async fn list_named(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
        names: Vec<String>,
    ) -> GlareResult<Vec<Artifact>> {
        self.list_scoped(ctx, type_name, None, false, names).await
    }

    /// Everything `owner` keeps, those waiting for the scrubber too (they still hold their
    /// data): what the quotas count, as Glare's.
    pub async fn owned(&self, ctx: &RequestContext, owner: &str) -> GlareResult<Vec<Artifact>> {
        self.list_scoped(ctx, None, Some(owner), true, Vec::new())
            .await
    }

    /// See `ListArtifacts`.
    pub async fn list_scoped(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
        owner: Option<&str>,
        include_deleted: bool,
        names: Vec<String>,
    ) -> GlareResult<Vec<Artifact>> {
        let req = ListArtifacts {
            ctx: ctx.clone(),
            type_name: type_name.map(str::to_owned),
            owner: owner.map(str::to_owned),
            include_deleted,
            names,
        };
        Ok(self.registry.call(Self::rid(ctx), &req).await?)
    }

    pub async fn create(&self, ctx: &RequestContext, artifact: Artifact) -> GlareResult<Artifact> {
        let req = CreateArtifact {
            ctx: ctx.clone(),
            artifact,
        };
        Ok(self.registry.call(Self::rid(ctx), &req).await?)
    }

    /// Saves `artifact` if nobody saved it since it was read (its `revision`).
    pub async fn save(&self, ctx: &RequestContext, artifact: Artifact) -> GlareResult<Artifact> {
        let req = SaveArtifact {
            ctx: ctx.clone(),
            artifact,
        };
        Ok(self.registry.call(Self::rid(ctx), &req).await?)
    }

    pub async fn list_quotas(
        &self,
        ctx: &RequestContext,
        project_id: Option<&str>,
    ) -> GlareResult<Quotas> {
        let req = ListQuotas {
            ctx: ctx.clone(),
            project_id: project_id.map(str::to_owned),
        };
        Ok(self.registry.call(Self::rid(ctx), &req).await?)
    }

    pub async fn set_quotas(&self, ctx: &RequestContext, values: Quotas) -> GlareResult<()> {
        let req = SetQuotas {
            ctx: ctx.clone(),
            values,
        };
        Ok(self.registry.call(Self::rid(ctx), &req).await?)
    }

    /// A delayed delete: the artifact stays, `deleted`, with its blobs, until a scrubber
    /// removes both (Glare's `delayed_delete`).
    pub async fn mark_deleted(
        &self,
        ctx: &RequestContext,
        mut artifact: Artifact,
    ) -> GlareResult<Artifact> {
        artifact.status = glance_domain::ArtifactStatus::Deleted;
        artifact.updated_at = chrono::Utc::now();
        self.save(ctx, artifact).await
    }

    /// Removes the record, then every blob it held.
    pub async fn delete(&self, ctx: &RequestContext, artifact: &Artifact) -> GlareResult<()> {
        let req = DeleteArtifact {
            ctx: ctx.clone(),
            id: artifact.id,
            revision: artifact.revision,
        };
        let gone = self.registry.call(Self::rid(ctx), &req).await?;
        self.remove_data(ctx, gone.id, gone.blob_locations()).await;
        for upload in gone.saving_uploads() {
            self.remove_partials(&upload).await;
        }
        Ok(())
    }

    /// Removes what upload `upload_id` (a blob's `upload_id`) left in the store's incoming
    /// area: an upload that died, or one whose artifact was deleted under it.
    pub async fn remove_partials(&self, upload_id: &str) {
        if let Ok(id) = upload_id.parse::<ImageId>() {
            self.store.remove_partials_of(id).await;
        }
    }

    /// Removes blob data no record points to any more. What a store will not remove now
    /// goes to the scrubbers (a scrub job for an id no image has removes only the
    /// locations it names).
    pub async fn remove_data(&self, ctx: &RequestContext, id: Uuid, locations: Vec<String>) {
        use glance_proto::scrub::{ScrubImage, SCRUB_KEY};
        let mut left = Vec::new();
        for url in locations {
            if let Err(e) = self.store.delete(&url).await {
                tracing::warn!(artifact_id = %id, error = %e, "could not remove blob data; scheduling a scrub");
                left.push(url);
            }
        }
        if left.is_empty() {
            return;
        }
        let job = ScrubImage {
            image_id: ImageId::from(id),
            locations: left,
            artifact: false,
        };
        if let Err(e) = self.bus.publish_work(SCRUB_KEY, Self::rid(ctx), &job).await {
            tracing::error!(artifact_id = %id, error = %e, locations = ?job.locations,
                "could not schedule the scrub of blob data; it is orphaned");
        }
    }
}
