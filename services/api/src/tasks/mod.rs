//! The Tasks API: `GET /v2/tasks`, `GET /v2/tasks/{id}` and `GET /v2/images/{id}/tasks`
//! (Glance's `api/v2/tasks.py` and `ImagesController.get_task_info`).

use actix_web::{web, HttpRequest, HttpResponse};
use glance_domain::RequestContext;
use glance_proto::tasks::{ListTasks, Task, TaskStatus};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::identity::Caller;
use crate::images::handlers::image_id;
use crate::images::query::{ascending_param, limit_param};
use crate::images::view::timestamp;
use crate::routing::{no_other_methods, not_allowed, Resource, Routes};
use crate::AppState;

mod legacy;

pub fn routes(r: &mut Routes) {
    r.add(
        Resource::new("/v2/tasks")
            .get(list)
            .post(legacy::create)
            .others(not_allowed("GET, POST")),
    )
    .add(
        Resource::new("/v2/tasks/{id}")
            .get(show)
            .delete(delete)
            .others(not_allowed("GET, DELETE")),
    )
    .add(
        Resource::new("/v2/images/{id}/tasks")
            .get(image_tasks)
            .others(no_other_methods()),
    );
}

/// Glance's default `tasks_api_access` is `role:admin`: the Tasks API is for operators;
/// users see their image's tasks under `/v2/images/{id}/tasks`.
pub(crate) fn require_admin(ctx: &RequestContext) -> ApiResult<()> {
    if ctx.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "You are not authorized to complete tasks_api_access action.".into(),
        ))
    }
}

/// A task as Glance renders it; the list leaves out `input`, `result` and `message`.
pub fn render(task: &Task, full: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(task.id));
    m.insert("type".into(), json!(task.kind));
    m.insert("status".into(), json!(task.status.as_str()));
    m.insert("owner".into(), json!(task.owner));
    if let Some(expires) = &task.expires_at {
        m.insert("expires_at".into(), json!(timestamp(expires)));
    }
    m.insert("created_at".into(), json!(timestamp(&task.created_at)));
    m.insert("updated_at".into(), json!(timestamp(&task.updated_at)));
    if full {
        m.insert("input".into(), task.input.clone());
        m.insert("result".into(), task.result.clone().unwrap_or(Value::Null));
        m.insert("message".into(), json!(task.message));
        m.insert("image_id".into(), json!(task.image_id));
        m.insert("request_id".into(), json!(task.request_id));
        m.insert("user_id".into(), json!(task.user_id));
    }
    m.insert("self".into(), json!(format!("/v2/tasks/{}", task.id)));
    m.insert("schema".into(), json!("/v2/schemas/task"));
    Value::Object(m)
}

/// A task as `GET /v2/images/{id}/tasks` shows it: Glance returns its database rows there,
/// not the tasks API's view (so `deleted` and `deleted_at`, no `self` or `schema`, and
/// timestamps as oslo prints them).
fn render_row(task: &Task) -> Value {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    json!({
        "id": task.id,
        "type": task.kind,
        "status": task.status.as_str(),
        "owner": task.owner,
        "expires_at": task.expires_at.as_ref().map(time),
        "created_at": time(&task.created_at),
        "updated_at": time(&task.updated_at),
        "deleted_at": Value::Null,
        "deleted": false,
        "image_id": task.image_id,
        "request_id": task.request_id,
        "user_id": task.user_id,
        "input": task.input,
        "result": task.result,
        "message": task.message,
    })
}

/// Tasks go when they expire; Glance refuses to delete one (after the access check).
async fn delete(Caller(ctx): Caller) -> ApiResult<HttpResponse> {
    require_admin(&ctx)?;
    Err(ApiError::MethodNotAllowed("GET"))
}

async fn show(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    require_admin(&ctx)?;
    let task = state.import.tasks.get(&ctx, &path).await?;
    Ok(HttpResponse::Ok().json(render(&task, true)))
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<HttpResponse> {
    require_admin(&ctx)?;
    let config = state.config();
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut list = ListTasks {
        ctx: ctx.clone(),
        limit: config.limit_param_default,
        ..Default::default()
    };
    for (key, value) in query.iter() {
        match key.as_str() {
            "limit" => list.limit = limit_param(value, config.api_limit_max)?,
            "marker" => list.marker = Some(value.clone()),
            "status" => {
                list.status =
                    Some(value.parse::<TaskStatus>().map_err(|_| {
                        ApiError::BadRequest(format!("Invalid status value: {value}"))
                    })?)
            }
            // The one type the Tasks API shows.
            "type" if value == "import" => list.kind = Some(value.clone()),
            "type" => return Err(ApiError::BadRequest(format!("Invalid type value: {value}"))),
            "sort_dir" => list.ascending = ascending_param(value)?,
            "sort_key" if glance_proto::tasks::TASK_SORT_KEYS.contains(&value.as_str()) => {
                list.sort_key = Some(value.clone())
            }
            "sort_key" => return Err(ApiError::BadRequest(format!("Invalid sort key: {value}"))),
            _ => {}
        }
    }
    // As for images, `first` repeats the caller's query less any marker.
    let first = {
        let params: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "marker")
            .cloned()
            .collect();
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            s.append_pair(k, v);
        }
        let q = s.finish();
        if q.is_empty() {
            "/v2/tasks".to_owned()
        } else {
            format!("/v2/tasks?{q}")
        }
    };
    if list.limit == 0 {
        return Ok(HttpResponse::Ok().json(json!({
            "tasks": [], "first": first, "schema": "/v2/schemas/tasks"
        })));
    }
    let limit = list.limit;
    let tasks = state.import.tasks.list(list).await?;
    let mut doc = json!({
        "tasks": tasks.iter().map(|t| render(t, false)).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/tasks",
    });
    if tasks.len() as u32 == limit {
        if let Some(last) = tasks.last() {
            doc["next"] = json!(format!("/v2/tasks?marker={}&limit={limit}", last.id));
        }
    }
    Ok(HttpResponse::Ok().json(doc))
}

/// The tasks of one image the caller may see (API 2.12).
async fn image_tasks(
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = image_id(&path)?;
    // 404 unless the caller may see the image.
    state.gateway.get(&ctx, id).await?;
    let tasks = state.import.tasks.for_image(&ctx, id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "tasks": tasks.iter().map(render_row).collect::<Vec<_>>(),
    })))
}
