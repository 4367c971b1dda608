//! `POST /v2/images/{id}/import` and the discovery documents `/v2/info/import` and
//! `/v2/info/stores` (Glance's `ImagesController.import_image` and `InfoController`).

use actix_web::HttpMessage;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use glance_bus::BusError;
use glance_config::AuthStrategy;
use glance_domain::{Image, ImageStatus, RequestContext};
use glance_import::download;
use glance_import::tasks::{image_stores, merge_store_list, FAILED, IMPORTING, IMPORT_TASK};
use glance_proto::tasks::{
    ImageBefore, ImportImage, ImportMethod, RemoteGlance, SecretToken, Task, TaskStatus, IMPORT_KEY,
};
use serde_json::{json, Value};

use super::ImportState;
use crate::error::{ApiError, ApiResult};
use crate::gateway::authorize_modify;
use crate::identity::{Caller, KeystoneToken};
use crate::images::handlers::image_id;
use crate::AppState;

pub async fn info_import(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": state.config().import.methods,
        }
    }))
}

/// `GET /v2/info/usage` (API 2.17): a project's usage against its Keystone unified limits.
/// Without `use_keystone_limits` (we have no Keystone limits) Glance reports no limits at
/// all, to every caller; `[DEFAULT] user_storage_quota` and the count quotas are not
/// reported there either.
pub async fn info_usage() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "usage": {} }))
}

pub async fn info_stores(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let list = store_docs(&state)?
        .into_iter()
        .map(|(_, doc)| doc)
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "stores": Value::Array(list) })))
}

/// `GET /v2/info/stores/detail` (API 2.15, policy `stores_info_detail`: admins): each store
/// with its driver, its driver's properties and its weight, as Glance's file driver shows them.
pub async fn info_stores_detail(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    let docs = store_docs(&state)?;
    let policy = &state.config().access.policy;
    let target = crate::policy::Target::new().with("project_id", ctx.project_id.clone());
    if !policy.check("stores_info_detail", &ctx, &target) {
        return Err(ApiError::Forbidden(
            "You are not authorized to complete stores_info_detail action.".into(),
        ));
    }
    let list = docs
        .into_iter()
        .map(|(backend, mut doc)| {
            doc["type"] = json!(backend.kind);
            doc["properties"] = json!({
                "data_dir": backend.dir.as_ref().map(|d| d.display().to_string()),
                "chunk_size": 65536,
                "thin_provisioning": false,
            });
            doc["weight"] = json!(0);
            doc
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "stores": Value::Array(list) })))
}

/// The stores as `GET /v2/info/stores` shows them, with their backends; 404 without
/// `enabled_backends`.
fn store_docs(state: &AppState) -> ApiResult<Vec<(&glance_store::Backend, Value)>> {
    let stores = &state.import.stores;
    if !stores.is_multi() {
        return Err(ApiError::NotFound(
            "Multi backend is not supported at this site.".into(),
        ));
    }
    Ok(stores
        .backends()
        .iter()
        .map(|b| {
            let mut doc = json!({"id": b.id});
            if let Some(d) = &b.description {
                doc["description"] = json!(d);
            }
            if b.id == stores.default_id() {
                doc["default"] = json!("true");
            }
            (b, doc)
        })
        .collect())
}

/// The import body, as Glance's deserializer checks it.
struct ImportRequest {
    method: ImportMethod,
    /// `stores` as sent: its shape is checked after the image's state, as Glance does.
    stores: Option<Value>,
    all_stores: bool,
    all_stores_must_succeed: bool,
    raw: Value,
}

fn parse_body(body: &[u8], enabled: &[String]) -> ApiResult<ImportRequest> {
    let raw = crate::error::parse_json(body)?;
    let name = raw
        .pointer("/method/name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("Import method name is required".into()))?;
    if !enabled.iter().any(|m| m == name) {
        return Err(ApiError::BadRequest(format!(
            "Import method name '{name}' is not valid"
        )));
    }
    let method = match name {
        "glance-direct" => ImportMethod::GlanceDirect,
        "copy-image" => ImportMethod::CopyImage,
        "web-download" => {
            let uri = raw
                .pointer("/method/uri")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::BadRequest("The 'web-download' method needs a 'uri'".into())
                })?;
            ImportMethod::WebDownload {
                uri: uri.to_owned(),
            }
        }
        // Its fields are checked after the image's state, as Glance does (see `import`).
        "glance-download" => {
            let field = |key: &str| {
                raw.pointer(&format!("/method/{key}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            ImportMethod::GlanceDownload {
                glance_image_id: field("glance_image_id"),
                glance_region: field("glance_region"),
                glance_service_interface: field("glance_service_interface"),
            }
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "Import method name '{other}' is not valid"
            )))
        }
    };
    let flag = |key: &str, default: bool| -> ApiResult<bool> {
        match raw.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::BadRequest(format!("'{key}' must be a boolean"))),
        }
    };
    Ok(ImportRequest {
        all_stores: flag("all_stores", false)?,
        all_stores_must_succeed: flag("all_stores_must_succeed", true)?,
        method,
        stores: raw.get("stores").filter(|v| !v.is_null()).cloned(),
        raw,
    })
}

