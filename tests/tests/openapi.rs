//! The OpenAPI document (`services/api/openapi.json`) against the routes the API registers
//! (`glance_api::route_table`, the same table the server is built from): every documented
//! operation reaches a handler of its method, every served route and method is documented,
//! and every documented operation answers one of the statuses the document lists for it.

use actix_web::dev::ResourceDef;
use glance_api::routing::Route;
use glance_tests::{spawn_app, spawn_app_with};
use serde_json::Value;

const METHODS: [&str; 6] = ["get", "head", "post", "put", "patch", "delete"];

fn document() -> Value {
    serde_json::from_str(glance_api::openapi::DOCUMENT).expect("the document is JSON")
}

/// Every `(path, method, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: unexpected key {method}"
            );
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops
}

/// A documented path with each `{parameter}` replaced by a value no literal segment has.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed parameter") + start;
        out.push_str("8a0bb0fd-0000-4000-8000-000000000000");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The route the router would pick for `path`: the first registered whose pattern matches.
fn routed<'a>(table: &'a [Route], path: &str) -> Option<&'a Route> {
    table
        .iter()
        .find(|r| ResourceDef::new(r.path.as_str()).is_match(path))
}

fn serves(route: &Route, method: &str) -> bool {
    route.any
        || route
            .methods
            .iter()
            .any(|m| m.as_str().eq_ignore_ascii_case(method))
}

#[test]
fn every_documented_operation_reaches_a_handler_of_its_method() {
    let table = glance_api::route_table();
    let doc = document();
    let mut missing = Vec::new();
    for (path, method, _) in operations(&doc) {
        match routed(&table, &concrete(&path)) {
            Some(route) if serves(route, &method) => {}
            Some(route) => missing.push(format!(
                "{method} {path}: {} has only {:?}",
                route.path, route.methods
            )),
            None => missing.push(format!("{method} {path}: no route")),
        }
    }
    assert!(
        missing.is_empty(),
        "documented but not served:\n{missing:#?}"
    );
}

#[test]
fn every_served_route_and_method_is_documented() {
    let table = glance_api::route_table();
    let doc = document();
    let ops = operations(&doc);
    // Which route each documented operation lands on, by its pattern.
    let documented: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|(path, method, _)| {
            routed(&table, &concrete(path)).map(|r| (r.path.as_str(), method.as_str()))
        })
        .collect();
    assert!(table.len() > 40, "the table lists every route: {table:#?}");
    let mut missing = Vec::new();
    for route in &table {
        let methods: Vec<String> = if route.any {
            vec!["get".into()]
        } else {
            route
                .methods
                .iter()
                .map(|m| m.as_str().to_ascii_lowercase())
                .collect()
        };
        for method in methods {
            if !documented.contains(&(route.path.as_str(), method.as_str())) {
                missing.push(format!("{method} {}", route.path));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "served but not documented:\n{missing:#?}"
    );
}

#[test]
fn every_parameter_in_a_documented_path_is_declared() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let declared: Vec<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let name = r.rsplit('/').next().unwrap();
                    doc["components"]["parameters"][name].clone()
                }
                None => p.clone(),
            })
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        for segment in path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    declared.iter().any(|d| d == name),
                    "{method} {path}: {name} is not declared"
                );
            }
        }
    }
}

/// Each documented operation, sent to the real service (as an admin, with ids nobody has),
/// answers one of the statuses the document gives it, never the router's 405 or a 5xx.
#[tokio::test]
async fn every_documented_operation_answers_a_documented_status() {
    let app = spawn_app().await;
    let doc = document();
    let mut wrong = Vec::new();
    for (path, method, op) in operations(&doc) {
        let url = app.url(&concrete(&path));
        let mut req = app
            .client
            .request(method.to_uppercase().parse().unwrap(), url);
        if let Some(content) = op["requestBody"]["content"].as_object() {
            let media = content.keys().next().unwrap();
            let body = if media.contains("json-patch") {
                "[]"
            } else {
                "{}"
            };
            req = req.header("content-type", media.as_str()).body(body);
        }
        let status = req.send().await.unwrap().status();
        let listed = op["responses"]
            .as_object()
            .unwrap()
            .contains_key(status.as_str());
        if !listed || status.is_server_error() {
            wrong.push(format!("{method} {path}: {status}"));
        }
    }
    assert!(wrong.is_empty(), "undocumented answers:\n{wrong:#?}");
}

#[tokio::test]
async fn the_document_is_served_without_identity_where_the_api_needs_one() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let images = app.client.get(app.url("/v2/images")).send().await.unwrap();
    assert_eq!(images.status(), 401, "the API itself needs an identity");
    for path in ["/v2/openapi.json", "/openapi.json"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        assert_eq!(
            res.text().await.unwrap(),
            glance_api::openapi::DOCUMENT,
            "{path}"
        );
    }
}
