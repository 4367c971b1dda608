//! Each difference from Glance 33 that the differential harness (`tests/parity/`) found and
//! we fixed, asserted here over HTTP so it stays fixed without the reference server.

use glance_tests::{spawn_app_with, TestApp};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

fn as_(project: &str, roles: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-identity-status", "Confirmed".parse().unwrap());
    h.insert("x-project-id", project.parse().unwrap());
    h.insert("x-user-id", "u".parse().unwrap());
    h.insert("x-roles", roles.parse().unwrap());
    h
}

fn admin() -> HeaderMap {
    as_("admin-project", "admin,member,reader")
}

fn member_a() -> HeaderMap {
    as_("project-a", "member,reader")
}

async fn trusted() -> TestApp {
    spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await
}

async fn call(app: &TestApp, method: Method, path: &str, headers: HeaderMap) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .headers(headers)
        .send()
        .await
        .unwrap()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

async fn new_image(app: &TestApp, owner: &str) -> String {
    let res = app
        .client
        .post(app.url("/v2/images"))
        .headers(admin())
        .json(&json!({"name": "p", "owner": owner, "disk_format": "raw",
                      "container_format": "bare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_are_plain_text_unless_html_or_json_is_accepted() {
    let app = trusted().await;
    // (reqwest always sends an Accept; webob's plain text for a missing one is a unit test.)
    let mut h = admin();
    h.insert("accept", "application/xml".parse().unwrap());
    let res = call(&app, Method::GET, "/v2/images/nope", h).await;
    assert_eq!(res.status(), 404);
    assert_eq!(header(&res, "content-type"), "text/plain; charset=UTF-8");
    let mut h = admin();
    h.insert("accept", "*/*".parse().unwrap());
    let res = call(&app, Method::GET, "/v2/images/nope", h).await;
    assert!(header(&res, "content-type").starts_with("text/html"));
    let mut h = admin();
    h.insert("accept", "application/json".parse().unwrap());
    let res = call(&app, Method::GET, "/v2/images/nope", h).await;
    assert_eq!(header(&res, "content-type"), "application/json");
    // A HEAD's error is HTML whatever is accepted, as webob answers it.
    let res = call(&app, Method::HEAD, "/v2/images/nope", admin()).await;
    assert!(header(&res, "content-type").starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_versioned_path_needs_identity_and_others_get_the_version_document() {
    let app = trusted().await;
    for path in [
        "/v2/schemas/image",
        "/v2/info/import",
        "/v2/info/stores",
        "/v2/nope",
        "/v2/images/x/actions/deactivate",
    ] {
        let res = call(&app, Method::GET, path, HeaderMap::new()).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    for path in ["/", "/v1/images", "/v3/images", "/images", "/v2.99/images"] {
        let res = call(&app, Method::GET, path, HeaderMap::new()).await;
        assert_eq!(res.status(), 300, "{path}");
        let doc: Value = res.json().await.unwrap();
        assert!(doc["versions"].as_array().unwrap().len() > 10);
    }
    for method in [Method::POST, Method::DELETE] {
        let res = call(&app, method, "/versions", HeaderMap::new()).await;
        assert_eq!(res.status(), 200);
    }
    // A minor version in the path is the same API.
    let res = call(&app, Method::GET, "/v2.9/images", admin()).await;
    assert_eq!(res.status(), 200);
    assert!(res.json::<Value>().await.unwrap()["images"].is_array());
    let res = call(&app, Method::OPTIONS, "/v2/images", HeaderMap::new()).await;
    assert_eq!(res.status(), 200);
    let res = call(&app, Method::GET, "/v2", admin()).await;
    assert_eq!(res.status(), 302);
    assert_eq!(header(&res, "location"), app.url("/v2/"));
}

#[tokio::test(flavor = "multi_thread")]
async fn create_answers_an_absolute_location_and_checks_types_before_names() {
    let app = trusted().await;
    let res = app
        .client
        .post(app.url("/v2/images"))
        .headers(admin())
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = header(&res, "location").to_owned();
    let id = res.json::<Value>().await.unwrap()["id"].clone();
    assert_eq!(
        location,
        app.url(&format!("/v2/images/{}", id.as_str().unwrap()))
    );
    // A reserved name with a value the schema refuses: the schema speaks first.
    let res = app
        .client
        .post(app.url("/v2/images"))
        .headers(admin())
        .json(&json!({"name": "x", "deleted": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn image_reads_and_writes_refuse_what_glance_refuses() {
    let app = trusted().await;
    let id = new_image(&app, "project-a").await;
    // A patch in another media type says which it takes.
    let res = app
        .client
        .patch(app.url(&format!("/v2/images/{id}")))
        .headers(admin())
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert!(header(&res, "accept-patch").contains("application/openstack-images-v2.1-json-patch"));
    // A body on a show.
    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}")))
        .headers(admin())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Image data must say it is application/octet-stream.
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .headers(admin())
        .body(vec![1u8; 16])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = call(&app, Method::GET, &format!("/v2/images/{id}"), admin()).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_match_nothing_or_fail_as_in_glance() {
    let app = trusted().await;
    new_image(&app, "project-a").await;
    for (query, status, count) in [
        ("status=bogus", 200, Some(0)),
        ("status=QUEUED", 200, Some(0)),
        ("status=queued", 200, Some(1)),
        ("id=abc", 200, Some(0)),
        ("visibility=", 200, Some(0)),
        ("size_min=-1", 200, Some(0)),
        ("min_disk=abc", 200, Some(0)),
        ("limit=99999999999999999999", 200, Some(1)),
        ("created_at=gt:2999-01-01", 200, Some(0)),
        ("name=eq:p", 200, Some(1)),
        ("sort=name:", 200, Some(1)),
        ("name=neq:p", 400, None),
        ("sort=", 400, None),
        ("sort_key=owner", 400, None),
        ("sort_key=virtual_size", 400, None),
        ("protected=1", 400, None),
        ("protected=True", 400, None),
        // Glance reads os_hidden case-insensitively (openstacksdk sends `True`).
        ("os_hidden=True", 200, Some(0)),
        ("os_hidden=FALSE", 200, Some(1)),
        ("os_hidden=1", 400, None),
        ("a=%ff", 400, None),
    ] {
        let res = call(&app, Method::GET, &format!("/v2/images?{query}"), admin()).await;
        assert_eq!(res.status(), status, "{query}");
        if let Some(n) = count {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["images"].as_array().unwrap().len(), n, "{query}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn info_usage_reports_no_limits_to_anyone_identified() {
    let app = trusted().await;
    for h in [admin(), member_a(), as_("project-a", "reader")] {
        let res = call(&app, Method::GET, "/v2/info/usage", h).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"usage": {}}));
    }
    let res = call(&app, Method::GET, "/v2/info/usage", HeaderMap::new()).await;
    assert_eq!(res.status(), 401);
    let res = call(&app, Method::POST, "/v2/info/usage", admin()).await;
    assert_eq!(res.status(), 404);
    let res = call(
        &app,
        Method::from_bytes(b"FOO").unwrap(),
        "/v2/info/usage",
        admin(),
    )
    .await;
    assert_eq!(res.status(), 501);
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_tasks_are_for_admins_and_checked_like_glances() {
    let app = trusted().await;
    let body = json!({"type": "import", "input": {"import_from": "https://example.com/x.img",
        "import_from_format": "raw", "image_properties": {"name": "t"}}});
    for h in [member_a(), as_("project-a", "reader")] {
        let res = app
            .client
            .post(app.url("/v2/tasks"))
            .headers(h)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    for bad in [
        json!({}),
        json!({"type": "bogus", "input": {}}),
        json!({"type": "import"}),
        json!({"type": "import", "input": {"import_from": "ftp://example.com/x"}}),
    ] {
        let res = app
            .client
            .post(app.url("/v2/tasks"))
            .headers(admin())
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = app
        .client
        .post(app.url("/v2/tasks"))
        .headers(admin())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = header(&res, "location").to_owned();
    let task: Value = res.json().await.unwrap();
    assert_eq!(task["type"], "import");
    assert_eq!(task["status"], "pending");
    assert_eq!(task["input"], body["input"]);
    assert_eq!(
        location,
        app.url(&format!("/v2/tasks/{}", task["id"].as_str().unwrap()))
    );
    let res = call(
        &app,
        Method::GET,
        &format!("/v2/tasks/{}", task["id"].as_str().unwrap()),
        admin(),
    )
    .await;
    let shown: Value = res.json().await.unwrap();
    assert_eq!(shown["status"], "failure");
    assert!(shown["message"].as_str().unwrap().contains("/import"));
    // Tasks are not deleted by hand; only admins even learn that.
    let path = format!("/v2/tasks/{}", task["id"].as_str().unwrap());
    let res = call(&app, Method::DELETE, &path, admin()).await;
    assert_eq!(res.status(), 405);
    assert_eq!(header(&res, "allow"), "GET");
    let res = call(&app, Method::DELETE, &path, member_a()).await;
    assert_eq!(res.status(), 403);
    // Type filters: only `import`.
    let res = call(&app, Method::GET, "/v2/tasks?type=bogus", admin()).await;
    assert_eq!(res.status(), 400);
    let res = call(&app, Method::GET, "/v2/tasks?type=import", admin()).await;
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(list["first"], "/v2/tasks?type=import");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_locations_api_answers_with_glances_policy_and_checks() {
    let app = trusted().await;
    let id = new_image(&app, "project-a").await;
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .headers(admin())
        .header("content-type", "application/octet-stream")
        .body(vec![3u8; 64])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let path = format!("/v2/images/{id}/locations");
    let res = call(&app, Method::GET, &path, admin()).await;
    assert_eq!(res.status(), 200);
    let locations: Value = res.json().await.unwrap();
    assert_eq!(locations.as_array().unwrap().len(), 1);
    assert!(locations[0]["url"].as_str().unwrap().starts_with("file://"));
    assert!(locations[0].get("status").is_none());
    for h in [member_a(), as_("project-a", "reader")] {
        assert_eq!(call(&app, Method::GET, &path, h).await.status(), 403);
    }
    assert_eq!(
        call(&app, Method::GET, &path, as_("project-b", "member,reader"))
            .await
            .status(),
        404
    );
    let res = call(&app, Method::PUT, &path, admin()).await;
    assert_eq!(res.status(), 405);
    assert_eq!(header(&res, "allow"), "POST");
    let post = |h: HeaderMap, path: String, body: Value| {
        app.client
            .post(app.url(&path))
            .headers(h)
            .json(&body)
            .send()
    };
    // Schema first (400), then the image's status (409 unless queued).
    let res = post(admin(), path.clone(), json!({})).await.unwrap();
    assert_eq!(res.status(), 400);
    let res = post(
        admin(),
        path.clone(),
        json!({"url": "http://example.com/x"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 409);
    // On a queued image: no http store, so no one may add a location.
    let queued = new_image(&app, "project-a").await;
    let qpath = format!("/v2/images/{queued}/locations");
    for h in [admin(), member_a(), as_("project-a", "reader")] {
        let res = post(h, qpath.clone(), json!({"url": "http://example.com/x"}))
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    let res = call(&app, Method::GET, &format!("/v2/images/{queued}"), admin()).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_member_status_from_someone_who_may_not_set_it_is_403() {
    let app = trusted().await;
    let res = app
        .client
        .post(app.url("/v2/images"))
        .headers(admin())
        .json(&json!({"name": "s", "owner": "project-a", "visibility": "shared"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url(&format!("/v2/images/{id}/members")))
        .headers(admin())
        .json(&json!({"member": "project-b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set = |h: HeaderMap, status: &str| {
        app.client
            .put(app.url(&format!("/v2/images/{id}/members/project-b")))
            .headers(h)
            .json(&json!({"status": status}))
            .send()
    };
    assert_eq!(set(member_a(), "bogus").await.unwrap().status(), 403);
    let member_b = as_("project-b", "member,reader");
    assert_eq!(set(member_b.clone(), "bogus").await.unwrap().status(), 400);
    assert_eq!(set(member_b, "accepted").await.unwrap().status(), 200);
}