/// The body's `stores`: a list of store ids.
fn store_list(stores: &Value) -> ApiResult<Vec<String>> {
    let bad = || ApiError::BadRequest("'stores' must be a list of store ids".into());
    stores
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

/// Glance's `get_stores_from_request`.
fn requested_stores(
    req: &HttpRequest,
    body: &ImportRequest,
    import: &ImportState,
) -> ApiResult<Vec<String>> {
    let header = req
        .headers()
        .get("x-image-meta-store")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let stores = if body.all_stores {
        if body.stores.is_some() || header.is_some() {
            return Err(ApiError::BadRequest(
                "All_stores parameter can't be used with x-image-meta-store header or stores parameter".into(),
            ));
        }
        import
            .stores
            .backends()
            .iter()
            .map(|b| b.id.clone())
            .collect()
    } else if let Some(stores) = &body.stores {
        let stores = store_list(stores)?;
        if header.is_some() {
            return Err(ApiError::BadRequest(
                "Stores parameter and x-image-meta-store header can't be both specified".into(),
            ));
        }
        stores
    } else {
        vec![header.unwrap_or_else(|| import.stores.default_id().to_owned())]
    };
    for id in &stores {
        if import.stores.get(id).is_none() {
            return Err(ApiError::Conflict(format!(
                "Unknown scheme '{id}' found in URI"
            )));
        }
    }
    Ok(stores)
}

pub async fn import(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let config = state.config();
    let import = &state.import;
    let mut body = parse_body(&body, &config.import.methods)?;
    let id = image_id(&path)?;
    let image = state.gateway.get(&ctx, id).await?;
    let method = body.method.name();
    let copy = body.method == ImportMethod::CopyImage;

    if image.status == ImageStatus::Active && !copy {
        return Err(ApiError::Conflict(
            "Image with status active cannot be target for import".into(),
        ));
    }
    if image.status != ImageStatus::Active && copy {
        return Err(ApiError::Conflict(
            "Only images with status active can be targeted for copying".into(),
        ));
    }
    if image.status != ImageStatus::Queued
        && matches!(
            body.method,
            ImportMethod::WebDownload { .. } | ImportMethod::GlanceDownload { .. }
        )
    {
        return Err(ApiError::Conflict(format!(
            "Image needs to be in 'queued' state to use '{method}' method"
        )));
    }
    if image.status != ImageStatus::Uploading && body.method == ImportMethod::GlanceDirect {
        return Err(ApiError::Conflict(
            "Image needs to be staged before 'glance-direct' method can be used".into(),
        ));
    }
    if image.container_format.is_none() {
        return Err(ApiError::Conflict(
            "'container_format' needs to be set before import".into(),
        ));
    }
    if image.disk_format.is_none() {
        return Err(ApiError::Conflict(
            "'disk_format' needs to be set before import".into(),
        ));
    }
    let remote = match body.method {
        ImportMethod::GlanceDownload { .. } => {
            Some(glance_download(&req, &mut body, &image, &config)?)
        }
        _ => None,
    };
    let rule = if copy { "copy_image" } else { "modify_image" };
    authorize_modify(&config.access.policy, &ctx, &image, rule)?;
    if let Some(other) = image.properties.get(IMPORT_TASK) {
        enforce_import_lock(&state, &image, other).await?;
    }

    let mut stores = Vec::new();
    if import.stores.is_multi() {
        stores = requested_stores(&req, &body, import)?;
        let existing = image_stores(&image);
        if copy && body.all_stores {
            stores.retain(|s| !existing.contains(s));
            if stores.is_empty() {
                tracing::info!(image_id = %id, "image already in every store; nothing to copy");
                return Ok(HttpResponse::Accepted().finish());
            }
        } else if copy {
            if let Some(s) = stores.iter().find(|s| existing.contains(s)) {
                return Err(ApiError::BadRequest(format!(
                    "Image is already present at store '{s}'"
                )));
            }
        }
    }
    if !body.all_stores_must_succeed && !import.stores.is_multi() {
        return Err(ApiError::BadRequest(
            "All_stores_must_succeed can only be set with enabled_backends".into(),
        ));
    }
    if let ImportMethod::WebDownload { uri } = &body.method {
        if !config.import.filter.allows_str(uri) {
            return Err(ApiError::BadRequest(format!(
                "URI for web-download does not pass filtering: {uri}"
            )));
        }
    }

    let now = Utc::now();
    let task = Task {
        id: uuid::Uuid::new_v4().to_string(),
        kind: Task::IMPORT_TYPE.into(),
        status: TaskStatus::Pending,
        input: json!({
            "image_id": id.to_string(),
            "import_req": body.raw,
            "backend": if import.stores.is_multi() { json!(stores) } else { json!([null]) },
        }),
        result: None,
        message: String::new(),
        owner: ctx.project_id.clone(),
        expires_at: None,
        created_at: now,
        updated_at: now,
        image_id: Some(id.to_string()),
        request_id: Some(ctx.request_id.clone()),
        user_id: ctx.user_id.clone(),
    };
    let task = import.tasks.create(&ctx, task).await?;
    let notifier = state.gateway.notifier();
    notifier.task(&ctx, "task.create", &task).await;

    // Take the import lock with the status change (Glance's `set_property_atomic` and the
    // flow's first save): the compare-and-set on status makes a second import lose. A copy
    // keeps the image active, so its lock is taken only if nobody saved the image since it
    // was read here: of two concurrent copies, one wins.
    let mut locked = image.clone();
    locked
        .properties
        .insert(IMPORT_TASK.into(), task.id.clone());
    merge_store_list(&mut locked, IMPORTING, &stores, false);
    merge_store_list(&mut locked, FAILED, &stores, true);
    if !copy {
        locked.status = ImageStatus::Importing;
    }
    let admin = RequestContext::admin(ctx.request_id.clone());
    let ttl = config.import.task_ttl_hours;
    let taken = if copy {
        state
            .gateway
            .save_if_unchanged(&admin, locked, Some(image.status))
            .await
    } else {
        state.gateway.save(&admin, locked, Some(image.status)).await
    };
    if let Err(e) = taken {
        if e.is_transient() {
            // The registry may have saved the lock and lost only its reply (the broker went
            // away mid-call): once it answers again, put the image back if the lock is this
            // task's, so the image is not left `importing` with nobody running the import.
            let undone =
                glance_import::persist("undoing an import lock whose save went unanswered", || {
                    unlock(&state, &admin, &image, &task.id, &stores)
                })
                .await;
            if let Err(e) = undone {
                tracing::error!(image_id = %id, task_id = %task.id, error = %e,
                    "an import lock may be held by a task nobody runs; a new import breaks it once stale");
            }
        }
        let why = "New operation on image is not permitted as prior operation is still in progress";
        let failed = Task {
            status: TaskStatus::Failure,
            message: why.into(),
            ..task
        };
        let recorded = glance_import::persist("recording the import's failure", || {
            import.tasks.save(&admin, failed.clone(), None, ttl)
        })
        .await;
        if let Ok(failed) = recorded {
            notifier.task(&ctx, "task.failure", &failed).await;
        }
        return Err(match e {
            ApiError::Conflict(_) => ApiError::Conflict(format!(
                "New operation on image '{id}' is not permitted as prior operation is still in progress"
            )),
            other => other,
        });
    }

    let work = ImportImage {
        task_id: task.id.clone(),
        image_id: id,
        method: body.method.clone(),
        stores: stores.clone(),
        all_stores_must_succeed: body.all_stores_must_succeed,
        ctx: ctx.clone(),
        remote,
    };
    if let Err(e) = import
        .bus
        .publish_work(IMPORT_KEY, Some(ctx.request_id.clone()), &work)
        .await
    {
        // Nobody will run it: give the image back and record why.
        tracing::error!(error = %e, image_id = %id, "could not publish import work");
        let undone = glance_import::persist("undoing the import lock of work never queued", || {
            unlock(&state, &admin, &image, &task.id, &stores)
        })
        .await;
        if let Err(e) = undone {
            tracing::error!(image_id = %id, task_id = %task.id, error = %e,
                "an import lock may be held by a task nobody runs; a new import breaks it once stale");
        }
        let failed = Task {
            status: TaskStatus::Failure,
            message: format!("No import worker took the import: {e}"),
            ..task
        };
        let recorded = glance_import::persist("recording the import's failure", || {
            import.tasks.save(&admin, failed.clone(), None, ttl)
        })
        .await;
        if let Ok(failed) = recorded {
            notifier.task(&ctx, "task.failure", &failed).await;
        }
        return Err(ApiError::ServiceUnavailable(match e {
            BusError::NoRoute(_) => "No import worker is running; try again later".into(),
            other => format!("The import could not be queued: {other}"),
        }));
    }
    tracing::info!(image_id = %id, task_id = %task.id, method, "import accepted");
    Ok(HttpResponse::Accepted().finish())
}

/// Glance's checks of a glance-download request (its region and image id given, the id a
/// UUID, the interface `public` unless given), and what the worker needs to run it: the
/// region's image endpoint from the caller's catalog (the Keystone token's, or the
/// `X-Service-Catalog` of a proxy in front under trusted headers) and the caller's token.
/// A region missing from the catalog fails the task, not the request, as in Glance.
fn glance_download(
    req: &HttpRequest,
    body: &mut ImportRequest,
    image: &Image,
    config: &crate::ApiConfig,
) -> ApiResult<RemoteGlance> {
    let method = body
        .raw
        .get_mut("method")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::BadRequest("Import method name is required".into()))?;
    for key in ["glance_region", "glance_image_id"] {
        if !method.contains_key(key) {
            return Err(ApiError::BadRequest(format!(
                "'{key}' needs to be set for glance-download import method"
            )));
        }
    }
    let id = &method["glance_image_id"];
    let is_uuid = id
        .as_str()
        .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok());
    if !is_uuid {
        let shown = id
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| id.to_string());
        return Err(ApiError::BadRequest(format!(
            "Remote image id does not look like a UUID: {shown}"
        )));
    }
    method
        .entry("glance_service_interface")
        .or_insert_with(|| json!("public"));
    let text = |key: &str| method[key].as_str().map(str::to_owned).unwrap_or_default();
    let (region, interface) = (text("glance_region"), text("glance_service_interface"));
    body.method = ImportMethod::GlanceDownload {
        glance_image_id: text("glance_image_id"),
        glance_region: region.clone(),
        glance_service_interface: interface.clone(),
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    // The header only where whoever sets it is trusted (a keystonemiddleware in front, or
    // no authentication at all); with a token file a caller could name any endpoint.
    let proxied = matches!(
        config.auth_strategy,
        AuthStrategy::TrustedHeaders | AuthStrategy::NoAuth
    );
    let catalog = match req.extensions().get::<KeystoneToken>() {
        Some(token) => token.0.catalog.clone(),
        None if proxied => header("x-service-catalog").and_then(|c| serde_json::from_str(c).ok()),
        None => None,
    };
    Ok(RemoteGlance {
        endpoint: catalog
            .as_ref()
            .and_then(|c| download::endpoint_in_catalog(c, &region, &interface)),
        token: header("x-auth-token").map(SecretToken::new),
        before: ImageBefore {
            disk_format: image.disk_format,
            container_format: image.container_format,
            properties: image.properties.clone(),
        },
    })
}

