//! Image members (Glance's `image_member_*` functions) and the storage a project uses
//! (`_image_get_disk_usage_by_owner`), for the members API and `user_storage_quota`.
//!
//! Who may add, change or remove a membership is policy, decided by the API; the registry
//! only keeps one live membership per (image, project) and applies visibility to reads.

use glance_domain::{ImageId, MemberStatus, RequestContext};
use glance_proto::registry::{ImageMember, Missing, RegistryError, RegistryResult};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr, Statement, Value,
};

use super::convert::{self, now, DbContext};
use super::ImageRepo;
use crate::entity::image_member;

type Col = image_member::Column;

fn member_from_row(row: image_member::Model) -> RegistryResult<ImageMember> {
    Ok(ImageMember {
        image_id: row
            .image_id
            .parse()
            .map_err(|e| convert::internal("decoding a member's image id", e))?,
        status: row
            .status
            .parse::<MemberStatus>()
            .map_err(|e| convert::internal("decoding a member status", e))?,
        member_id: row.member,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn member_not_found(image_id: ImageId, member: &str) -> RegistryError {
    RegistryError::NotFound(Missing::Member {
        image: image_id.to_string(),
        member: member.to_owned(),
    })
}

impl ImageRepo {
    async fn live_member(
        &self,
        image_id: ImageId,
        member: &str,
    ) -> RegistryResult<Option<image_member::Model>> {
        image_member::Entity::find()
            .filter(Col::ImageId.eq(image_id.to_string()))
            .filter(Col::Member.eq(member))
            .filter(Col::Deleted.eq(false))
            .one(self.db.writer())
            .await
            .context("reading an image member")
    }

    /// The members of an image `ctx` can see: every one for its owner or an admin, only
    /// the caller's own otherwise (Glance's `image_member_find` for a non-owner).
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image_id))]
    pub async fn list_members(
        &self,
        ctx: &RequestContext,
        image_id: ImageId,
    ) -> RegistryResult<Vec<ImageMember>> {
        let image = self.get(ctx, image_id, false).await?;
        let mut query = image_member::Entity::find()
            .filter(Col::ImageId.eq(image_id.to_string()))
            .filter(Col::Deleted.eq(false))
            .order_by_asc(Col::Id);
        if !ctx.is_admin && !ctx.owns(image.owner.as_deref()) {
            let Some(project) = ctx.project_id.as_deref() else {
                return Ok(Vec::new());
            };
            query = query.filter(Col::Member.eq(project));
        }
        let rows = query
            .all(self.db.writer())
            .await
            .context("listing image members")?;
        rows.into_iter().map(member_from_row).collect()
    }

    /// Adds `member` to `image_id` as `pending`; a live membership already there is
    /// `Duplicate`.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image_id))]
    pub async fn create_member(
        &self,
        image_id: ImageId,
        member: &str,
    ) -> RegistryResult<ImageMember> {
        if self.live_member(image_id, member).await?.is_some() {
            return Err(RegistryError::Duplicate(format!(
                "Member {member} is duplicated for image {image_id}"
            )));
        }
        let inserted = self
            .insert_member(image_id, member, MemberStatus::Pending)
            .await?;
        member_from_row(inserted)
    }

    /// Inserts a live membership of `member` in `image_id` with `status`, without looking
    /// for one already there; an image that does not exist is `NotFound`.
    pub(super) async fn insert_member(
        &self,
        image_id: ImageId,
        member: &str,
        status: MemberStatus,
    ) -> RegistryResult<image_member::Model> {
        let now = now();
        let row = image_member::ActiveModel {
            id: NotSet,
            image_id: Set(image_id.to_string()),
            member: Set(member.to_owned()),
            can_share: Set(false),
            status: Set(status.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            deleted: Set(false),
        };
        let inserted = row
            .insert(self.db.writer())
            .await
            .map_err(|err| match err.sql_err() {
                Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                    RegistryError::image_not_found(image_id)
                }
                _ => convert::internal("adding an image member", err),
            })?;
        // Membership changes what callers may list.
        self.written(&image_id);
        Ok(inserted)
    }

    /// Sets the status of a live membership.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image_id))]
    pub async fn update_member(
        &self,
        image_id: ImageId,
        member: &str,
        status: MemberStatus,
    ) -> RegistryResult<ImageMember> {
        let row = self
            .live_member(image_id, member)
            .await?
            .ok_or_else(|| member_not_found(image_id, member))?;
        let mut active: image_member::ActiveModel = row.into();
        active.status = Set(status.as_str().to_owned());
        active.updated_at = Set(now());
        let saved = active
            .update(self.db.writer())
            .await
            .context("updating an image member")?;
        self.written(&image_id);
        member_from_row(saved)
    }

    /// Soft-deletes a live membership, as Glance does.
    #[tracing::instrument(level = "debug", skip_all, fields(image_id = %image_id))]
    pub async fn remove_member(&self, image_id: ImageId, member: &str) -> RegistryResult<()> {
        let row = self
            .live_member(image_id, member)
            .await?
            .ok_or_else(|| member_not_found(image_id, member))?;
        let now = now();
        let mut active: image_member::ActiveModel = row.into();
        active.deleted = Set(true);
        active.deleted_at = Set(Some(now));
        active.updated_at = Set(now);
        active
            .update(self.db.writer())
            .await
            .context("removing an image member")?;
        self.written(&image_id);
        Ok(())
    }

    /// Bytes `owner` stores: Σ size × live locations over its live images with a size,
    /// leaving out `except` (the image whose data is being replaced).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn storage_usage(&self, owner: &str, except: Option<ImageId>) -> RegistryResult<u64> {
        const SQL: &str = "\
            SELECT CAST(COALESCE(SUM(i.size * (SELECT COUNT(*) FROM image_locations l \
                                               WHERE l.image_id = i.id AND l.deleted = false)), 0) \
                        AS BIGINT) AS used \
              FROM images i \
             WHERE i.owner = $1 AND i.deleted = false AND i.size > 0 \
               AND i.status NOT IN ('killed', 'pending_delete', 'deleted') \
               AND i.id <> $2";
        let backend = self.db.backend();
        let statement = Statement::from_sql_and_values(
            backend,
            SQL,
            [
                Value::from(owner.to_owned()),
                Value::from(except.map(|id| id.to_string()).unwrap_or_default()),
            ],
        );
        let rows = self
            .db
            .read_all(statement)
            .await
            .context("summing a project's storage")?;
        let used: i64 = match rows.first() {
            Some(row) => row.try_get("", "used").context("decoding storage usage")?,
            None => 0,
        };
        Ok(used.max(0) as u64)
    }
}
