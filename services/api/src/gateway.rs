//! The stack every image operation goes through, composed in one place (Glance's
//! `glance/gateway.py`): policy checks here, then the registry over the bus.
//!
//! Handlers never call the bus directly, so the rules below apply to every route.

use glance_bus::Bus;
use glance_domain::{Image, ImageId, ImageStatus, RequestContext};
use glance_proto::registry::{CreateImage, DeleteImage, GetImage, ListImages, SaveImage};

use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Gateway {
    bus: Bus,
}

impl Gateway {
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    pub async fn get(&self, ctx: &RequestContext, id: ImageId) -> ApiResult<Image> {
        let req = GetImage {
            ctx: ctx.clone(),
            id,
            include_deleted: false,
        };
        Ok(self.bus.call(Some(ctx.request_id.clone()), &req).await??)
    }

    pub async fn list(&self, req: ListImages) -> ApiResult<Vec<Image>> {
        Ok(self
            .bus
            .call(Some(req.ctx.request_id.clone()), &req)
            .await??)
    }

    pub async fn create(&self, ctx: &RequestContext, image: Image) -> ApiResult<Image> {
        let req = CreateImage {
            ctx: ctx.clone(),
            image,
        };
        Ok(self.bus.call(Some(ctx.request_id.clone()), &req).await??)
    }

    /// Saves `image`; with `from_state`, only if its stored status is still that.
    pub async fn save(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: Option<ImageStatus>,
    ) -> ApiResult<Image> {
        let req = SaveImage {
            ctx: ctx.clone(),
            image,
            from_state,
        };
        Ok(self.bus.call(Some(ctx.request_id.clone()), &req).await??)
    }

    pub async fn delete(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        status: ImageStatus,
    ) -> ApiResult<Image> {
        let req = DeleteImage {
            ctx: ctx.clone(),
            id,
            status,
        };
        Ok(self.bus.call(Some(ctx.request_id.clone()), &req).await??)
    }
}

/// Glance's default (secure RBAC) rule for changing an image: an admin, or a member of the
/// owning project. Readers and other projects are refused.
pub fn authorize_modify(ctx: &RequestContext, image: &Image, action: &str) -> ApiResult<()> {
    if ctx.is_admin || (ctx.owns(image.owner.as_deref()) && ctx.has_role("member")) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "You are not authorized to complete {action} action."
        )))
    }
}

/// Creating an image needs the member role (or admin).
pub fn authorize_create(ctx: &RequestContext) -> ApiResult<()> {
    if ctx.is_admin || ctx.has_role("member") {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "You are not authorized to complete add_image action.".into(),
        ))
    }
}
