//! `/quotas` and `/project-quotas` as Glare 5.0.1 serves them, and their enforcement:
//! `max_artifact_number[:type]` when an artifact is created, `max_uploaded_data[:type]`
//! (bytes of blobs) when one is uploaded. The global values are `[glare]` options; `PUT
//! /quotas` (admins) sets a project's own, kept by the registry. -1 is no limit.
//!
//! Glare answers `/project-quotas` for a project without quotas of its own with a 500 (a
//! missing key); here it shows the global values, which is what it meant.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use glance_domain::RequestContext;
use glance_proto::glare::Quotas;
use serde_json::{json, Value};

use crate::error::{GlareError, GlareResult};
use crate::identity::Caller;
use crate::policy;
use crate::AppState;

const COUNT: &str = "max_artifact_number";
const DATA: &str = "max_uploaded_data";

fn globals(state: &AppState) -> BTreeMap<String, i64> {
    let g = state.config().glare.clone();
    BTreeMap::from([
        (COUNT.to_owned(), g.max_artifact_number),
        (DATA.to_owned(), g.max_uploaded_data),
    ])
}

fn serialize(quotas: &Quotas) -> Value {
    Value::Array(
        quotas
            .iter()
            .map(|(project, q)| {
                let list: Vec<Value> = q
                    .iter()
                    .map(|(name, value)| json!({"quota_name": name, "quota_value": value}))
                    .collect();
                json!({"project_id": project, "project_quotas": list})
            })
            .collect(),
    )
}

async fn list_all(state: web::Data<AppState>, caller: Caller) -> GlareResult<HttpResponse> {
    policy::admin_only(&caller.0, "artifact:list_all_quotas")?;
    let quotas = state.gateway.list_quotas(&caller.0, None).await?;
    Ok(HttpResponse::Ok().json(json!({
        "quotas": serialize(&quotas),
        "global_quotas": globals(&state),
    })))
}

fn bad(msg: impl Into<String>) -> GlareError {
    GlareError::BadRequest(msg.into())
}

/// `[{"project_id", "project_quotas": [{"quota_name", "quota_value"}]}]`, checked as
/// Glare's schema checks it.
fn parse_quotas(body: &Value) -> GlareResult<Quotas> {
    let items = body
        .as_array()
        .ok_or_else(|| bad("Quotas must be a list."))?;
    let mut out = Quotas::new();
    for item in items {
        let project = item["project_id"]
            .as_str()
            .filter(|p| !p.is_empty() && p.len() <= 255)
            .ok_or_else(|| bad("'project_id' is a required property"))?;
        let list = item["project_quotas"]
            .as_array()
            .ok_or_else(|| bad("'project_quotas' is a required property"))?;
        let mut quotas = BTreeMap::new();
        for q in list {
            let name = q["quota_name"]
                .as_str()
                .filter(|n| !n.is_empty() && n.len() <= 255 && n.matches(':').count() <= 1)
                .ok_or_else(|| bad("'quota_name' must be a name with at most one ':'"))?;
            let value = q["quota_value"]
                .as_i64()
                .filter(|v| *v >= -1)
                .ok_or_else(|| bad("'quota_value' must be an integer of at least -1"))?;
            quotas.insert(name.to_owned(), value);
        }
        out.insert(project.to_owned(), quotas);
    }
    Ok(out)
}

async fn set(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> GlareResult<HttpResponse> {
    // Glare's deserializer checks the body before its controller checks the policy.
    let ct = crate::artifacts::content_type(&req);
    if ct != "application/json" {
        return Err(GlareError::UnsupportedMediaType(format!(
            "Invalid content type: {ct}. Expected: application/json"
        )));
    }
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| bad("Malformed JSON in request body."))?;
    let quotas = parse_quotas(&body)?;
    policy::admin_only(&caller.0, "artifact:set_quotas")?;
    state.gateway.set_quotas(&caller.0, quotas).await?;
    crate::notify::quotas(&state, &caller.0, body).await;
    Ok(HttpResponse::Ok().json(Value::Null))
}

async fn project_quotas(
    state: &AppState,
    ctx: &RequestContext,
    project: &str,
) -> GlareResult<BTreeMap<String, i64>> {
    let mut merged = globals(state);
    let own = state.gateway.list_quotas(ctx, Some(project)).await?;
    if let Some(own) = own.get(project) {
        merged.extend(own.clone());
    }
    Ok(merged)
}

