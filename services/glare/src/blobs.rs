//! `/artifacts/{type}/{id}/{blob}[/{key}]`: upload (streamed to the store with md5, sha1
//! and sha256 computed on the way, within the field's size limit), download (with
//! `Content-MD5` and Glare's checksum headers; a 301 for an external blob) and delete
//! (external blobs only, as Glare).
//!
//! An upload marks the blob `saving` first (compare-and-set on the artifact's revision,
//! so two uploads cannot both start), then writes the data under a fresh id, then saves
//! the blob `active` with its location; the data it replaced is removed after.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures::StreamExt;
use glance_domain::{Artifact, ArtifactStatus, ImageId};
use md5::Digest;
use serde_json::{json, Value};

use crate::artifacts::{content_type, find_type, load, writable_type};
use crate::error::{GlareError, GlareResult};
use crate::identity::Caller;
use crate::model::render;
use crate::notify;
use crate::policy;
use crate::types::{ArtifactType, Field, Kind};
use crate::AppState;

const EXTERNAL: &str = "application/vnd+openstack.glare-custom-location+json";
/// A lost race with another save is retried this many times.
const SAVE_ATTEMPTS: usize = 5;

/// The blob field (and key, for a blob dict) a path names.
fn blob_field(t: &ArtifactType, name: &str, key: Option<&str>) -> GlareResult<&'static Field> {
    let f = t.field(name);
    match (f.map(|f| f.kind), key) {
        (Some(Kind::BlobDict), Some(_)) | (Some(Kind::Blob), None) => Ok(f.expect("found")),
        (_, Some(_)) => Err(GlareError::BadRequest(format!("{name} is not a blob dict"))),
        (_, None) => Err(GlareError::BadRequest(format!("{name} is not a blob"))),
    }
}

fn blob_name(name: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("{name}[{k}]"),
        None => name.to_owned(),
    }
}

fn get_blob(a: &Artifact, name: &str, key: Option<&str>) -> Option<Value> {
    let v = a.fields.get(name)?;
    let v = match key {
        Some(k) => v.get(k)?,
        None => v,
    };
    (!v.is_null()).then(|| v.clone())
}

fn set_blob(a: &mut Artifact, name: &str, key: Option<&str>, blob: Option<Value>) {
    match key {
        None => {
            a.fields
                .insert(name.to_owned(), blob.unwrap_or(Value::Null));
        }
        Some(k) => {
            let entry = a.fields.entry(name.to_owned()).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            let map = entry.as_object_mut().expect("an object");
            match blob {
                Some(b) => {
                    map.insert(k.to_owned(), b);
                }
                None => {
                    map.remove(k);
                }
            }
        }
    }
}

/// Glare's `validate_change_allowed` for a blob field.
fn change_allowed(a: &Artifact, f: &Field) -> GlareResult<()> {
    match a.status {
        ArtifactStatus::Drafted => Ok(()),
        ArtifactStatus::Active if f.mutable => Ok(()),
        ArtifactStatus::Active => Err(GlareError::forbidden(format!(
            "Forbidden to change field '{}' after activation.",
            f.name
        ))),
        _ => Err(GlareError::forbidden(
            "Forbidden to change fields if artifact is not active or drafted.",
        )),
    }
}

/// `{type}`, `{id}`, `{blob}` and, for a blob dict, `{key}` from the route.
fn split_path(req: &HttpRequest) -> (String, String, String, Option<String>) {
    let m = req.match_info();
    (
        m.query("type").to_owned(),
        m.query("id").to_owned(),
        m.query("blob").to_owned(),
        m.get("key").map(str::to_owned),
    )
}

