//! The metadefs API (`/v2/metadefs/...`) over HTTP against the all-in-one with trusted
//! headers, per persona, and `glance-manage db load_metadefs|export_metadefs|unload_metadefs`
//! against the same database. On PostgreSQL with `GLANCE_TEST_DATABASE=postgres` (the
//! test script runs this binary both ways).
//!
//! Status codes and shapes were compared with the reference Glance 33
//! (`../shared/reference-glance`) running the same requests.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use glance_tests::{spawn_app_with, TestApp};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Persona {
    Admin,
    MemberA,
    ReaderA,
    MemberB,
    /// Project A without the reader role.
    NoRole,
    Anonymous,
}

const PERSONAS: [Persona; 6] = [
    Persona::Admin,
    Persona::MemberA,
    Persona::ReaderA,
    Persona::MemberB,
    Persona::NoRole,
    Persona::Anonymous,
];

fn headers(persona: Persona) -> HeaderMap {
    let mut h = HeaderMap::new();
    let (project, roles) = match persona {
        Persona::Admin => ("admin-project", "admin,member,reader"),
        Persona::MemberA => ("project-a", "member,reader"),
        Persona::ReaderA => ("project-a", "reader"),
        Persona::MemberB => ("project-b", "member,reader"),
        Persona::NoRole => ("project-a", "foo"),
        Persona::Anonymous => return h,
    };
    h.insert("x-identity-status", "Confirmed".parse().unwrap());
    h.insert("x-project-id", project.parse().unwrap());
    h.insert("x-user-id", format!("{persona:?}").parse().unwrap());
    h.insert("x-roles", roles.parse().unwrap());
    h
}

async fn trusted_app() -> TestApp {
    spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await
}

/// One call as `who`: the status and the body (JSON, or `null`).
async fn call(
    app: &TestApp,
    who: Persona,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .headers(headers(who))
        .header("accept", "application/json");
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(app, Persona::Admin, method, path, body).await
}

/// Calls as admin and checks the status; returns the body.
async fn expect(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let (status, doc) = admin(app, method.clone(), path, body).await;
    assert_eq!(status, want, "{method} {path}: {doc}");
    doc
}

const NS: &str = "/v2/metadefs/namespaces";

