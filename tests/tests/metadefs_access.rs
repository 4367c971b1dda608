//! The metadefs API per persona on public and private namespaces, and its schemas against
//! what it accepts, over HTTP against the all-in-one with trusted headers. On PostgreSQL with
//! `GLANCE_TEST_DATABASE=postgres`. Answers were compared with the reference Glance 33.

mod common;

use common::metadefs::*;
use reqwest::Method;
use serde_json::{json, Value};

/// One persona's expected answers (see below).
type Row = (
    Persona,
    [u16; 4],
    [u16; 4],
    &'static [&'static str],
    u16,
    u16,
);

/// Who may do what, for a public and a private namespace of project A: Glance 33's answers.
#[tokio::test]
async fn each_persona_gets_glances_answers_on_public_and_private_namespaces() {
    let app = trusted_app().await;
    for (name, vis) in [("PubA", "public"), ("PrivA", "private")] {
        expect(
            &app,
            Method::POST,
            NS,
            Some(
                json!({"namespace": name, "visibility": vis, "owner": "project-a",
                        "tags": [{"name": "t"}]}),
            ),
            201,
        )
        .await;
    }
    // (persona, [show, add object, list tags, delete tag] on PubA then PrivA, list sees,
    // create namespace, list resource types)
    #[rustfmt::skip]
    let table: &[Row] = &[
        (Persona::Admin,     [200, 201, 200, 204], [200, 201, 200, 204], &["PrivA", "PubA"], 201, 200),
        (Persona::MemberA,   [200, 403, 200, 403], [200, 403, 200, 403], &["PrivA", "PubA"], 403, 200),
        (Persona::ReaderA,   [200, 403, 200, 403], [200, 403, 200, 403], &["PrivA", "PubA"], 403, 200),
        (Persona::MemberB,   [200, 403, 200, 403], [404, 404, 404, 404], &["PubA"], 403, 200),
        (Persona::NoRole,    [404, 404, 404, 404], [404, 404, 404, 404], &[], 404, 404),
        (Persona::Anonymous, [401, 401, 401, 401], [401, 401, 401, 401], &[], 401, 401),
    ];
    assert_eq!(table.len(), PERSONAS.len());
    // The admin goes last: it deletes the tag the others try to delete.
    for (who, public, private, listed, create, types) in table.iter().rev() {
        for (ns, want) in [("PubA", public), ("PrivA", private)] {
            let got = [
                call(&app, *who, Method::GET, &format!("{NS}/{ns}"), None)
                    .await
                    .0,
                call(
                    &app,
                    *who,
                    Method::POST,
                    &format!("{NS}/{ns}/objects"),
                    Some(json!({"name": format!("{who:?}")})),
                )
                .await
                .0,
                call(&app, *who, Method::GET, &format!("{NS}/{ns}/tags"), None)
                    .await
                    .0,
                call(
                    &app,
                    *who,
                    Method::DELETE,
                    &format!("{NS}/{ns}/tags/t"),
                    None,
                )
                .await
                .0,
            ];
            assert_eq!(
                &got, want,
                "{who:?} on {ns}: show, add object, list tags, delete tag"
            );
        }
        let (status, doc) = call(
            &app,
            *who,
            Method::GET,
            &format!("{NS}?sort_key=namespace&sort_dir=asc"),
            None,
        )
        .await;
        if listed.is_empty() && *who != Persona::Admin {
            assert_ne!(status, 200, "{who:?} lists");
        } else {
            assert_eq!(status, 200, "{who:?} lists: {doc}");
            let names: Vec<&str> = doc["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["namespace"].as_str().unwrap())
                .collect();
            assert_eq!(names, *listed, "{who:?} lists");
        }
        let status = call(
            &app,
            *who,
            Method::POST,
            NS,
            Some(json!({"namespace": format!("New{who:?}")})),
        )
        .await
        .0;
        assert_eq!(status, *create, "{who:?} creates a namespace");
        let status = call(&app, *who, Method::GET, "/v2/metadefs/resource_types", None)
            .await
            .0;
        assert_eq!(status, *types, "{who:?} lists resource types");
    }
}

#[tokio::test]
async fn what_the_schemas_list_is_what_the_api_accepts() {
    let app = trusted_app().await;
    let schema = expect(
        &app,
        Method::GET,
        "/v2/schemas/metadefs/property",
        None,
        200,
    )
    .await;
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["name", "title", "type"]);
    let types: Vec<Value> = schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    expect(&app, Method::POST, NS, Some(json!({"namespace": "S"})), 201).await;
    // Every type the schema lists is accepted, and a property with every member too.
    for (i, t) in types.iter().enumerate() {
        expect(
            &app,
            Method::POST,
            &format!("{NS}/S/properties"),
            Some(json!({"name": format!("p{i}"), "title": "T", "type": t})),
            201,
        )
        .await;
    }
    let full = json!({
        "name": "full", "title": "F", "description": "d", "operators": ["<or>"],
        "type": "array", "required": ["x"], "minimum": 0, "maximum": 9, "maxLength": 4,
        "minLength": 0, "pattern": "^a", "enum": ["a"], "readonly": true, "default": ["a"],
        "items": {"type": "string", "enum": ["a"]}, "maxItems": 2, "minItems": 0,
        "uniqueItems": true, "additionalItems": false
    });
    let members: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    for key in full.as_object().unwrap().keys() {
        assert!(
            members.contains(&key),
            "{key} is not in the property schema"
        );
    }
    assert_eq!(
        members.len(),
        full.as_object().unwrap().len(),
        "a schema member is untested"
    );
    expect(
        &app,
        Method::POST,
        &format!("{NS}/S/properties"),
        Some(full),
        201,
    )
    .await;

    // The namespace schema: every member that is not read-only is accepted on create.
    let schema = expect(
        &app,
        Method::GET,
        "/v2/schemas/metadefs/namespace",
        None,
        200,
    )
    .await;
    let doc = json!({
        "namespace": "Full", "display_name": "F", "description": "d", "visibility": "public",
        "protected": false, "owner": "o", "resource_type_associations": [{"name": "R", "prefix": "p", "properties_target": "t"}],
        "properties": {"p": {"title": "P", "type": "string"}},
        "objects": [{"name": "o", "description": "d", "required": [], "properties": {}}],
        "tags": [{"name": "t"}]
    });
    for (key, member) in schema["properties"].as_object().unwrap() {
        if member.get("readOnly") == Some(&json!(true)) {
            assert!(doc.get(key).is_none());
        } else {
            assert!(
                doc.get(key).is_some(),
                "{key} is in the namespace schema but untested"
            );
        }
    }
    expect(&app, Method::POST, NS, Some(doc), 201).await;
}