/// Reads the artifact again and applies `change`, retrying a lost compare-and-set.
async fn save_with(
    state: &AppState,
    caller: &Caller,
    t: &ArtifactType,
    id: &str,
    change: impl Fn(&mut Artifact) -> GlareResult<()>,
) -> GlareResult<Artifact> {
    let mut attempt = 0;
    loop {
        let mut a = load(state, caller, t, id).await?;
        change(&mut a)?;
        a.updated_at = Utc::now();
        match state.gateway.save(&caller.0, a).await {
            Err(GlareError::Conflict(_)) if attempt + 1 < SAVE_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> GlareResult<HttpResponse> {
    let (type_name, id, name, key) = split_path(&req);
    let key = key.as_deref();
    let t = writable_type(&type_name)?;
    let a = load(&state, &caller, t, &id).await?;
    let f = blob_field(t, &name, key)?;
    let ct = content_type(&req);
    let external = ct == EXTERNAL;
    policy::upload(
        &caller.0,
        &a,
        if external {
            "artifact:set_location"
        } else {
            "artifact:upload"
        },
    )?;
    let existing = get_blob(&a, &name, key);
    if external {
        let body = read_small(payload).await?;
        return set_location(&state, &caller, t, a, f, key, existing, &body).await;
    }
    // A blob `saving` under a live lease is another upload's; one whose lease ran out was
    // abandoned (its uploader died): this upload takes over and removes what it left.
    let mut abandoned = None;
    if let Some(blob) = existing.as_ref().filter(|b| b["status"] == "saving") {
        if lease_live(blob) {
            return Err(GlareError::Conflict(format!(
                "Blob {} already exists for artifact and it is in saving {}",
                name, a.id
            )));
        }
        abandoned = blob["upload_id"].as_str().map(str::to_owned);
    }
    change_allowed(&a, f)?;
    let declared: Option<u64> = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(n) = declared.filter(|n| *n > f.max_blob_size) {
        return Err(too_large(n, &blob_name(&name, key), f.max_blob_size));
    }
    // Within the field's limit and what the project's data quotas leave.
    let room = crate::quotas::check_data(&state, &caller.0, &a.owner, t.name, declared).await?;
    let limit = room.map_or(f.max_blob_size, |r| r.min(f.max_blob_size));
    // Step 1: the blob is `saving` under this upload's lease, so no second upload starts.
    let lease = Duration::from_secs(u64::from(state.config().identity.upload.lease_seconds));
    let data_id = ImageId::new();
    let mut saving = existing.clone().unwrap_or_else(|| json!({}));
    // The blob this upload replaces, for the sweep to put back should the upload die
    // (taking over an abandoned upload keeps the one that upload was replacing).
    if let Some(previous) = existing.as_ref().filter(|b| b["status"] != "saving") {
        saving["previous"] = previous.clone();
    }
    saving["status"] = json!("saving");
    saving["upload_id"] = json!(data_id.to_string());
    saving["saving_until"] = json!(lease_end(lease));
    saving["external"] = json!(false);
    // A blob that is replaced keeps the content type of its first upload (as Glare).
    saving["content_type"] = match existing.as_ref().map(|b| &b["content_type"]) {
        Some(Value::String(kept)) => json!(kept),
        _ if ct.is_empty() => json!("application/octet-stream"),
        _ => json!(ct),
    };
    let mut marked = a.clone();
    set_blob(&mut marked, &name, key, Some(saving));
    marked.updated_at = Utc::now();
    let marked = state.gateway.save(&caller.0, marked).await?;
    if let Some(stale) = abandoned {
        state.gateway.remove_partials(&stale).await;
    }
    // Step 2: the data, under a fresh id, the lease renewed while it flows.
    let renewal = renew(&state, &caller, t, &id, &name, key, data_id, lease);
    let written = write(&state, payload, limit, &blob_name(&name, key), data_id).await;
    renewal.abort();
    let restore = existing.clone();
    // Only while the blob is still this upload's: a lease that ran out (a stalled client)
    // may have let another upload take over.
    let mine = data_id.to_string();
    let still_mine = |a: &Artifact| -> GlareResult<()> {
        match get_blob(a, &name, key) {
            Some(b) if b["upload_id"] == mine.as_str() => Ok(()),
            _ => Err(GlareError::Conflict(format!(
                "The upload of {} lost its lease to another upload.",
                blob_name(&name, key)
            ))),
        }
    };
    let (location, info) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = save_with(&state, &caller, t, &id, |a| {
                still_mine(a)?;
                set_blob(a, &name, key, restore.clone());
                Ok(())
            })
            .await;
            return Err(e);
        }
    };
    // Step 3: the blob is active and points at the data.
    let mut blob = info;
    blob["status"] = json!("active");
    blob["external"] = json!(false);
    blob["content_type"] =
        get_blob(&marked, &name, key).map_or(Value::Null, |b| b["content_type"].clone());
    blob["location"] = json!(location);
    let saved = save_with(&state, &caller, t, &id, |a| {
        still_mine(a)?;
        set_blob(a, &name, key, Some(blob.clone()));
        Ok(())
    })
    .await;
    match saved {
        Ok(saved) => {
            if let Some(old) = existing.and_then(|b| b["location"].as_str().map(str::to_owned)) {
                state.gateway.remove_data(&caller.0, a.id, vec![old]).await;
            }
            notify::artifact(&state, &caller.0, "upload", &saved).await;
            Ok(HttpResponse::Ok().json(render(t, &saved)))
        }
        Err(e) => {
            state
                .gateway
                .remove_data(&caller.0, a.id, vec![location])
                .await;
            Err(e)
        }
    }
}

fn lease_end(lease: Duration) -> String {
    let end = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    end.to_rfc3339()
}

/// Whether a `saving` blob's upload still holds its lease (blobs saved before leases
/// existed have none, and count as held).
pub(crate) fn lease_live(blob: &Value) -> bool {
    match blob["saving_until"].as_str() {
        Some(until) => chrono::DateTime::parse_from_rfc3339(until).is_ok_and(|t| t > Utc::now()),
        None => true,
    }
}

/// Renews this upload's lease every third of it while the data flows; stops (by abort)
/// when the upload ends, or when the blob is no longer this upload's.
#[allow(clippy::too_many_arguments)]
fn renew(
    state: &web::Data<AppState>,
    caller: &Caller,
    t: &'static ArtifactType,
    id: &str,
    name: &str,
    key: Option<&str>,
    data_id: ImageId,
    lease: Duration,
) -> tokio::task::JoinHandle<()> {
    let (state, ctx) = (state.clone(), Caller(caller.0.clone()));
    let (id, name, key) = (id.to_owned(), name.to_owned(), key.map(str::to_owned));
    let mine = data_id.to_string();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let Ok(a) = load(&state, &ctx, t, &id).await else {
                return;
            };
            match get_blob(&a, &name, key.as_deref()) {
                Some(b) if b["upload_id"] == mine.as_str() && b["status"] == "saving" => {}
                _ => return,
            }
            let _ = save_with(&state, &ctx, t, &id, |a| {
                if let Some(mut b) = get_blob(a, &name, key.as_deref()) {
                    if b["upload_id"] == mine.as_str() {
                        b["saving_until"] = json!(lease_end(lease));
                        set_blob(a, &name, key.as_deref(), Some(b));
                    }
                }
                Ok(())
            })
            .await;
        }
    })
}

