//! The metadefs API (`/v2/metadefs/...`): namespaces, objects, properties, tags, resource
//! type associations and lists, over HTTP against the all-in-one with trusted headers. On
//! PostgreSQL with `GLANCE_TEST_DATABASE=postgres` (the test script runs this binary, and
//! `metadefs_access` and `metadefs_manage`, both ways).
//!
//! Status codes and shapes were compared with the reference Glance 33
//! (`../shared/reference-glance`) running the same requests.

mod common;

use common::metadefs::*;
use reqwest::Method;
use serde_json::{json, Value};

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