#[tokio::test]
async fn a_namespace_with_contents_is_created_shown_renamed_and_deleted() {
    let app = trusted_app().await;
    let created = expect(
        &app,
        Method::POST,
        NS,
        Some(json!({
            "namespace": "Test::Flavor",
            "display_name": "Test",
            "description": "A test namespace",
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "t_"}],
            "properties": {"cpus": {"type": "integer", "title": "CPUs", "minimum": 1}},
            "objects": [{"name": "Disk", "required": ["size"],
                         "properties": {"size": {"type": "integer", "title": "Size"}}}],
            "tags": [{"name": "fast"}]
        })),
        201,
    )
    .await;
    assert_eq!(created["visibility"], "private");
    assert_eq!(created["protected"], false);
    assert_eq!(created["owner"], "admin-project");
    assert_eq!(created["self"], "/v2/metadefs/namespaces/Test::Flavor");
    assert_eq!(created["schema"], "/v2/schemas/metadefs/namespace");

    let shown = expect(&app, Method::GET, &format!("{NS}/Test::Flavor"), None, 200).await;
    assert_eq!(
        shown["properties"]["cpus"],
        json!({"type": "integer", "title": "CPUs", "minimum": 1})
    );
    assert_eq!(shown["objects"][0]["name"], "Disk");
    assert_eq!(shown["objects"][0]["required"], json!(["size"]));
    assert_eq!(
        shown["objects"][0]["self"],
        "/v2/metadefs/namespaces/Test::Flavor/objects/Disk"
    );
    assert_eq!(shown["tags"], json!([{"name": "fast"}]));
    assert_eq!(shown["resource_type_associations"][0]["prefix"], "t_");
    assert!(shown["created_at"].as_str().unwrap().ends_with('Z'));

    // ?resource_type= shows names with that association's prefix.
    let prefixed = expect(
        &app,
        Method::GET,
        &format!("{NS}/Test::Flavor?resource_type=OS::Glance::Image"),
        None,
        200,
    )
    .await;
    assert!(prefixed["properties"].get("t_cpus").is_some(), "{prefixed}");
    assert_eq!(prefixed["objects"][0]["required"], json!(["t_size"]));

    // The name is taken.
    let (status, _) = admin(
        &app,
        Method::POST,
        NS,
        Some(json!({"namespace": "Test::Flavor"})),
    )
    .await;
    assert_eq!(status, 409);

    // A PUT replaces the namespace's own members (renaming it); its contents stay.
    let updated = expect(
        &app,
        Method::PUT,
        &format!("{NS}/Test::Flavor"),
        Some(json!({"namespace": "Test::Renamed", "visibility": "public", "protected": true})),
        200,
    )
    .await;
    assert_eq!(updated["namespace"], "Test::Renamed");
    assert!(updated.get("display_name").is_none(), "{updated}");
    expect(&app, Method::GET, &format!("{NS}/Test::Flavor"), None, 404).await;
    let shown = expect(&app, Method::GET, &format!("{NS}/Test::Renamed"), None, 200).await;
    assert_eq!(shown["objects"][0]["name"], "Disk");

    // Protected: nothing in it can be deleted.
    for path in [
        "",
        "/objects",
        "/objects/Disk",
        "/properties",
        "/properties/cpus",
        "/tags",
        "/tags/fast",
        "/resource_types/OS::Glance::Image",
    ] {
        let (status, doc) = admin(
            &app,
            Method::DELETE,
            &format!("{NS}/Test::Renamed{path}"),
            None,
        )
        .await;
        assert_eq!(status, 403, "DELETE {path}: {doc}");
    }
    expect(
        &app,
        Method::PUT,
        &format!("{NS}/Test::Renamed"),
        Some(json!({"namespace": "Test::Renamed", "protected": false})),
        200,
    )
    .await;
    expect(
        &app,
        Method::DELETE,
        &format!("{NS}/Test::Renamed"),
        None,
        204,
    )
    .await;
    expect(&app, Method::GET, &format!("{NS}/Test::Renamed"), None, 404).await;
    expect(
        &app,
        Method::GET,
        &format!("{NS}/Test::Renamed/objects"),
        None,
        404,
    )
    .await;
}