fn too_large(n: u64, blob: &str, limit: u64) -> GlareError {
    GlareError::TooLarge(format!(
        "Can't upload {n} bytes of data to blob {blob}. Its max allowed size is {limit}"
    ))
}

async fn read_small(mut payload: web::Payload) -> GlareResult<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| GlareError::BadRequest(e.to_string()))?;
        body.extend_from_slice(&chunk);
        if body.len() > 65536 {
            return Err(GlareError::TooLarge(
                "Location document is too large.".into(),
            ));
        }
    }
    Ok(body)
}

/// Streams the body to the store; replies with the location and the blob's checksums.
async fn write(
    state: &AppState,
    mut payload: web::Payload,
    limit: u64,
    blob: &str,
    data_id: ImageId,
) -> GlareResult<(String, Value)> {
    let store = state.gateway.store.clone();
    let mut writer = store
        .writer(data_id)
        .await
        .map_err(|e| GlareError::Internal(format!("cannot open the store: {e}")))?;
    let (mut md5, mut sha1, mut sha256) = (md5::Md5::new(), sha1::Sha1::new(), sha2::Sha256::new());
    let mut size: u64 = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await;
                return Err(GlareError::BadRequest(format!(
                    "The upload was cut short: {e}"
                )));
            }
        };
        size += chunk.len() as u64;
        if size > limit {
            writer.abort().await;
            return Err(too_large(size, blob, limit));
        }
        md5.update(&chunk);
        sha1.update(&chunk);
        sha256.update(&chunk);
        if let Err(e) = writer.write(chunk).await {
            writer.abort().await;
            return Err(match e {
                glance_store::StoreError::Full { .. } => GlareError::TooLarge(e.to_string()),
                other => GlareError::Internal(format!("store write failed: {other}")),
            });
        }
    }
    let location = writer
        .commit()
        .await
        .map_err(|e| GlareError::Internal(format!("store commit failed: {e}")))?;
    Ok((
        location,
        json!({
            "size": size,
            "md5": hex::encode(md5.finalize()),
            "sha1": hex::encode(sha1.finalize()),
            "sha256": hex::encode(sha256.finalize()),
        }),
    ))
}

