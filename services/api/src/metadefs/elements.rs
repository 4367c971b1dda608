//! A namespace's objects, properties and tags (`.../objects`, `.../properties`,
//! `.../tags`): the same calls on three kinds, each with its policy rules, schema and
//! rendering.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use glance_domain::metadef::{check_object, check_property, check_tag};
use glance_proto::metadefs::{Element, ElementKind};
use serde_json::{json, Map, Value};

use super::namespaces::protected;
use super::{body_json, mismatch, readable, refuse_read_only, render};
use crate::error::{ApiError, ApiResult};
use crate::identity::Caller;
use crate::AppState;

/// What differs between objects, properties and tags.
struct Kind {
    kind: ElementKind,
    get: &'static str,
    list: &'static str,
    add: &'static str,
    modify: &'static str,
    delete: &'static str,
    schema: &'static str,
    check: fn(&Value) -> Result<(), glance_domain::metadef::SchemaError>,
}

const OBJECT: Kind = Kind {
    kind: ElementKind::Object,
    get: "get_metadef_object",
    list: "get_metadef_objects",
    add: "add_metadef_object",
    modify: "modify_metadef_object",
    delete: "delete_metadef_object",
    schema: "object",
    check: check_object,
};

const PROPERTY: Kind = Kind {
    kind: ElementKind::Property,
    get: "get_metadef_property",
    list: "get_metadef_properties",
    add: "add_metadef_property",
    modify: "modify_metadef_property",
    delete: "remove_metadef_property",
    schema: "property",
    check: check_property,
};

const TAG: Kind = Kind {
    kind: ElementKind::Tag,
    get: "get_metadef_tag",
    list: "get_metadef_tags",
    add: "add_metadef_tag",
    modify: "modify_metadef_tag",
    delete: "delete_metadef_tag",
    schema: "tag",
    check: check_tag,
};

/// One element; `echo` for a create's or update's answer (an object without defaults).
fn render_one(kind: &Kind, namespace: &str, e: &Element, echo: bool) -> Value {
    match kind.kind {
        ElementKind::Object => render::object_as(namespace, e, !echo),
        ElementKind::Property => render::property(e),
        ElementKind::Tag => render::tag(e),
    }
}

/// A definition from a request body, checked against the kind's schema.
fn parse(kind: &Kind, body: &[u8]) -> ApiResult<Element> {
    let doc = body_json(body)?;
    refuse_read_only(&doc)?;
    (kind.check)(&doc).map_err(|e| mismatch(kind.schema, e))?;
    let mut element = Element::from_document(&doc, Utc::now());
    if kind.kind == ElementKind::Tag {
        element.body = json!({});
    }
    Ok(element)
}

type NsPath = web::Path<String>;
type ElPath = web::Path<(String, String)>;

async fn list(state: &AppState, ctx: Caller, ns: String, kind: &Kind) -> ApiResult<HttpResponse> {
    let Caller(ctx) = ctx;
    readable(state, &ctx, &ns, &[kind.list]).await?;
    let elements = state.metadefs.elements(&ctx, &ns, kind.kind).await?;
    let doc = match kind.kind {
        ElementKind::Object => json!({
            "objects": elements.iter().map(|e| render::object(&ns, e)).collect::<Vec<_>>(),
            // Glance's own spelling, without the leading slash.
            "schema": "v2/schemas/metadefs/objects",
        }),
        ElementKind::Property => {
            let props: Map<String, Value> = elements
                .iter()
                .map(|e| (e.name.clone(), render::property_body(&e.body)))
                .collect();
            json!({ "properties": props })
        }
        // Newest first, as Glance sorts tags.
        ElementKind::Tag => json!({
            "tags": elements.iter().rev().map(|t| json!({"name": t.name})).collect::<Vec<_>>(),
        }),
    };
    Ok(HttpResponse::Ok().json(doc))
}

async fn show(
    state: &AppState,
    ctx: Caller,
    path: (String, String),
    kind: &Kind,
) -> ApiResult<HttpResponse> {
    let Caller(ctx) = ctx;
    let (ns, name) = path;
    readable(state, &ctx, &ns, &[kind.get]).await?;
    let element = state.metadefs.element(&ctx, &ns, kind.kind, &name).await?;
    Ok(HttpResponse::Ok().json(render_one(kind, &ns, &element, false)))
}

