//! `/v2/metadefs/namespaces` and `/v2/metadefs/namespaces/{namespace}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use glance_proto::metadefs::{Contents, ElementKind, ListNamespaces, Namespace};
use serde_json::{json, Value};

use super::{authorize, body_json, mismatch, readable, refuse_read_only, render};
use crate::error::{ApiError, ApiResult};
use crate::identity::Caller;
use crate::images::query::{ascending_param, limit_param};
use crate::AppState;

fn query(req: &HttpRequest) -> ApiResult<Vec<(String, String)>> {
    Ok(
        web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .into_inner(),
    )
}

fn encode(params: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    let config = state.config();
    authorize(
        &config.access.policy,
        &ctx,
        &["get_metadef_namespaces", "list_metadef_resource_types"],
    )?;
    let params = query(&req)?;
    let mut list = ListNamespaces {
        ctx: ctx.clone(),
        visibility: None,
        resource_types: Vec::new(),
        marker: None,
        limit: config.limit_param_default.min(config.api_limit_max),
        sort_key: "created_at".into(),
        ascending: false,
    };
    for (key, value) in &params {
        match key.as_str() {
            "limit" => list.limit = limit_param(value, config.api_limit_max)?,
            "marker" => list.marker = Some(value.clone()),
            "sort_dir" => list.ascending = ascending_param(value)?,
            "sort_key" => list.sort_key = value.clone(),
            "visibility" if value.is_empty() => {}
            "visibility" if value == "public" || value == "private" => {
                list.visibility = Some(value.clone())
            }
            "visibility" => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid visibility value: {value}"
                )))
            }
            "resource_types" => list.resource_types.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    let without_marker: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let first = match encode(&without_marker) {
        q if q.is_empty() => "/v2/metadefs/namespaces".to_owned(),
        q => format!("/v2/metadefs/namespaces?{q}"),
    };
    let limit = list.limit;
    let namespaces = if limit == 0 {
        Vec::new()
    } else {
        state.metadefs.list(list).await?
    };
    let mut doc = json!({
        "namespaces": namespaces
            .iter()
            .map(|n| render::listed(&n.namespace, &n.associations))
            .collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    if limit > 0 && namespaces.len() == limit as usize {
        if let Some(last) = namespaces.last() {
            let mut next = without_marker;
            next.push(("marker".into(), last.namespace.namespace.clone()));
            doc["next"] = json!(format!("/v2/metadefs/namespaces?{}", encode(&next)));
        }
    }
    Ok(HttpResponse::Ok().json(doc))
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let doc = body_json(&body)?;
    refuse_read_only(&doc)?;
    let now = Utc::now();
    let contents = Contents::from_document(&doc, ctx.project_id.clone(), now, Some(now))
        .map_err(|e| mismatch("namespace", e))?;
    let mut rules = vec!["add_metadef_namespace"];
    if !contents.associations.is_empty() {
        rules.push("add_metadef_resource_type_association");
    }
    for (kind, rule) in [
        (ElementKind::Object, "add_metadef_object"),
        (ElementKind::Property, "add_metadef_property"),
        (ElementKind::Tag, "add_metadef_tag"),
    ] {
        if !contents.elements(kind).is_empty() {
            rules.push(rule);
        }
    }
    authorize(&state.config().access.policy, &ctx, &rules)?;
    let created = state.metadefs.create(&ctx, contents).await?;
    let info = req.connection_info();
    let location = header_text(&format!(
        "{}://{}{}",
        info.scheme(),
        info.host(),
        render::namespace_href(&created.namespace.namespace)
    ));
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(render::created(&created)))
}

/// `text` as a header value can carry it: without the ASCII control characters (tab
/// aside) a header cannot hold. A namespace's name may contain them, and Glance's Location
/// then leaves them out; refusing the header would fail a create that already happened.
fn header_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_ascii_control() || *c == '\t')
        .collect()
}

pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let contents = readable(
        &state,
        &ctx,
        &name,
        &[
            "list_metadef_resource_types",
            "get_metadef_objects",
            "get_metadef_properties",
            "get_metadef_tags",
        ],
    )
    .await?;
    let resource_type = query(&req)?
        .into_iter()
        .find(|(k, _)| k == "resource_type")
        .map(|(_, v)| v);
    Ok(HttpResponse::Ok().json(render::contents(&contents, resource_type.as_deref())))
}

pub async fn update(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let doc = body_json(&body)?;
    refuse_read_only(&doc)?;
    let current = readable(&state, &ctx, &name, &["modify_metadef_namespace"]).await?;
    // Only the namespace's own members: its contents have their own calls.
    let own = match &doc {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "resource_type_associations" | "properties" | "objects" | "tags"
                    )
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    let parsed = Contents::from_document(&own, ctx.project_id.clone(), Utc::now(), None)
        .map_err(|e| mismatch("namespace", e))?;
    // A PUT replaces the record: what the body leaves out is unset (Glance's update).
    let update = Namespace {
        created_at: current.namespace.created_at,
        updated_at: Some(Utc::now()),
        ..parsed.namespace
    };
    let saved = state.metadefs.update(&ctx, &name, update).await?;
    Ok(HttpResponse::Ok().json(render::namespace(&saved)))
}

pub async fn delete(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let current = readable(&state, &ctx, &name, &["delete_metadef_namespace"]).await?;
    if current.namespace.protected {
        return Err(protected("namespace", &name));
    }
    state.metadefs.delete(&ctx, &name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Glance's 403 for deleting from a protected namespace.
pub(super) fn protected(what: &str, name: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "Metadata definition {what} {name} is protected and cannot be deleted."
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_location_leaves_out_what_a_header_cannot_hold() {
        let text = super::header_text("http://h/v2/metadefs/namespaces/a\u{7f}b\u{3}c\té");
        assert_eq!(text, "http://h/v2/metadefs/namespaces/abc\té");
        assert!(actix_web::http::header::HeaderValue::try_from(text).is_ok());
    }
}