/// An external blob: Glare records the URL (and the checksums given) and redirects
/// downloads there.
#[allow(clippy::too_many_arguments)]
async fn set_location(
    state: &AppState,
    caller: &Caller,
    t: &ArtifactType,
    a: Artifact,
    f: &Field,
    key: Option<&str>,
    existing: Option<Value>,
    body: &[u8],
) -> GlareResult<HttpResponse> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| GlareError::BadRequest("Malformed JSON in request body.".into()))?;
    let url = doc["url"]
        .as_str()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| GlareError::BadRequest("'url' must be an http(s) URL.".into()))?;
    match doc.get("location_type").and_then(Value::as_str) {
        None | Some("external") => {}
        Some("internal") => policy::admin_only(&caller.0, "artifact:set_internal_location")?,
        Some(other) => {
            return Err(GlareError::BadRequest(format!(
                "Invalid location type: {other}"
            )))
        }
    }
    if existing.is_some() {
        return Err(GlareError::Conflict(format!(
            "Blob {} already exists for artifact {}",
            f.name, a.id
        )));
    }
    change_allowed(&a, f)?;
    let blob = json!({
        "url": url, "size": null, "md5": doc.get("md5"), "sha1": doc.get("sha1"),
        "sha256": doc.get("sha256"), "status": "active", "external": true,
        "content_type": null,
    });
    let internal = doc.get("location_type").and_then(Value::as_str) == Some("internal");
    let mut changed = a;
    set_blob(&mut changed, f.name, key, Some(blob));
    changed.updated_at = Utc::now();
    let saved = state.gateway.save(&caller.0, changed).await?;
    let action = if internal {
        "set_internal_location"
    } else {
        "set_location"
    };
    notify::artifact(state, &caller.0, action, &saved).await;
    Ok(HttpResponse::Ok().json(render(t, &saved)))
}

pub async fn download(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> GlareResult<HttpResponse> {
    let (type_name, id, name, key) = split_path(&req);
    let key = key.as_deref();
    let t = find_type(&type_name)?;
    let a = load(&state, &caller, t, &id).await?;
    let own = ArtifactType::find(&a.type_name).unwrap_or(t);
    blob_field(own, &name, key)?;
    policy::download(&caller.0, &a)?;
    if a.status == glance_domain::ArtifactStatus::Deleted {
        return Err(GlareError::forbidden(
            "Cannot download data when artifact is deleted",
        ));
    }
    let label = blob_name(&name, key);
    let blob = get_blob(&a, &name, key)
        .ok_or_else(|| GlareError::not_found(format!("No data found for blob {label}")))?;
    if blob["status"] != "active" {
        return Err(GlareError::Conflict(format!(
            "{label} is not ready for download"
        )));
    }
    if blob["external"].as_bool().unwrap_or(false) {
        let url = blob["url"].as_str().unwrap_or_default().to_owned();
        let mut res = HttpResponse::MovedPermanently();
        res.insert_header((header::LOCATION, url));
        // Glare's 301 carries the location's checksums, as a download of the data would.
        res.content_type("application/json");
        for (name, key) in [
            ("content-md5", "md5"),
            ("x-openstack-glare-content-sha1", "sha1"),
            ("x-openstack-glare-content-sha256", "sha256"),
        ] {
            if let Some(v) = blob[key].as_str() {
                res.insert_header((name, v));
            }
        }
        return Ok(res.finish());
    }
    let location = blob["location"].as_str().unwrap_or_default();
    let stream = state
        .gateway
        .store
        .read(location, None)
        .await
        .map_err(|e| match e {
            glance_store::StoreError::NotFound(_) => {
                GlareError::not_found(format!("No data found for blob {label}"))
            }
            other => GlareError::Internal(format!("store read failed: {other}")),
        })?;
    let mut res = HttpResponse::Ok();
    res.content_type(
        blob["content_type"]
            .as_str()
            .unwrap_or("application/octet-stream"),
    );
    for (header_name, field) in [
        ("content-md5", "md5"),
        ("x-openstack-glare-content-sha1", "sha1"),
        ("x-openstack-glare-content-sha256", "sha256"),
    ] {
        if let Some(v) = blob[field].as_str() {
            res.insert_header((header_name, v));
        }
    }
    let size = blob["size"].as_u64().unwrap_or(0);
    let body = actix_web::body::SizedStream::new(
        size,
        stream.map(|r| r.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))),
    );
    Ok(res.body(body))
}

pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> GlareResult<HttpResponse> {
    let (type_name, id, name, key) = split_path(&req);
    let key = key.as_deref();
    let t = writable_type(&type_name)?;
    let a = load(&state, &caller, t, &id).await?;
    blob_field(t, &name, key)?;
    policy::upload(&caller.0, &a, "artifact:delete_blob")?;
    let label = blob_name(&name, key);
    let blob = get_blob(&a, &name, key)
        .ok_or_else(|| GlareError::not_found(format!("Blob {label} wasn't found for artifact")))?;
    if !blob["external"].as_bool().unwrap_or(false) {
        return Err(GlareError::forbidden(format!(
            "Blob {label} is not external"
        )));
    }
    let mut changed = a;
    set_blob(&mut changed, &name, key, None);
    changed.updated_at = Utc::now();
    let saved = state.gateway.save(&caller.0, changed).await?;
    notify::artifact(&state, &caller.0, "delete_blob", &saved).await;
    Ok(HttpResponse::Ok().json(render(t, &saved)))
}