async fn create(
    state: &AppState,
    ctx: Caller,
    ns: String,
    body: &[u8],
    kind: &Kind,
) -> ApiResult<HttpResponse> {
    let Caller(ctx) = ctx;
    let element = parse(kind, body)?;
    readable(state, &ctx, &ns, &[kind.add]).await?;
    let created = state
        .metadefs
        .add(&ctx, &ns, kind.kind, vec![element], false)
        .await?;
    let created = created
        .first()
        .ok_or_else(|| ApiError::Internal("the registry created nothing".into()))?;
    Ok(HttpResponse::Created().json(render_one(kind, &ns, created, true)))
}

async fn update(
    state: &AppState,
    ctx: Caller,
    path: (String, String),
    body: &[u8],
    kind: &Kind,
) -> ApiResult<HttpResponse> {
    let Caller(ctx) = ctx;
    let (ns, name) = path;
    let element = parse(kind, body)?;
    readable(state, &ctx, &ns, &[kind.modify]).await?;
    let saved = state
        .metadefs
        .replace(&ctx, &ns, kind.kind, &name, element)
        .await?;
    Ok(HttpResponse::Ok().json(render_one(kind, &ns, &saved, true)))
}

async fn delete_one(
    state: &AppState,
    ctx: Caller,
    path: (String, String),
    kind: &Kind,
) -> ApiResult<HttpResponse> {
    let Caller(ctx) = ctx;
    let (ns, name) = path;
    let contents = readable(state, &ctx, &ns, &[kind.delete]).await?;
    if !contents
        .elements(kind.kind)
        .iter()
        .any(|e| same_name(kind, &e.name, &name))
    {
        // Not there: the registry says so in Glance's words.
        state.metadefs.element(&ctx, &ns, kind.kind, &name).await?;
    }
    if contents.namespace.protected {
        return Err(protected(kind.kind.as_str(), &name));
    }
    state
        .metadefs
        .remove(&ctx, &ns, kind.kind, Some(&name))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn same_name(kind: &Kind, a: &str, b: &str) -> bool {
    if kind.kind == ElementKind::Tag {
        a.to_lowercase() == b.to_lowercase()
    } else {
        a == b
    }
}

/// Deletes every element of a kind (Glance checks `delete_metadef_namespace` for these,
/// and `delete_metadef_tags` too for tags).
async fn delete_all(
    state: &AppState,
    ctx: Caller,
    ns: String,
    kind: &Kind,
) -> ApiResult<HttpResponse> {
    let Caller(ctx) = ctx;
    let rules: &[&str] = if kind.kind == ElementKind::Tag {
        &["delete_metadef_namespace", "delete_metadef_tags"]
    } else {
        &["delete_metadef_namespace"]
    };
    let contents = readable(state, &ctx, &ns, rules).await?;
    if contents.namespace.protected {
        return Err(protected("namespace", &ns));
    }
    state.metadefs.remove(&ctx, &ns, kind.kind, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_objects(s: web::Data<AppState>, c: Caller, p: NsPath) -> ApiResult<HttpResponse> {
    list(&s, c, p.into_inner(), &OBJECT).await
}
pub async fn list_properties(
    s: web::Data<AppState>,
    c: Caller,
    p: NsPath,
) -> ApiResult<HttpResponse> {
    list(&s, c, p.into_inner(), &PROPERTY).await
}
pub async fn list_tags(s: web::Data<AppState>, c: Caller, p: NsPath) -> ApiResult<HttpResponse> {
    list(&s, c, p.into_inner(), &TAG).await
}
pub async fn show_object(s: web::Data<AppState>, c: Caller, p: ElPath) -> ApiResult<HttpResponse> {
    show(&s, c, p.into_inner(), &OBJECT).await
}
pub async fn show_property(
    s: web::Data<AppState>,
    c: Caller,
    p: ElPath,
) -> ApiResult<HttpResponse> {
    show(&s, c, p.into_inner(), &PROPERTY).await
}
pub async fn show_tag(s: web::Data<AppState>, c: Caller, p: ElPath) -> ApiResult<HttpResponse> {
    show(&s, c, p.into_inner(), &TAG).await
}
pub async fn create_object(
    s: web::Data<AppState>,
    c: Caller,
    p: NsPath,
    b: web::Bytes,
) -> ApiResult<HttpResponse> {
    create(&s, c, p.into_inner(), &b, &OBJECT).await
}
pub async fn create_property(
    s: web::Data<AppState>,
    c: Caller,
    p: NsPath,
    b: web::Bytes,
) -> ApiResult<HttpResponse> {
    create(&s, c, p.into_inner(), &b, &PROPERTY).await
}
pub async fn update_object(
    s: web::Data<AppState>,
    c: Caller,
    p: ElPath,
    b: web::Bytes,
) -> ApiResult<HttpResponse> {
    update(&s, c, p.into_inner(), &b, &OBJECT).await
}
pub async fn update_property(
    s: web::Data<AppState>,
    c: Caller,
    p: ElPath,
    b: web::Bytes,
) -> ApiResult<HttpResponse> {
    update(&s, c, p.into_inner(), &b, &PROPERTY).await
}
pub async fn update_tag(
    s: web::Data<AppState>,
    c: Caller,
    p: ElPath,
    b: web::Bytes,
) -> ApiResult<HttpResponse> {
    update(&s, c, p.into_inner(), &b, &TAG).await
}
pub async fn delete_object(
    s: web::Data<AppState>,
    c: Caller,
    p: ElPath,
) -> ApiResult<HttpResponse> {
    delete_one(&s, c, p.into_inner(), &OBJECT).await
}
pub async fn delete_property(
    s: web::Data<AppState>,
    c: Caller,
    p: ElPath,
) -> ApiResult<HttpResponse> {
    delete_one(&s, c, p.into_inner(), &PROPERTY).await
}
pub async fn delete_tag(s: web::Data<AppState>, c: Caller, p: ElPath) -> ApiResult<HttpResponse> {
    delete_one(&s, c, p.into_inner(), &TAG).await
}
pub async fn delete_objects(
    s: web::Data<AppState>,
    c: Caller,
    p: NsPath,
) -> ApiResult<HttpResponse> {
    delete_all(&s, c, p.into_inner(), &OBJECT).await
}
pub async fn delete_properties(
    s: web::Data<AppState>,
    c: Caller,
    p: NsPath,
) -> ApiResult<HttpResponse> {
    delete_all(&s, c, p.into_inner(), &PROPERTY).await
}
pub async fn delete_tags(s: web::Data<AppState>, c: Caller, p: NsPath) -> ApiResult<HttpResponse> {
    delete_all(&s, c, p.into_inner(), &TAG).await
}

/// `POST .../tags/{name}`: one tag, named by the path.
pub async fn create_tag(s: web::Data<AppState>, c: Caller, p: ElPath) -> ApiResult<HttpResponse> {
    let Caller(ctx) = c;
    let (ns, name) = p.into_inner();
    let doc = json!({ "name": name });
    check_tag(&doc).map_err(|e| mismatch("tag", e))?;
    readable(&s, &ctx, &ns, &[TAG.add]).await?;
    let mut tag = Element::from_document(&doc, Utc::now());
    tag.body = json!({});
    let created = s
        .metadefs
        .add(&ctx, &ns, ElementKind::Tag, vec![tag], false)
        .await?;
    let created = created
        .first()
        .ok_or_else(|| ApiError::Internal("the registry created nothing".into()))?;
    Ok(HttpResponse::Created().json(render::tag(created)))
}

/// `POST .../tags` with `{"tags": [{"name": ...}, ...]}`: replaces the namespace's tags,
/// or adds to them with `X-Openstack-Append: true`; all or nothing either way.
pub async fn create_tags(
    req: HttpRequest,
    s: web::Data<AppState>,
    c: Caller,
    p: NsPath,
    b: web::Bytes,
) -> ApiResult<HttpResponse> {
    let Caller(ctx) = c;
    let ns = p.into_inner();
    let doc = body_json(&b)?;
    let Some(items) = doc.get("tags").and_then(Value::as_array) else {
        return Err(ApiError::BadRequest(
            "Provided object does not match schema 'tags': 'tags' is a required property".into(),
        ));
    };
    let now = Utc::now();
    let mut tags = Vec::with_capacity(items.len());
    for item in items {
        check_tag(item).map_err(|e| mismatch("tag", e))?;
        let mut tag = Element::from_document(item, now);
        tag.body = json!({});
        tags.push(tag);
    }
    readable(&s, &ctx, &ns, &["add_metadef_tags"]).await?;
    let append = req
        .headers()
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .is_some_and(bool_from_string);
    let created = s
        .metadefs
        .add(&ctx, &ns, ElementKind::Tag, tags, !append)
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "tags": created.iter().map(|t| json!({"name": t.name})).collect::<Vec<_>>(),
    })))
}

/// oslo's `strutils.bool_from_string` (non-strict): these spellings are true, anything
/// else false.
fn bool_from_string(s: &str) -> bool {
    matches!(
        s.trim().to_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}
