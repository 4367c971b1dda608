//! Glare's default policy rules, as code: who may change, publish, deactivate, delete and
//! download which artifact. A refusal names its rule, as Glare's does.

use glance_domain::{Artifact, ArtifactStatus, ArtifactVisibility, RequestContext};

use crate::error::{GlareError, GlareResult};

fn admin_or_owner(ctx: &RequestContext, a: &Artifact) -> bool {
    ctx.is_admin || ctx.project_id.as_deref() == Some(a.owner.as_str())
}

fn check(rule: &str, allowed: bool) -> GlareResult<()> {
    if allowed {
        Ok(())
    } else {
        Err(GlareError::policy(rule))
    }
}

/// `artifact:update`: admin or owner, and only admins change public artifacts. Someone
/// else's public artifact is refused before the rule, as Glare does.
pub fn update(ctx: &RequestContext, a: &Artifact) -> GlareResult<()> {
    if !admin_or_owner(ctx, a) {
        return Err(GlareError::forbidden(
            "You are not authorized to complete this action.",
        ));
    }
    check(
        "artifact:update",
        a.visibility != ArtifactVisibility::Public || ctx.is_admin,
    )
}

/// `artifact:activate`: admin or owner.
pub fn activate(ctx: &RequestContext, a: &Artifact) -> GlareResult<()> {
    check("artifact:activate", admin_or_owner(ctx, a))
}

/// `artifact:reactivate`, `artifact:deactivate`, `artifact:publish`: admins only.
pub fn admin_only(ctx: &RequestContext, rule: &str) -> GlareResult<()> {
    check(rule, ctx.is_admin)
}

/// `artifact:delete`: admin or owner; public and deactivated artifacts admins only.
pub fn delete(ctx: &RequestContext, a: &Artifact) -> GlareResult<()> {
    check(
        "artifact:delete",
        admin_or_owner(ctx, a)
            && (a.visibility != ArtifactVisibility::Public || ctx.is_admin)
            && (a.status != ArtifactStatus::Deactivated || ctx.is_admin),
    )
}

/// `artifact:upload`, `artifact:delete_blob`: admin or owner.
pub fn upload(ctx: &RequestContext, a: &Artifact, rule: &str) -> GlareResult<()> {
    check(rule, admin_or_owner(ctx, a))
}

/// `artifact:download`: admin or owner (Glare's default: other projects see a public
/// artifact but do not download its blobs); a deactivated artifact's only for admins.
pub fn download(ctx: &RequestContext, a: &Artifact) -> GlareResult<()> {
    check(
        "artifact:download",
        admin_or_owner(ctx, a) && (a.status != ArtifactStatus::Deactivated || ctx.is_admin),
    )
}

/// `artifact:list_all_quotas`, `artifact:set_quotas`: admins only;
/// `artifact:list_project_quotas`: the project itself or an admin.
pub fn project_quotas(ctx: &RequestContext, project: &str) -> GlareResult<()> {
    check(
        "artifact:list_project_quotas",
        ctx.is_admin || ctx.project_id.as_deref() == Some(project),
    )
}