async fn show_project(
    state: web::Data<AppState>,
    caller: Caller,
    path: Option<web::Path<String>>,
) -> GlareResult<HttpResponse> {
    let project = match path {
        Some(p) => p.into_inner(),
        None => caller.project(),
    };
    policy::project_quotas(&caller.0, &project)?;
    let merged = project_quotas(&state, &caller.0, &project).await?;
    Ok(HttpResponse::Ok().json(serialize(&Quotas::from([(project, merged)]))))
}

/// The limit on `name` (the global one and the one for `type_name`) for the caller's project.
async fn limits(
    state: &AppState,
    ctx: &RequestContext,
    project: &str,
    name: &str,
    type_name: &str,
) -> GlareResult<(i64, i64)> {
    let q = project_quotas(state, ctx, project).await?;
    let global = q.get(name).copied().unwrap_or(-1);
    let per_type = q.get(&format!("{name}:{type_name}")).copied().unwrap_or(-1);
    Ok((global, per_type))
}

/// Before a create: does the project stay within its artifact counts?
pub async fn check_count(
    state: &AppState,
    ctx: &RequestContext,
    type_name: &str,
) -> GlareResult<()> {
    let Some(project) = ctx.project_id.clone() else {
        return Ok(());
    };
    let (global, per_type) = limits(state, ctx, &project, COUNT, type_name).await?;
    if global < 0 && per_type < 0 {
        return Ok(());
    }
    let own = state.gateway.owned(ctx, &project).await?;
    let whole = own.len() as i64;
    if global >= 0 && whole >= global {
        return Err(GlareError::forbidden(format!(
            "Can't create artifact because of global quota limit is {global} artifacts. \
             You have {whole} artifact(s)."
        )));
    }
    let of_type = own.iter().filter(|a| a.type_name == type_name).count() as i64;
    if per_type >= 0 && of_type >= per_type {
        return Err(GlareError::forbidden(format!(
            "Can't create artifact because of quota limit for artifact type '{type_name}' is \
             {per_type} artifacts. You have {of_type} artifact(s) of this type."
        )));
    }
    Ok(())
}

/// Before an upload of `declared` bytes (unknown when `None`): 413 if it would pass the
/// project's data quotas; else how many bytes it may write (`None`: no quota).
pub async fn check_data(
    state: &AppState,
    ctx: &RequestContext,
    owner: &str,
    type_name: &str,
    declared: Option<u64>,
) -> GlareResult<Option<u64>> {
    let (global, per_type) = limits(state, ctx, owner, DATA, type_name).await?;
    if global < 0 && per_type < 0 {
        return Ok(None);
    }
    let own = state.gateway.owned(ctx, owner).await?;
    let whole: i64 = own.iter().map(glance_domain::Artifact::blob_bytes).sum();
    let of_type: i64 = own
        .iter()
        .filter(|a| a.type_name == type_name)
        .map(glance_domain::Artifact::blob_bytes)
        .sum();
    let mut room: Option<i64> = None;
    for (limit, used, what) in [
        (global, whole, "global quota limit".to_owned()),
        (
            per_type,
            of_type,
            format!("quota limit for artifact type '{type_name}'"),
        ),
    ] {
        if limit < 0 {
            continue;
        }
        if let Some(n) = declared {
            if used + n as i64 > limit {
                return Err(GlareError::TooLarge(format!(
                    "Can't upload {n} byte(s) because of {what}: {limit}. You have {used} \
                     bytes uploaded."
                )));
            }
        }
        let left = (limit - used).max(0);
        room = Some(room.map_or(left, |r: i64| r.min(left)));
    }
    Ok(room.map(|r| r as u64))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/quotas")
            .route(web::get().to(list_all))
            .route(web::put().to(set))
            .default_service(crate::not_allowed("PUT, GET")),
    )
    .service(
        web::resource("/project-quotas")
            .route(web::get().to(|s, c| show_project(s, c, None)))
            .default_service(crate::not_allowed("GET")),
    )
    .service(
        web::resource("/project-quotas/{project}")
            .route(web::get().to(|s, c, p| show_project(s, c, Some(p))))
            .default_service(crate::not_allowed("GET")),
    );
}
