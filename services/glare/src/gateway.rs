//! The one place the artifact API talks to the registry and removes blob data: each call
//! is a typed bus request (`glance_proto::glare`), and data a store will not remove now
//! becomes a scrub job, as for images.

use std::sync::Arc;

use glance_bus::Bus;
use glance_domain::{Artifact, ImageId, RequestContext};
use glance_proto::glare::{
    CreateArtifact, DeleteArtifact, GetArtifact, ListArtifacts, ListQuotas, Quotas, SaveArtifact,
    SetQuotas,
};
use glance_store::Store;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{GlareError, GlareResult};

#[derive(Clone)]
pub struct Gateway {
    bus: Bus,
    pub store: Arc<dyn Store>,
}

impl Gateway {
    pub fn new(bus: Bus, store: Arc<dyn Store>) -> Self {
        Self { bus, store }
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
        match self.bus.call(Self::rid(ctx), &req).await? {
            Ok(a) => Ok(a),
            Err(glance_proto::registry::RegistryError::NotFound(_)) => {
                Err(GlareError::artifact_not_found(id))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(
        &self,
        ctx: &RequestContext,
        type_name: Option<&str>,
    ) -> GlareResult<Vec<Artifact>> {
        let req = ListArtifacts {
            ctx: ctx.clone(),
            type_name: type_name.map(str::to_owned),
        };
        Ok(self.bus.call(Self::rid(ctx), &req).await??)
    }

    pub async fn create(&self, ctx: &RequestContext, artifact: Artifact) -> GlareResult<Artifact> {
        let req = CreateArtifact {
            ctx: ctx.clone(),
            artifact,
        };
        Ok(self.bus.call(Self::rid(ctx), &req).await??)
    }

    /// Saves `artifact` if nobody saved it since it was read (its `revision`).
    pub async fn save(&self, ctx: &RequestContext, artifact: Artifact) -> GlareResult<Artifact> {
        let req = SaveArtifact {
            ctx: ctx.clone(),
            artifact,
        };
        Ok(self.bus.call(Self::rid(ctx), &req).await??)
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
        Ok(self.bus.call(Self::rid(ctx), &req).await??)
    }

    pub async fn set_quotas(&self, ctx: &RequestContext, values: Quotas) -> GlareResult<()> {
        let req = SetQuotas {
            ctx: ctx.clone(),
            values,
        };
        Ok(self.bus.call(Self::rid(ctx), &req).await??)
    }

    /// Removes the record, then every blob it held.
    pub async fn delete(&self, ctx: &RequestContext, artifact: &Artifact) -> GlareResult<()> {
        let req = DeleteArtifact {
            ctx: ctx.clone(),
            id: artifact.id,
            revision: artifact.revision,
        };
        let gone = self.bus.call(Self::rid(ctx), &req).await??;
        self.remove_data(ctx, gone.id, blob_locations(&gone)).await;
        for upload in blob_uploads(&gone) {
            self.remove_partials(&upload).await;
        }
        Ok(())
    }

    /// Removes what upload `upload_id` (a blob's `upload_id`) left in the store's incoming
    /// area: an upload that died, or one whose artifact was deleted under it.
    pub async fn remove_partials(&self, upload_id: &str) {
        let Ok(id) = upload_id.parse::<ImageId>() else {
            return;
        };
        for partial in self.store.partials().await.unwrap_or_default() {
            if partial.image_id == id {
                if let Err(e) = self.store.remove_partial(&partial).await {
                    tracing::warn!(path = %partial.path.display(), error = %e,
                        "could not remove a blob upload's partial data");
                }
            }
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
            image_id: id.to_string().parse::<ImageId>().expect("a UUID"),
            locations: left,
        };
        if let Err(e) = self.bus.publish_work(SCRUB_KEY, Self::rid(ctx), &job).await {
            tracing::error!(artifact_id = %id, error = %e, locations = ?job.locations,
                "could not schedule the scrub of blob data; it is orphaned");
        }
    }
}

/// The uploads of `a`'s blobs still `saving`.
fn blob_uploads(a: &Artifact) -> Vec<String> {
    blobs_of(a)
        .into_iter()
        .filter(|b| b["status"] == "saving")
        .filter_map(|b| b["upload_id"].as_str().map(str::to_owned))
        .collect()
}

/// The store locations of every internal blob of `a`.
pub fn blob_locations(a: &Artifact) -> Vec<String> {
    blobs_of(a)
        .into_iter()
        .filter_map(|b| b.get("location")?.as_str().map(str::to_owned))
        .collect()
}

/// Every blob of `a` (only blob fields are read: a metadata key named `location` is not
/// data).
fn blobs_of(a: &Artifact) -> Vec<&Value> {
    use crate::types::{ArtifactType, Kind};
    let Some(t) = ArtifactType::find(&a.type_name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in t.fields {
        match (f.kind, a.fields.get(f.name)) {
            (Kind::Blob, Some(blob)) if blob.is_object() => out.push(blob),
            (Kind::BlobDict, Some(Value::Object(map))) => out.extend(map.values()),
            _ => {}
        }
    }
    out
}
