//! Glare's notifications: `artifact.artifact:<action>` on the bus's event exchange (the
//! image API's notifications travel the same way), with Glare's payload
//! (`to_notification`: the artifact's type, id, description, name, version, visibility,
//! status, owner and times), published after the change is saved. The image API's
//! `[oslo_messaging_notifications] driver` and `[DEFAULT] disabled_notifications` apply
//! (`artifact.*` or `artifact` turns them all off).
//!
//! Glare defines per-type hooks around every action too; the types it enables by default
//! leave them all empty, so there is nothing of them to carry over.

use glance_domain::{Artifact, ArtifactStatus, ArtifactVisibility, RequestContext};
use serde_json::{json, Value};

use crate::model::render;
use crate::types::ArtifactType;
use crate::AppState;

/// Glare's payload for an artifact.
fn payload(a: &Artifact) -> Value {
    let shown = ArtifactType::find(&a.type_name)
        .map(|t| render(t, a))
        .unwrap_or(Value::Null);
    let mut out = json!({ "type": a.type_name });
    for key in [
        "id",
        "description",
        "name",
        "version",
        "visibility",
        "status",
        "created_at",
        "updated_at",
        "activated_at",
        "owner",
    ] {
        out[key] = shown.get(key).cloned().unwrap_or(Value::Null);
    }
    out
}

/// `artifact.artifact:<action>` for `a`, as it is now.
pub async fn artifact(state: &AppState, ctx: &RequestContext, action: &str, a: &Artifact) {
    let event_type = format!("artifact.artifact:{action}");
    state
        .gateway
        .notifier()
        .info(ctx, &event_type, payload(a))
        .await;
}

/// `artifact.artifact:set_quotas`, with the quotas set.
pub async fn quotas(state: &AppState, ctx: &RequestContext, values: Value) {
    state
        .gateway
        .notifier()
        .info(ctx, "artifact.artifact:set_quotas", values)
        .await;
}

/// The actions a saved patch performed, as Glare names them: always `update`, then
/// `publish`, `activate`, `deactivate` or `reactivate` for what changed.
pub fn patch_actions(before: &Artifact, after: &Artifact) -> Vec<&'static str> {
    use ArtifactStatus::*;
    let mut actions = vec!["update"];
    if before.visibility != ArtifactVisibility::Public
        && after.visibility == ArtifactVisibility::Public
    {
        actions.push("publish");
    }
    match (before.status, after.status) {
        (Drafted, Active) => actions.push("activate"),
        (Active, Deactivated) => actions.push("deactivate"),
        (Deactivated, Active) => actions.push("reactivate"),
        _ => {}
    }
    actions
}

/// Sends one notification per action of a saved patch.
pub async fn patched(state: &AppState, ctx: &RequestContext, before: &Artifact, after: &Artifact) {
    for action in patch_actions(before, after) {
        artifact(state, ctx, action, after).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Artifact {
        let now = chrono::Utc::now();
        Artifact {
            id: uuid::Uuid::new_v4(),
            type_name: "images".into(),
            name: "cirros".into(),
            version: Default::default(),
            owner: "demo".into(),
            visibility: ArtifactVisibility::Private,
            status: ArtifactStatus::Drafted,
            created_at: now,
            updated_at: now,
            activated_at: None,
            fields: Default::default(),
            revision: 0,
        }
    }

    #[test]
    fn a_patch_that_activates_and_publishes_names_both() {
        let before = sample();
        let mut after = before.clone();
        after.status = ArtifactStatus::Active;
        after.visibility = ArtifactVisibility::Public;
        assert_eq!(
            patch_actions(&before, &after),
            ["update", "publish", "activate"]
        );
        let mut back = after.clone();
        back.status = ArtifactStatus::Deactivated;
        assert_eq!(patch_actions(&after, &back), ["update", "deactivate"]);
        assert_eq!(patch_actions(&back, &after), ["update", "reactivate"]);
        assert_eq!(patch_actions(&before, &before), ["update"]);
    }

    #[test]
    fn the_payload_has_glares_keys() {
        let a = sample();
        let p = payload(&a);
        assert_eq!(p["type"], "images");
        assert_eq!(p["id"], a.id.to_string());
        assert_eq!(p["name"], "cirros");
        assert_eq!(p["status"], "drafted");
        assert_eq!(p["owner"], "demo");
        assert!(p.get("activated_at").is_some());
        assert!(p.get("fields").is_none() && p.get("tags").is_none());
    }
}