#[tokio::test]
async fn objects_and_properties_are_typed_as_glance_checks_them() {
    let app = trusted_app().await;
    expect(&app, Method::POST, NS, Some(json!({"namespace": "T"})), 201).await;
    let objects = format!("{NS}/T/objects");
    let props = format!("{NS}/T/properties");

    let obj = expect(
        &app,
        Method::POST,
        &objects,
        Some(json!({"name": "o1", "description": "d",
                    "properties": {"p": {"type": "string", "title": "P"}}})),
        201,
    )
    .await;
    // A create answers what was given; a show fills in the defaults, as Glance does.
    assert!(obj.get("required").is_none(), "{obj}");
    assert_eq!(obj["schema"], "/v2/schemas/metadefs/object");
    let shown = expect(&app, Method::GET, &format!("{objects}/o1"), None, 200).await;
    assert_eq!(shown["required"], json!([]));
    expect(
        &app,
        Method::POST,
        &objects,
        Some(json!({"name": "o1"})),
        409,
    )
    .await;
    for bad in [
        json!({"description": "no name"}),
        json!({"name": "o2", "bogus": 1}),
        json!({"name": "o2", "properties": {"p": {"type": "string"}}}),
        json!({"name": "o2", "properties": {"p": {"title": "P", "type": "float"}}}),
        json!({"name": "o2", "required": ["a", "a"]}),
    ] {
        let (status, doc) = admin(&app, Method::POST, &objects, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {doc}");
    }
    let (status, doc) = admin(
        &app,
        Method::POST,
        &objects,
        Some(json!({"name": "o3", "self": "x"})),
    )
    .await;
    assert_eq!(status, 403, "read-only member: {doc}");
    let list = expect(&app, Method::GET, &objects, None, 200).await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 1);
    let renamed = expect(
        &app,
        Method::PUT,
        &format!("{objects}/o1"),
        Some(json!({"name": "o9", "description": "e"})),
        200,
    )
    .await;
    assert_eq!(renamed["name"], "o9");
    expect(&app, Method::GET, &format!("{objects}/o1"), None, 404).await;
    assert_eq!(
        expect(&app, Method::GET, &format!("{objects}/o9"), None, 200).await["description"],
        "e"
    );

    let prop = expect(
        &app,
        Method::POST,
        &props,
        Some(
            json!({"name": "y", "type": "string", "title": "Y", "enum": ["a", "b"],
                    "default": "a", "maxLength": 3, "readonly": false}),
        ),
        201,
    )
    .await;
    assert_eq!(prop["name"], "y");
    expect(
        &app,
        Method::POST,
        &props,
        Some(json!({"name": "y", "type": "string", "title": "Y"})),
        409,
    )
    .await;
    for bad in [
        json!({"name": "z", "type": "string"}),
        json!({"name": "z", "title": "Z"}),
        json!({"type": "string", "title": "Z"}),
        json!({"name": "z", "type": "bogus", "title": "Z"}),
        json!({"name": "z", "type": "string", "title": "Z", "foo": 1}),
        json!({"name": "z", "type": "integer", "title": "Z", "minimum": "1"}),
        json!({"name": "z", "type": "string", "title": "Z", "maxLength": -1}),
        json!({"name": "z", "type": "array", "title": "Z", "items": {"type": "bogus"}}),
    ] {
        let (status, doc) = admin(&app, Method::POST, &props, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {doc}");
        assert!(
            doc["message"]
                .as_str()
                .unwrap()
                .contains("does not match schema 'property'"),
            "{doc}"
        );
    }
    let listed = expect(&app, Method::GET, &props, None, 200).await;
    assert_eq!(listed["properties"]["y"]["title"], "Y");
    assert!(listed["properties"]["y"].get("name").is_none());
    let updated = expect(
        &app,
        Method::PUT,
        &format!("{props}/y"),
        Some(json!({"name": "y2", "type": "boolean", "title": "Y2"})),
        200,
    )
    .await;
    assert_eq!(
        updated,
        json!({"name": "y2", "type": "boolean", "title": "Y2"})
    );
    expect(&app, Method::GET, &format!("{props}/y"), None, 404).await;
    expect(&app, Method::DELETE, &format!("{props}/y2"), None, 204).await;
    expect(&app, Method::DELETE, &format!("{props}/y2"), None, 404).await;

    // Delete-all of each kind.
    expect(
        &app,
        Method::POST,
        &props,
        Some(json!({"name": "q", "type": "string", "title": "Q"})),
        201,
    )
    .await;
    expect(&app, Method::DELETE, &objects, None, 204).await;
    expect(&app, Method::DELETE, &props, None, 204).await;
    let shown = expect(&app, Method::GET, &format!("{NS}/T"), None, 200).await;
    assert!(
        shown.get("objects").is_none() && shown.get("properties").is_none(),
        "{shown}"
    );
}

#[tokio::test]
async fn tags_are_created_one_or_many_replaced_or_appended_renamed_and_deleted() {
    let app = trusted_app().await;
    expect(&app, Method::POST, NS, Some(json!({"namespace": "T"})), 201).await;
    let tags = format!("{NS}/T/tags");
    let tag = expect(&app, Method::POST, &format!("{tags}/a"), None, 201).await;
    assert_eq!(tag["name"], "a");
    assert!(tag["created_at"].is_string());
    // Names are case-insensitive.
    expect(&app, Method::POST, &format!("{tags}/A"), None, 409).await;
    expect(&app, Method::POST, &format!("{tags}/b"), None, 201).await;

    // Many, appended.
    let mut req = app
        .client
        .post(app.url(&tags))
        .headers(headers(Persona::Admin))
        .header("x-openstack-append", "True")
        .json(&json!({"tags": [{"name": "c"}, {"name": "d"}]}));
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 201);
    let listed = expect(&app, Method::GET, &tags, None, 200).await;
    assert_eq!(
        listed["tags"],
        json!([{"name": "d"}, {"name": "c"}, {"name": "b"}, {"name": "a"}])
    );

    // Many, replacing (no header): only these remain.
    expect(
        &app,
        Method::POST,
        &tags,
        Some(json!({"tags": [{"name": "e"}]})),
        201,
    )
    .await;
    let listed = expect(&app, Method::GET, &tags, None, 200).await;
    assert_eq!(listed["tags"], json!([{"name": "e"}]));

    // A duplicate in the body, or (appending) of an existing tag: 409 and nothing changes.
    expect(
        &app,
        Method::POST,
        &tags,
        Some(json!({"tags": [{"name": "f"}, {"name": "F"}]})),
        409,
    )
    .await;
    req = app
        .client
        .post(app.url(&tags))
        .headers(headers(Persona::Admin))
        .header("x-openstack-append", "true")
        .json(&json!({"tags": [{"name": "g"}, {"name": "e"}]}));
    assert_eq!(req.send().await.unwrap().status(), 409);
    let listed = expect(&app, Method::GET, &tags, None, 200).await;
    assert_eq!(listed["tags"], json!([{"name": "e"}]));

    // Rename, delete one, delete all.
    let renamed = expect(
        &app,
        Method::PUT,
        &format!("{tags}/e"),
        Some(json!({"name": "f"})),
        200,
    )
    .await;
    assert_eq!(renamed["name"], "f");
    expect(&app, Method::GET, &format!("{tags}/e"), None, 404).await;
    expect(&app, Method::GET, &format!("{tags}/f"), None, 200).await;
    expect(&app, Method::DELETE, &format!("{tags}/f"), None, 204).await;
    expect(&app, Method::DELETE, &format!("{tags}/f"), None, 404).await;
    expect(
        &app,
        Method::POST,
        &tags,
        Some(json!({"tags": [{"name": "x"}, {"name": "y"}]})),
        201,
    )
    .await;
    expect(&app, Method::DELETE, &tags, None, 204).await;
    assert_eq!(
        expect(&app, Method::GET, &tags, None, 200).await["tags"],
        json!([])
    );
}

