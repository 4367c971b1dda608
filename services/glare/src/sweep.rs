//! The blob sweep every glare node runs at start and every `[glance_upload] sweep_interval`
//! (the image API's upload options, which the glare service shares): a blob left `saving`
//! by an upload whose lease ran out (its uploader died or stalled) goes back to what it was
//! before that upload (the blob it was replacing, or none) and the upload's partial data is
//! removed. A new upload of the same blob does the same when it finds such a blob; the sweep
//! is for the blobs nobody uploads again.
//!
//! The save is a compare-and-set on the artifact's revision, so of two nodes sweeping (or a
//! sweep and an upload taking over) one wins and the other finds nothing left to do.

use actix_web::web;
use chrono::Utc;
use glance_domain::{Artifact, RequestContext};
use glance_service::Periodic;
use serde_json::Value;

use crate::artifacts::find_type;
use crate::blobs::lease_live;
use crate::error::GlareError;
use crate::types::Kind;
use crate::AppState;

/// The `blob-sweep` worker: a pass now, then every `sweep_interval` (re-read each time, so
/// a reload applies).
pub fn worker(state: web::Data<AppState>) -> Periodic {
    let every = state.config().identity.upload.sweep_interval;
    let config = state.clone();
    Periodic::new("blob-sweep", every, move || {
        let state = state.clone();
        async move {
            let recovered = sweep(&state).await;
            if recovered > 0 {
                tracing::info!(recovered, "glare sweep: abandoned blob uploads undone");
            }
        }
    })
    .every_with(move || config.config().identity.upload.sweep_interval)
}

/// One pass; returns how many blobs it put back.
pub async fn sweep(state: &AppState) -> usize {
    let ctx = RequestContext::admin(glance_telemetry::new_request_id());
    let artifacts = match state
        .gateway
        .list_scoped(&ctx, None, None, true, Vec::new())
        .await
    {
        Ok(all) => all,
        Err(e) => {
            tracing::debug!(error = %e, "glare sweep: registry not reachable");
            return 0;
        }
    };
    let mut recovered = 0;
    for artifact in artifacts {
        let abandoned = abandoned_uploads(&artifact);
        if !abandoned.is_empty() {
            recovered += recover(state, &ctx, artifact, abandoned).await;
        }
    }
    recovered
}

/// The blobs of `a` (field, and key for a blob dict) that an upload left `saving` after
/// its lease ran out, with that upload's id.
fn abandoned_uploads(a: &Artifact) -> Vec<(String, Option<String>, String)> {
    let Ok(t) = find_type(&a.type_name) else {
        return Vec::new();
    };
    let abandoned = |blob: &Value| {
        (blob["status"] == "saving" && !lease_live(blob))
            .then(|| blob["upload_id"].as_str().unwrap_or_default().to_owned())
    };
    let mut found = Vec::new();
    for f in t.all_fields() {
        let Some(value) = a.fields.get(f.name) else {
            continue;
        };
        match f.kind {
            Kind::Blob => {
                if let Some(upload) = abandoned(value) {
                    found.push((f.name.to_owned(), None, upload));
                }
            }
            Kind::BlobDict => {
                for (key, blob) in value.as_object().into_iter().flatten() {
                    if let Some(upload) = abandoned(blob) {
                        found.push((f.name.to_owned(), Some(key.clone()), upload));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// Puts back the `abandoned` blobs of `a` in one save, then removes the uploads' partial
/// data. Returns how many it put back (0 if another node or an upload got there first).
async fn recover(
    state: &AppState,
    ctx: &RequestContext,
    mut a: Artifact,
    abandoned: Vec<(String, Option<String>, String)>,
) -> usize {
    for (field, key, _) in &abandoned {
        let slot = match key {
            None => a.fields.get_mut(field),
            Some(k) => a.fields.get_mut(field).and_then(|d| d.get_mut(k)),
        };
        let Some(blob) = slot else { continue };
        *blob = restored(blob);
        if blob.is_null() {
            if let (Some(k), Some(Value::Object(dict))) = (key, a.fields.get_mut(field)) {
                dict.remove(k);
            }
        }
    }
    a.updated_at = Utc::now();
    let id = a.id;
    match state.gateway.save(ctx, a).await {
        Ok(_) => {}
        Err(GlareError::Conflict(_)) => return 0, // changed since it was read: next pass
        Err(e) => {
            tracing::warn!(artifact_id = %id, error = %e, "glare sweep: could not put blobs back");
            return 0;
        }
    }
    for (field, key, upload) in &abandoned {
        tracing::info!(artifact_id = %id, field, key = key.as_deref().unwrap_or(""),
            "glare sweep: a blob upload's lease ran out; blob put back");
        state.gateway.remove_partials(upload).await;
    }
    abandoned.len()
}

/// What a `saving` blob was before its upload began: the blob it was replacing (kept in the
/// upload's marker), or no blob.
fn restored(saving: &Value) -> Value {
    saving.get("previous").cloned().unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replaced_blob_comes_back_and_a_new_one_goes() {
        let old = json!({"status": "active", "location": "http://x/y", "external": true});
        let replacing = json!({"status": "saving", "upload_id": "u", "saving_until": "x",
                               "location": "http://x/y", "external": false, "previous": old});
        assert_eq!(restored(&replacing), old);
        let first = json!({"status": "saving", "upload_id": "u", "saving_until": "x"});
        assert_eq!(restored(&first), Value::Null);
    }
}
