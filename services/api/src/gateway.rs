//! The stack every image operation goes through, composed in one place (Glance's
//! `glance/gateway.py`): policy checks here, then the registry over the bus.
//!
//! Handlers never call the bus directly, so the rules below apply to every route.

use glance_bus::{Bus, Coalescer};
use glance_domain::{Image, ImageId, ImageStatus, RequestContext};
use glance_proto::leases::{
    BreakLease, ExpiredLease, ExpiredLeases, LeaseChange, RenewLease, UploadState, UploadStates,
};
use glance_proto::names::REGISTRY_QUEUE;
use glance_proto::registry::{
    AddMember, CreateImage, DeleteImage, GetImage, GetImages, ImageMember, ListImages,
    ListImagesMany, ListMembers, RegistryResult, RemoveMember, SaveImage, StorageUsage,
    UpdateMember,
};
use glance_proto::Rpc;
use glance_registry_client::RegistryClient;

use crate::error::{ApiError, ApiResult};
use crate::notify::{Notifier, NotifyConfig};
use crate::policy::{Policy, Target};

/// The registry over the bus, then notifications (Glance's notifier proxies) for every
/// change that succeeded.
#[derive(Clone)]
pub struct Gateway {
    bus: Bus,
    registry: RegistryClient,
    notifier: Notifier,
    /// Image-shows in batches, when the registry is across the bus (see [`Coalescer`]).
    shows: Option<Coalescer<GetImage, RegistryResult<Image>>>,
    /// Image lists in batches, likewise.
    lists: Option<Coalescer<ListImages, RegistryResult<Vec<Image>>>>,
}

impl Gateway {
    pub fn new(bus: Bus) -> Self {
        Self {
            notifier: Notifier::new(bus.clone(), NotifyConfig::default()),
            registry: RegistryClient::new(bus.clone()),
            bus,
            shows: None,
            lists: None,
        }
    }

    /// Sends image-shows to a registry across the bus in batches: at most `in_flight` batches
    /// at once of at most `batch_size` shows each (0 in flight: one message per show). A
    /// registry in this process is always called directly.
    pub fn with_show_batches(mut self, in_flight: usize, batch_size: usize) -> Self {
        self.shows = batches(&self.bus, in_flight, batch_size, |items| GetImages {
            items,
        });
        self
    }

    /// Sends image lists in batches, as [`Gateway::with_show_batches`] does shows.
    pub fn with_list_batches(mut self, in_flight: usize, batch_size: usize) -> Self {
        self.lists = batches(&self.bus, in_flight, batch_size, |items| ListImagesMany {
            items,
        });
        self
    }