#[tokio::test]
async fn resource_type_associations_create_unknown_types_and_filter_lists() {
    let app = trusted_app().await;
    for (name, vis) in [("N1", "public"), ("N2", "private"), ("N3", "public")] {
        expect(
            &app,
            Method::POST,
            NS,
            Some(json!({"namespace": name, "visibility": vis})),
            201,
        )
        .await;
    }
    let assoc = expect(
        &app,
        Method::POST,
        &format!("{NS}/N1/resource_types"),
        Some(json!({"name": "OS::New::Thing", "prefix": "n_", "properties_target": "image"})),
        201,
    )
    .await;
    assert_eq!(assoc["name"], "OS::New::Thing");
    assert_eq!(assoc["properties_target"], "image");
    expect(
        &app,
        Method::POST,
        &format!("{NS}/N1/resource_types"),
        Some(json!({"name": "OS::New::Thing"})),
        409,
    )
    .await;
    expect(
        &app,
        Method::POST,
        &format!("{NS}/N2/resource_types"),
        Some(json!({"name": "OS::Glance::Image"})),
        201,
    )
    .await;
    let types = expect(&app, Method::GET, "/v2/metadefs/resource_types", None, 200).await;
    let names: Vec<&str> = types["resource_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"OS::New::Thing") && names.contains(&"OS::Glance::Image"),
        "{types}"
    );
    let assocs = expect(
        &app,
        Method::GET,
        &format!("{NS}/N1/resource_types"),
        None,
        200,
    )
    .await;
    assert_eq!(assocs["resource_type_associations"][0]["prefix"], "n_");

    let names_of = |doc: &Value| -> Vec<String> {
        doc["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["namespace"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_type = expect(
        &app,
        Method::GET,
        &format!(
            "{NS}?resource_types=OS::New::Thing,OS::Glance::Image&sort_key=namespace&sort_dir=asc"
        ),
        None,
        200,
    )
    .await;
    assert_eq!(names_of(&by_type), ["N1", "N2"]);
    assert_eq!(
        by_type["namespaces"][0]["resource_type_associations"][0]["name"],
        "OS::New::Thing"
    );
    let public = expect(
        &app,
        Method::GET,
        &format!("{NS}?visibility=public&sort_key=namespace&sort_dir=asc"),
        None,
        200,
    )
    .await;
    assert_eq!(names_of(&public), ["N1", "N3"]);

    expect(
        &app,
        Method::DELETE,
        &format!("{NS}/N1/resource_types/OS::New::Thing"),
        None,
        204,
    )
    .await;
    expect(
        &app,
        Method::DELETE,
        &format!("{NS}/N1/resource_types/OS::New::Thing"),
        None,
        404,
    )
    .await;
    // The type outlives the association.
    let types = expect(&app, Method::GET, "/v2/metadefs/resource_types", None, 200).await;
    assert!(types.to_string().contains("OS::New::Thing"));
}

#[tokio::test]
async fn namespace_lists_page_with_limit_marker_and_sort() {
    let app = trusted_app().await;
    for i in 0..5 {
        expect(
            &app,
            Method::POST,
            NS,
            Some(json!({"namespace": format!("P{i}"), "visibility": "public"})),
            201,
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut next = format!("{NS}?limit=2&sort_key=namespace&sort_dir=asc");
    for _ in 0..5 {
        let page = expect(&app, Method::GET, &next, None, 200).await;
        assert_eq!(page["schema"], "/v2/schemas/metadefs/namespaces");
        assert!(page["first"]
            .as_str()
            .unwrap()
            .starts_with("/v2/metadefs/namespaces?"));
        for n in page["namespaces"].as_array().unwrap() {
            seen.push(n["namespace"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(link) => next = link.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ["P0", "P1", "P2", "P3", "P4"]);
    let desc = expect(
        &app,
        Method::GET,
        &format!("{NS}?sort_key=namespace&sort_dir=desc&limit=1"),
        None,
        200,
    )
    .await;
    assert_eq!(desc["namespaces"][0]["namespace"], "P4");
    assert!(desc["next"].as_str().unwrap().contains("marker=P4"));
    for bad in [
        "?sort_dir=up",
        "?visibility=shared",
        "?limit=-1",
        // Glance answers 500 to these two.
        "?sort_key=bogus",
        "?limit=x",
    ] {
        let (status, doc) = admin(&app, Method::GET, &format!("{NS}{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {doc}");
    }
    expect(&app, Method::GET, &format!("{NS}?marker=nope"), None, 404).await;
}

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

// ---- glance-manage: load, export, unload ------------------------------------------------

/// Glance 33's shipped definition files: `GLANCE_TEST_METADEFS_DIR`, or the reference
/// Glance's venv (`../shared/reference-glance/start.sh` installs it).
fn glance_metadefs() -> PathBuf {
    if let Ok(dir) = std::env::var("GLANCE_TEST_METADEFS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("GLANCE_REF_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/reference-glance")
        });
    let dir = home.join("venv/etc/glance/metadefs");
    assert!(
        dir.join("compute-cpu-pinning.json").exists(),
        "Glance's metadef files are not at {}: run ../shared/reference-glance/start.sh once, \
         or set GLANCE_TEST_METADEFS_DIR",
        dir.display()
    );
    dir
}

/// A database (SQLite in `dir`, or a fresh PostgreSQL one), synced, with an all-in-one on
/// it and `glance-manage` pointed at it.
struct Catalog {
    app: TestApp,
    db: String,
    dir: tempfile::TempDir,
}

impl Catalog {
    async fn new() -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let db = match glance_tests::fresh_database_url().await {
            Some(url) => url,
            None => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("md.sqlite").display()
            ),
        };
        let mut raw = glance_config::RawConfig::defaults();
        raw.set("DEFAULT", "workers", "2");
        raw.set("DEFAULT", "auth_strategy", "trusted-headers");
        raw.set("database", "connection", &db);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = dir.path().join("data");
        let server = glance_all_in_one::build_from_raw(&raw, &data, listener)
            .await
            .unwrap();
        let join = tokio::spawn(async move {
            let _ = server.run_until_stopped().await;
        });
        let app = TestApp::attach(format!("http://127.0.0.1:{port}"), join);
        Catalog { app, db, dir }
    }

    /// Runs `glance-manage ARGS` on this database: (success, stdout + stderr).
    fn manage(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(common::bin("glance-manage"))
            .args(args)
            .env("GLANCE__DATABASE__CONNECTION", &self.db)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn manage_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.manage(args);
        assert!(ok, "glance-manage {args:?} failed:\n{out}");
        out
    }

    /// The whole catalog as an admin reads it through the API: every namespace's show, its
    /// objects, properties and tags lists, by name, without timestamps (which say when it
    /// was loaded, not what it is).
    async fn read(&self) -> Value {
        let list = expect(
            &self.app,
            Method::GET,
            &format!("{NS}?limit=1000"),
            None,
            200,
        )
        .await;
        let mut all = serde_json::Map::new();
        for n in list["namespaces"].as_array().unwrap() {
            let name = n["namespace"].as_str().unwrap();
            let mut doc = json!({});
            doc["show"] = expect(&self.app, Method::GET, &format!("{NS}/{name}"), None, 200).await;
            for part in ["objects", "properties", "tags", "resource_types"] {
                doc[part] = expect(
                    &self.app,
                    Method::GET,
                    &format!("{NS}/{name}/{part}"),
                    None,
                    200,
                )
                .await;
            }
            strip_times(&mut doc);
            all.insert(name.to_owned(), doc);
        }
        let mut types = expect(
            &self.app,
            Method::GET,
            "/v2/metadefs/resource_types",
            None,
            200,
        )
        .await;
        strip_times(&mut types);
        json!({"namespaces": all, "resource_types": types})
    }

    fn write(&self, dir: &str, file: &str, doc: &Value) -> PathBuf {
        let dir = self.dir.path().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
        dir
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("created_at");
            m.remove("updated_at");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn glances_catalog_loads_exports_unloads_and_loads_back_identical() {
    let c = Catalog::new().await;
    let glance = glance_metadefs();
    let files = std::fs::read_dir(&glance)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert!(
        files >= 30,
        "only {files} definition files in {}",
        glance.display()
    );

    let out = c.manage_ok(&["db", "load_metadefs", "--path", path_str(&glance)]);
    assert_eq!(out.matches("Loaded namespace").count(), files, "{out}");
    let loaded = c.read().await;
    assert_eq!(loaded["namespaces"].as_object().unwrap().len(), files);
    // Spot checks against the files.
    let pinning = &loaded["namespaces"]["OS::Compute::CPUPinning"]["show"];
    assert_eq!(pinning["owner"], "admin");
    assert_eq!(pinning["protected"], true);
    assert_eq!(
        pinning["properties"]["cpu_policy"]["enum"],
        json!(["shared", "dedicated"])
    );
    assert_eq!(
        loaded["namespaces"]["OS::OperatingSystem"]["show"]["visibility"],
        "private"
    );

    // Loading again without flags skips every namespace.
    let out = c.manage_ok(&["db_load_metadefs", "--path", path_str(&glance)]);
    assert_eq!(out.matches("Skipping namespace").count(), files, "{out}");
    assert_eq!(c.read().await, loaded);

    let export = c.dir.path().join("export");
    let out = c.manage_ok(&["db", "export_metadefs", "--path", path_str(&export)]);
    assert_eq!(std::fs::read_dir(&export).unwrap().count(), files, "{out}");
    assert!(export.join("OSComputeCPUPinning.json").exists());

    c.manage_ok(&["db", "unload_metadefs"]);
    let empty = expect(&c.app, Method::GET, NS, None, 200).await;
    assert_eq!(empty["namespaces"], json!([]));
    let types = expect(
        &c.app,
        Method::GET,
        "/v2/metadefs/resource_types",
        None,
        200,
    )
    .await;
    assert_eq!(types["resource_types"], json!([]));

    c.manage_ok(&["db", "load_metadefs", "--path", path_str(&export)]);
    assert_eq!(
        c.read().await,
        loaded,
        "the export loaded back differs from Glance's files"
    );

    // And once more through the older spellings, export of the export.
    let again = c.dir.path().join("again");
    c.manage_ok(&["db_export_metadefs", "--path", path_str(&again)]);
    for entry in std::fs::read_dir(&export).unwrap() {
        let entry = entry.unwrap();
        let a = std::fs::read_to_string(entry.path()).unwrap();
        let b = std::fs::read_to_string(again.join(entry.file_name())).unwrap();
        assert_eq!(a, b, "{:?} changed between exports", entry.file_name());
    }
    c.manage_ok(&["db_unload_metadefs"]);
    assert_eq!(
        expect(&c.app, Method::GET, NS, None, 200).await["namespaces"],
        json!([])
    );
}

/// The namespace as first loaded, and as changed in a later file: `d` changed in both, `old`
/// only in the first, `new` only in the second.
fn versions() -> (Value, Value) {
    let v1 = json!({
        "namespace": "Test::Merge", "display_name": "One", "description": "first",
        "visibility": "public", "protected": false,
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "a_"}],
        "properties": {
            "d": {"title": "D1", "type": "string"},
            "old": {"title": "Old", "type": "string"}
        },
        "objects": [{"name": "O", "description": "o1", "properties": {"x": {"title": "X1", "type": "integer"}}}],
        "tags": [{"name": "t-old"}]
    });
    let v2 = json!({
        "namespace": "Test::Merge", "display_name": "Two", "description": "second",
        "visibility": "public", "protected": true,
        "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "b_"},
            {"name": "OS::Nova::Flavor", "prefix": "b:"}
        ],
        "properties": {
            "d": {"title": "D2", "type": "integer"},
            "new": {"title": "New", "type": "boolean"}
        },
        "objects": [
            {"name": "O", "description": "o2", "properties": {"x": {"title": "X2", "type": "integer"}}},
            {"name": "P", "description": "p2", "properties": {}}
        ],
        "tags": [{"name": "t-new"}]
    });
    (v1, v2)
}

#[tokio::test]
async fn merge_prefer_new_and_overwrite_treat_a_changed_namespace_as_glance_does() {
    let (v1, v2) = versions();
    let tags = |doc: &Value| -> Vec<String> {
        let mut t: Vec<String> = doc["tags"].as_array().map_or(vec![], |a| {
            a.iter()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect()
        });
        t.sort();
        t
    };
    let props = |doc: &Value| -> Vec<String> {
        let mut p: Vec<String> = doc["properties"]
            .as_object()
            .map_or(vec![], |m| m.keys().cloned().collect());
        p.sort();
        p
    };
    let cases: [&[&str]; 4] = [
        &[],
        &["--merge"],
        &["--merge", "--prefer_new"],
        &["--merge", "--overwrite"],
    ];
    for flags in cases {
        let c = Catalog::new().await;
        c.manage_ok(&["db", "sync"]);
        let first = c.write("v1", "merge.json", &v1);
        let second = c.write("v2", "merge.json", &v2);
        c.manage_ok(&["db", "load_metadefs", "--path", path_str(&first)]);
        let mut args = vec!["db", "load_metadefs", "--path", path_str(&second)];
        args.extend_from_slice(flags);
        c.manage_ok(&args);
        let doc = expect(&c.app, Method::GET, &format!("{NS}/Test::Merge"), None, 200).await;
        let object = |name: &str| {
            doc["objects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == name)
                .cloned()
        };
        let assoc = |name: &str| {
            doc["resource_type_associations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == name)
                .cloned()
        };
        match flags {
            [] => {
                // Skipped: the first version stands.
                assert_eq!(doc["display_name"], "One", "{flags:?}");
                assert_eq!(props(&doc), ["d", "old"]);
                assert_eq!(tags(&doc), ["t-old"]);
                assert!(object("P").is_none());
            }
            ["--merge"] => {
                // What the file adds is added; what both have keeps the stored version.
                assert_eq!(doc["display_name"], "One");
                assert_eq!(doc["protected"], false);
                assert_eq!(props(&doc), ["d", "new", "old"]);
                assert_eq!(doc["properties"]["d"]["title"], "D1");
                assert_eq!(tags(&doc), ["t-new", "t-old"]);
                assert_eq!(object("O").unwrap()["description"], "o1");
                assert!(object("P").is_some());
                assert_eq!(assoc("OS::Glance::Image").unwrap()["prefix"], "a_");
                assert!(assoc("OS::Nova::Flavor").is_some());
            }
            ["--merge", "--prefer_new"] => {
                // As --merge, but the file wins where both have an item.
                assert_eq!(doc["display_name"], "Two");
                assert_eq!(doc["protected"], true);
                assert_eq!(props(&doc), ["d", "new", "old"]);
                assert_eq!(
                    doc["properties"]["d"],
                    json!({"title": "D2", "type": "integer"})
                );
                assert_eq!(tags(&doc), ["t-new", "t-old"]);
                assert_eq!(object("O").unwrap()["description"], "o2");
                assert_eq!(assoc("OS::Glance::Image").unwrap()["prefix"], "b_");
            }
            ["--merge", "--overwrite"] => {
                // The file's version, exactly.
                assert_eq!(doc["display_name"], "Two");
                assert_eq!(props(&doc), ["d", "new"]);
                assert_eq!(tags(&doc), ["t-new"]);
                assert_eq!(object("O").unwrap()["description"], "o2");
                assert_eq!(assoc("OS::Glance::Image").unwrap()["prefix"], "b_");
            }
            other => unreachable!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_bad_path_file_or_flag_set_loads_nothing_and_says_why() {
    let c = Catalog::new().await;
    c.manage_ok(&["db", "sync"]);
    let (v1, _) = versions();
    let good = c.write("bad", "a-good.json", &v1);

    let missing = c.dir.path().join("nowhere");
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&missing)]);
    assert!(!ok && out.contains("nowhere"), "{out}");

    let (ok, out) = c.manage(&[
        "db",
        "load_metadefs",
        "--path",
        path_str(&good),
        "--prefer_new",
    ]);
    assert!(!ok && out.contains("--merge"), "{out}");
    let (ok, out) = c.manage(&[
        "db",
        "load_metadefs",
        "--path",
        path_str(&good),
        "--merge",
        "--prefer_new",
        "--overwrite",
    ]);
    assert!(!ok && out.contains("--overwrite"), "{out}");

    // A file with a bad field, beside a good one: the message names both, nothing loads.
    let mut bad = v1.clone();
    bad["namespace"] = json!("Test::Bad");
    bad["properties"]["d"]["type"] = json!("float");
    c.write("bad", "b-bad.json", &bad);
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&good)]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("b-bad.json") && out.contains("properties.d.type"),
        "{out}"
    );
    assert_eq!(
        expect(&c.app, Method::GET, NS, None, 200).await["namespaces"],
        json!([])
    );

    // Not JSON at all.
    std::fs::write(good.join("b-bad.json"), "{ not json").unwrap();
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&good)]);
    assert!(
        !ok && out.contains("b-bad.json") && out.contains("JSON"),
        "{out}"
    );

    // Two files for one namespace.
    c.write("bad", "b-bad.json", &v1);
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&good)]);
    assert!(!ok && out.contains("also defined"), "{out}");
    assert_eq!(
        expect(&c.app, Method::GET, NS, None, 200).await["namespaces"],
        json!([])
    );

    // An empty directory.
    let empty = c.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&empty)]);
    assert!(!ok && out.contains("no definition files"), "{out}");
}
