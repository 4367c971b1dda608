//! `/v2/metadefs/resource_types` and a namespace's associations with them
//! (`.../namespaces/{namespace}/resource_types`).

use actix_web::{web, HttpResponse};
use chrono::Utc;
use glance_domain::metadef::check_association;
use glance_proto::metadefs::Association;
use serde_json::json;

use super::namespaces::protected;
use super::{authorize, body_json, mismatch, readable, refuse_read_only, render};
use crate::error::ApiResult;
use crate::identity::Caller;
use crate::AppState;

pub async fn list(state: web::Data<AppState>, Caller(ctx): Caller) -> ApiResult<HttpResponse> {
    authorize(
        &state.config().access.policy,
        &ctx,
        &["list_metadef_resource_types"],
    )?;
    let types = state.metadefs.resource_types(&ctx).await?;
    Ok(HttpResponse::Ok().json(json!({
        "resource_types": types.iter().map(render::resource_type).collect::<Vec<_>>(),
    })))
}

pub async fn list_associations(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ns = path.into_inner();
    let contents = readable(&state, &ctx, &ns, &["get_metadef_resource_type"]).await?;
    Ok(HttpResponse::Ok().json(json!({
        "resource_type_associations":
            contents.associations.iter().map(render::association).collect::<Vec<_>>(),
    })))
}

/// Associates the namespace with a resource type, which is created if unknown.
pub async fn associate(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let ns = path.into_inner();
    let doc = body_json(&body)?;
    refuse_read_only(&doc)?;
    check_association(&doc).map_err(|e| mismatch("resource_type_association", e))?;
    readable(
        &state,
        &ctx,
        &ns,
        &["add_metadef_resource_type_association"],
    )
    .await?;
    let association = Association::from_document(&doc, Utc::now());
    let created = state.metadefs.associate(&ctx, &ns, association).await?;
    Ok(HttpResponse::Created().json(render::association(&created)))
}

pub async fn dissociate(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (ns, name) = path.into_inner();
    let contents = readable(
        &state,
        &ctx,
        &ns,
        &["remove_metadef_resource_type_association"],
    )
    .await?;
    if contents.namespace.protected {
        return Err(protected("resource-type-association", &name));
    }
    state.metadefs.dissociate(&ctx, &ns, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}