    /// Which notifications to send (`[oslo_messaging_notifications] driver`,
    /// `[DEFAULT] disabled_notifications`); all by default.
    pub fn with_notifications(mut self, config: NotifyConfig) -> Self {
        self.notifier = Notifier::new(self.bus.clone(), config);
        self
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    pub async fn get(&self, ctx: &RequestContext, id: ImageId) -> ApiResult<Image> {
        let req = GetImage {
            ctx: ctx.clone(),
            id,
            include_deleted: false,
        };
        match &self.shows {
            Some(shows) => Ok(shows.call(req).await??),
            None => Ok(self
                .registry
                .call(Some(ctx.request_id.clone()), &req)
                .await?),
        }
    }

    pub async fn list(&self, req: ListImages) -> ApiResult<Vec<Image>> {
        match &self.lists {
            Some(lists) => Ok(lists.call(req).await??),
            None => Ok(self
                .registry
                .call(Some(req.ctx.request_id.clone()), &req)
                .await?),
        }
    }

    pub async fn create(&self, ctx: &RequestContext, image: Image) -> ApiResult<Image> {
        let req = CreateImage {
            ctx: ctx.clone(),
            image,
        };
        let created = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        self.notifier.image(ctx, "image.create", &created).await;
        Ok(created)
    }

    /// Saves `image`; with `from_state`, only if its stored status is still that.
    pub async fn save(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: Option<ImageStatus>,
    ) -> ApiResult<Image> {
        self.save_guarded(ctx, image, from_state, None, LeaseChange::Keep)
            .await
    }

    /// [`Gateway::save`] that also takes or releases the image's upload lease.
    pub async fn save_leased(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: ImageStatus,
        lease: LeaseChange,
    ) -> ApiResult<Image> {
        self.save_guarded(ctx, image, Some(from_state), None, lease)
            .await
    }

    /// Extends an upload's lease; `Conflict` once it is lost.
    pub async fn renew_lease(
        &self,
        ctx: &RequestContext,
        id: ImageId,
        holder: &str,
        seconds: u32,
    ) -> ApiResult<()> {
        let req = RenewLease {
            ctx: ctx.clone(),
            image_id: id,
            holder: holder.to_owned(),
            seconds,
        };
        Ok(self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?)
    }

    /// Images whose upload lease ran out (see [`crate::data::sweep`]).
    pub async fn expired_leases(
        &self,
        ctx: &RequestContext,
        unleased_after_seconds: u32,
    ) -> ApiResult<Vec<ExpiredLease>> {
        let req = ExpiredLeases {
            ctx: ctx.clone(),
            unleased_after_seconds,
            limit: 100,
        };
        Ok(self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?)
    }

    /// Puts the image of an expired lease back to `queued`; `false` if another node did,
    /// or the upload renewed it after all.
    pub async fn break_lease(
        &self,
        ctx: &RequestContext,
        lease: ExpiredLease,
        unleased_after_seconds: u32,
    ) -> ApiResult<bool> {
        let req = BreakLease {
            ctx: ctx.clone(),
            lease,
            unleased_after_seconds,
        };
        Ok(self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?)
    }

    /// Whether live uploads or imports may own files of `ids`.
    pub async fn upload_states(
        &self,
        ctx: &RequestContext,
        ids: Vec<ImageId>,
    ) -> ApiResult<Vec<UploadState>> {
        let req = UploadStates {
            ctx: ctx.clone(),
            ids,
        };
        Ok(self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?)
    }

    /// [`Gateway::save`], and only if nobody saved the image since `image` was read (its
    /// `updated_at` is still the stored one); else `Conflict`.
    pub async fn save_if_unchanged(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: Option<ImageStatus>,
    ) -> ApiResult<Image> {
        let read_at = image.updated_at;
        self.save_guarded(ctx, image, from_state, Some(read_at), LeaseChange::Keep)
            .await
    }

    async fn save_guarded(
        &self,
        ctx: &RequestContext,
        image: Image,
        from_state: Option<ImageStatus>,
        unmodified_since: Option<chrono::DateTime<chrono::Utc>>,
        lease: LeaseChange,
    ) -> ApiResult<Image> {
        let req = SaveImage {
            ctx: ctx.clone(),
            image,
            from_state,
            unmodified_since,
            lease,
        };
        let saved = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        self.notifier.image_saved(ctx, from_state, &saved).await;
        Ok(saved)
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
        let deleted = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        self.notifier.image_deleted(ctx, &deleted).await;
        Ok(deleted)
    }

    /// The members of a visible image that `ctx` may see (all for the owner).
    pub async fn members(
        &self,
        ctx: &RequestContext,
        image_id: ImageId,
    ) -> ApiResult<Vec<ImageMember>> {
        let req = ListMembers {
            ctx: ctx.clone(),
            image_id,
        };
        Ok(self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?)
    }

    pub async fn add_member(
        &self,
        ctx: &RequestContext,
        image_id: ImageId,
        member_id: String,
    ) -> ApiResult<ImageMember> {
        let req = AddMember {
            ctx: ctx.clone(),
            image_id,
            member_id,
        };
        let member = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        self.notifier
            .member(ctx, "image.member.create", &member)
            .await;
        Ok(member)
    }

    pub async fn update_member(
        &self,
        ctx: &RequestContext,
        image_id: ImageId,
        member_id: String,
        status: glance_domain::MemberStatus,
    ) -> ApiResult<ImageMember> {
        let req = UpdateMember {
            ctx: ctx.clone(),
            image_id,
            member_id,
            status,
        };
        let member = self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        self.notifier
            .member(ctx, "image.member.update", &member)
            .await;
        Ok(member)
    }

    pub async fn remove_member(
        &self,
        ctx: &RequestContext,
        image_id: ImageId,
        member_id: String,
    ) -> ApiResult<()> {
        // The notification carries the membership as it was, so read it first.
        let before = if self.notifier.allows("image.member.delete") {
            self.members(ctx, image_id)
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|m| m.member_id == member_id))
        } else {
            None
        };
        let req = RemoveMember {
            ctx: ctx.clone(),
            image_id,
            member_id,
        };
        self.registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?;
        if let Some(member) = before {
            self.notifier
                .member(ctx, "image.member.delete", &member)
                .await;
        }
        Ok(())
    }

    /// Bytes `owner` stores, leaving out image `except`.
    pub async fn storage_usage(
        &self,
        ctx: &RequestContext,
        owner: String,
        except: Option<ImageId>,
    ) -> ApiResult<u64> {
        let req = StorageUsage {
            ctx: ctx.clone(),
            owner,
            except,
        };
        Ok(self
            .registry
            .call(Some(ctx.request_id.clone()), &req)
            .await?)
    }
}

