//! The legacy `POST /v2/tasks` (Glance's deprecated Tasks API): only `tasks_api_access`
//! (admins) may create a task, of type `import` with an `input` object, whose `import_from`
//! must pass the web-download filter (`[import_filtering_opts]`).
//!
//! Glance runs such a task with its old taskflow (fetch `import_from`, create an image, no
//! interoperable import). We record the task as Glance does and then fail it, telling the
//! caller what to use instead: interoperable import (`POST /v2/images/{id}/import` with
//! `web-download`) does the same with the checks that flow lacks (docs/parity.md).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use glance_proto::tasks::{Task, TaskStatus};
use serde_json::{Map, Value};

use super::{render, require_admin};
use crate::error::{ApiError, ApiResult};
use crate::identity::Caller;
use crate::AppState;

/// Task types the task schema knows; only `import` may be created through this API.
const SCHEMA_TYPES: &[&str] = &["import", "api_image_import", "location_import"];

pub const NOT_RUN: &str = "Legacy import tasks are not run by this service: create the image \
                           and import it with POST /v2/images/{id}/import (web-download).";

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Glance's `RequestDeserializer.create`: required members, then the task schema.
fn parse(body: &[u8]) -> ApiResult<(String, Map<String, Value>)> {
    if body.is_empty() {
        return Err(bad("Body expected in request."));
    }
    let doc = crate::error::parse_json(body)?;
    let Value::Object(doc) = doc else {
        return Err(bad("Request body must be a JSON object."));
    };
    for required in ["type", "input"] {
        if !doc.contains_key(required) {
            return Err(bad(format!("Task '{required}' is required")));
        }
    }
    let kind = match &doc["type"] {
        Value::String(t) if SCHEMA_TYPES.contains(&t.as_str()) => t.clone(),
        other => {
            return Err(bad(format!(
            "Provided object does not match schema 'task': {other} is not one of {SCHEMA_TYPES:?}"
        )))
        }
    };
    let Value::Object(input) = &doc["input"] else {
        return Err(bad(format!(
            "Provided object does not match schema 'task': {} is not of type 'object'",
            doc["input"]
        )));
    };
    Ok((kind, input.clone()))
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(ctx): Caller,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    require_admin(&ctx)?;
    let (kind, input) = parse(&body)?;
    let config = state.config();
    if kind == "import" {
        let from = input
            .get("import_from")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !config.import.filter.allows_str(from) {
            return Err(bad(format!(
                "URI for legacy import task does not pass filtering: {from}"
            )));
        }
    } else {
        return Err(bad(format!("Task type {kind} is not allowed here")));
    }
    let now = Utc::now();
    let task = Task {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        status: TaskStatus::Pending,
        input: Value::Object(input),
        result: None,
        message: String::new(),
        owner: ctx.project_id.clone(),
        expires_at: None,
        created_at: now,
        updated_at: now,
        image_id: None,
        request_id: Some(ctx.request_id.clone()),
        user_id: ctx.user_id.clone(),
    };
    let created = state.import.tasks.create(&ctx, task).await?;
    let mut failed = created.clone();
    failed.status = TaskStatus::Failure;
    failed.message = NOT_RUN.to_owned();
    failed.updated_at = Utc::now();
    let ttl = config.import.task_ttl_hours;
    if let Err(e) = state
        .import
        .tasks
        .save(&ctx, failed, Some(TaskStatus::Pending), ttl)
        .await
    {
        tracing::warn!(task_id = %created.id, error = %e, "could not finish a legacy task");
    }
    let info = req.connection_info();
    let location = format!(
        "{}://{}/v2/tasks/{}",
        info.scheme(),
        info.host(),
        created.id
    );
    let mut doc = render(&created, true);
    if let Value::Object(m) = &mut doc {
        m.remove("image_id");
    }
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(doc))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_task_needs_a_known_type_and_an_input_object() {
        assert!(parse(br#"{"type":"import","input":{}}"#).is_ok());
        for body in [
            &b""[..],
            b"{",
            b"[]",
            br#"{}"#,
            br#"{"type":"import"}"#,
            br#"{"input":{}}"#,
            br#"{"type":"bogus","input":{}}"#,
            br#"{"type":"import","input":"x"}"#,
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