/// Puts the image back as it was before the lock was taken, if the lock is `task_id`'s.
/// An image gone, or locked by another task, is nothing to undo; other errors are returned
/// (a transient one is worth another try).
async fn unlock(
    state: &AppState,
    ctx: &RequestContext,
    before: &Image,
    task_id: &str,
    stores: &[String],
) -> ApiResult<()> {
    let mut image = match state.gateway.get(ctx, before.id).await {
        Ok(image) => image,
        Err(ApiError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if image.properties.get(IMPORT_TASK).map(String::as_str) != Some(task_id) {
        return Ok(());
    }
    let from = image.status;
    image.properties.remove(IMPORT_TASK);
    merge_store_list(&mut image, IMPORTING, stores, true);
    image.status = before.status;
    match state.gateway.save(ctx, image, Some(from)).await {
        Ok(_) | Err(ApiError::NotFound(_)) => Ok(()),
        // Saved by someone else since it was read: read it again.
        Err(ApiError::Conflict(m)) => Err(ApiError::ServiceUnavailable(m)),
        Err(e) => Err(e),
    }
}

/// Glance's `_enforce_import_lock`: a lock whose task is gone, or finished, or idle for an
/// hour (two when still pending), may be broken; a live one refuses the import.
async fn enforce_import_lock(state: &AppState, image: &Image, other: &str) -> ApiResult<()> {
    let admin = RequestContext::admin(glance_telemetry::new_request_id());
    let task = match state.import.tasks.get(&admin, other).await {
        Ok(task) => Some(task),
        Err(e) if e.missing().is_some() => None,
        Err(e) => return Err(e.into()),
    };
    let Some(task) = task else {
        tracing::warn!(image_id = %image.id, task_id = other, "import lock of a task that no longer exists; breaking it");
        return Ok(());
    };
    let mut expiry = chrono::Duration::minutes(60);
    if task.status == TaskStatus::Pending {
        expiry = expiry * 2;
    }
    if task.status.is_final() || Utc::now() - task.updated_at >= expiry {
        tracing::warn!(image_id = %image.id, task_id = other, status = %task.status, "breaking a stale import lock");
        return Ok(());
    }
    Err(ApiError::Conflict("Image has active task".into()))
}