/// Checks `rule` (a policy rule name such as `modify_image`) for `ctx` on `image`. As in
/// Glance (`ImageAPIPolicy._enforce`), a refusal is 404 when the caller may not even see the
/// image, so its existence does not leak, and 403 when it may.
pub fn authorize_modify(
    policy: &Policy,
    ctx: &RequestContext,
    image: &Image,
    rule: &str,
) -> ApiResult<()> {
    authorize_on(policy, ctx, image, &Target::image(image, ctx), rule)
}

/// [`authorize_modify`] with a target of the caller's making (a membership's, say), still
/// answering 404 to a caller who may not see `image`.
pub fn authorize_on(
    policy: &Policy,
    ctx: &RequestContext,
    image: &Image,
    target: &Target,
    rule: &str,
) -> ApiResult<()> {
    if policy.check(rule, ctx, target) {
        return Ok(());
    }
    if rule == "get_image" || !policy.check("get_image", ctx, &Target::image(image, ctx)) {
        return Err(ApiError::image_not_found(image.id));
    }
    Err(forbidden(rule))
}

/// Checks `add_image` for a new image (its owner is the target's project).
pub fn authorize_create(policy: &Policy, ctx: &RequestContext, image: &Image) -> ApiResult<()> {
    let target = Target::new()
        .with("project_id", image.owner.clone())
        .with("owner", image.owner.clone())
        .with("visibility", Some(image.visibility.as_str()));
    if policy.check("add_image", ctx, &target) {
        Ok(())
    } else {
        Err(forbidden("add_image"))
    }
}

/// Checks a rule that is not about one image (`get_images`: the caller's own project).
pub fn authorize(
    policy: &Policy,
    ctx: &RequestContext,
    rule: &str,
    target: &Target,
) -> ApiResult<()> {
    if policy.check(rule, ctx, target) {
        Ok(())
    } else {
        Err(forbidden(rule))
    }
}

pub fn forbidden(rule: &str) -> ApiError {
    ApiError::Forbidden(format!("You are not authorized to complete {rule} action."))
}

/// A request that can ride in a batch: it names the caller whose request id the batch
/// carries.
trait Batchable: Send + 'static {
    fn ctx(&self) -> &RequestContext;
}

impl Batchable for GetImage {
    fn ctx(&self) -> &RequestContext {
        &self.ctx
    }
}

impl Batchable for ListImages {
    fn ctx(&self) -> &RequestContext {
        &self.ctx
    }
}

/// A [`Coalescer`] that carries requests `R` to a registry across the bus, many in one
/// message `B` (`wrap` makes it), when `in_flight` allows batches and the registry is not
/// in this process.
fn batches<R, B, T>(
    bus: &Bus,
    in_flight: usize,
    batch_size: usize,
    wrap: fn(Vec<R>) -> B,
) -> Option<Coalescer<R, RegistryResult<T>>>
where
    R: Batchable,
    B: Rpc<Reply = Vec<RegistryResult<T>>> + Sync,
    T: Send + 'static,
{
    if in_flight == 0 || bus.is_inline(REGISTRY_QUEUE) {
        return None;
    }
    let bus = bus.clone();
    Some(Coalescer::new(
        in_flight,
        batch_size,
        move |items: Vec<R>| {
            let bus = bus.clone();
            async move {
                // Every caller's request id, so the registry's log of the batch can be found
                // from any of them.
                let ids: Vec<&str> = items.iter().map(|i| i.ctx().request_id.as_str()).collect();
                let request_id = Some(ids.join(","));
                bus.call(request_id, &wrap(items)).await
            }
        },
    ))
}
