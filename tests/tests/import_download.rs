//! The glance-download import method between two of our all-in-ones registered as two
//! regions of a Keystone of this test's own (the reference Keystone, started from
//! `../shared/reference-keystone`, so the catalog other tests read is left alone): the
//! image and its listed properties arrive through the `glance` CLI and openstacksdk with
//! the caller's token, and each failure Glance knows (remote image not active, region not
//! in the catalog, a download whose size or hashes differ from the record) fails the task
//! with Glance's message and leaves the local image queued as it was.
//!
//! Needs the Keystone venv (`KEYSTONE_VENV`, else `target/keystone-venv`, which
//! `scripts/test.sh` makes) and the clients' venv `target/venv`. The tests' names say
//! `keystone`, so `GLANCE_TEST_WITH_KEYSTONE=0` leaves them out like tests/tests/keystone.rs.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::regions::*;
use glance_tests::digests;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread")]
async fn glance_download_through_a_keystone_catalog_with_the_cli_and_openstacksdk() {
    let Regions { ks, one, two } = regions().await;
    let demo = ks.token("demo", "demo", "demo").await;
    let data = payload(3 << 20);
    let remote = two.active(&demo, &data, remote_properties()).await;

    // Offered where enabled.
    let info = one.json(&demo, "/v2/info/import").await;
    assert!(
        info["import-methods"]["value"]
            .as_array()
            .unwrap()
            .contains(&json!("glance-download")),
        "{info}"
    );

    let url = ks.url.clone();
    let remote_id = remote.clone();
    let table = on_blocking(move || {
        glance_cli(
            &url,
            &[
                "--os-image-api-version",
                "2",
                "image-create-via-import",
                "--name",
                "via-cli",
                "--disk-format",
                "qcow2",
                "--container-format",
                "ovf",
                "--import-method",
                "glance-download",
                "--remote-region",
                "RegionTwo",
                "--remote-image-id",
                &remote_id,
            ],
        )
    })
    .await;
    let id = id_in(&table);
    let (task, image) = one.finished(&demo, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_imported(&image, &data);
    assert_eq!(one.bytes(&demo, &id).await, data);
    // The task records the request as Glance does, never the caller's token.
    let method = &task["input"]["import_req"]["method"];
    assert_eq!(method["name"], "glance-download");
    assert_eq!(method["glance_image_id"], remote.as_str());
    assert_eq!(method["glance_region"], "RegionTwo");
    assert_eq!(method["glance_service_interface"], "public");
    assert!(
        !task.to_string().contains(&demo),
        "the token leaked: {task}"
    );

    let url = ks.url.clone();
    let remote_id = remote.clone();
    let id = on_blocking(move || sdk_import(&url, &remote_id)).await;
    let (task, image) = one.finished(&demo, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_imported(&image, &data);
    assert_eq!(one.bytes(&demo, &id).await, data);

    // Another project's token does not read demo's private image in RegionTwo: Glance
    // there answers 404 to the import's first request, and the task says so.
    let alt = ks.token("alt", "alt", "alt").await;
    let local = one
        .create(
            &alt,
            json!({"name": "x", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let res = one
        .import(
            &alt,
            &local,
            json!({"name": "glance-download",
            "glance_region": "RegionTwo", "glance_image_id": remote}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let (task, image) = one.finished(&alt, &local).await;
    assert_eq!(task["status"], "failure");
    assert_eq!(task["message"], "HTTP Error 404: Not Found");
    assert_eq!(image["status"], "queued");
}

/// A Glance that lies: its record of `/v2/images/{id}` says what the test wants while
/// `/file` serves other bytes. Remembers the tokens it was sent.
struct LyingGlance {
    url: String,
    tokens: Arc<Mutex<Vec<String>>>,
    _server: actix_web::dev::ServerHandle,
}

async fn lying_glance(record: Value, data: Vec<u8>) -> LyingGlance {
    use actix_web::{web, App as Actix, HttpRequest, HttpResponse, HttpServer};
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = HttpServer::new(move || {
        let record = record.clone();
        let data = data.clone();
        let seen = seen.clone();
        let remember = move |req: &HttpRequest| {
            if let Some(t) = req.headers().get("x-auth-token") {
                seen.lock().unwrap().push(t.to_str().unwrap().to_owned());
            }
        };
        let remember2 = remember.clone();
        Actix::new()
            .route(
                "/v2/images/{id}",
                web::get().to(move |req: HttpRequest| {
                    remember(&req);
                    let record = record.clone();
                    async move { HttpResponse::Ok().json(record) }
                }),
            )
            .route(
                "/v2/images/{id}/file",
                web::get().to(move |req: HttpRequest| {
                    remember2(&req);
                    let data = data.clone();
                    async move { HttpResponse::Ok().body(data) }
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    LyingGlance {
        url,
        tokens,
        _server: handle,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_download_failures_in_a_keystone_catalog_fail_the_task_as_glance_does() {
    let data = payload(100_000);
    let (md5, sha512) = digests(&data);
    let record = |size: usize, md5: &str, sha512: &str| {
        json!({"id": "x", "status": "active", "size": size, "checksum": md5,
               "os_hash_algo": "sha512", "os_hash_value": sha512,
               "disk_format": "raw", "container_format": "bare", "hw_machine_type": "q35"})
    };
    let long = lying_glance(record(data.len() + 1, &md5, &sha512), data.clone()).await;
    let bad_md5 = lying_glance(record(data.len(), &"0".repeat(32), &sha512), data.clone()).await;
    let bad_sha = lying_glance(record(data.len(), &md5, &"0".repeat(128)), data.clone()).await;

    let Regions { ks, one, two } = regions().await;
    ks.add_region("RegionLong", &long.url).await;
    ks.add_region("RegionBadMd5", &bad_md5.url).await;
    ks.add_region("RegionBadSha", &bad_sha.url).await;
    let demo = ks.token("demo", "demo", "demo").await;
    let new_local = || {
        one.create(
            &demo,
            json!({"name": "local", "disk_format": "qcow2", "container_format": "ovf",
                   "hw_machine_type": "pc"}),
        )
    };

    // Glance's request checks: 400 before any task.
    let local = new_local().await;
    let some_id = uuid::Uuid::new_v4().to_string();
    for (method, message) in [
        (
            json!({"name": "glance-download", "glance_image_id": some_id}),
            "'glance_region' needs to be set for glance-download import method",
        ),
        (
            json!({"name": "glance-download", "glance_region": "RegionTwo"}),
            "'glance_image_id' needs to be set for glance-download import method",
        ),
        (
            json!({"name": "glance-download", "glance_region": "RegionTwo", "glance_image_id": "nope"}),
            "Remote image id does not look like a UUID: nope",
        ),
    ] {
        let res = one.import(&demo, &local, method.clone()).await;
        assert_eq!(res.status(), 400, "{method}");
        let text = res.text().await.unwrap();
        assert!(text.contains(message), "{method}: {text}");
    }

    // A remote image that is not active.
    let queued = two
        .create(
            &demo,
            json!({"name": "empty", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    // Each case: the region, the remote id, Glance's message (or its start).
    let task_id = "{task}";
    let cases = [
        ("RegionTwo", queued.clone(), "Source image status should be active instead of queued".to_owned()),
        ("RegionNine", queued.clone(), "public glance endpoint not found for region RegionNine".to_owned()),
        (
            "RegionLong",
            some_id.clone(),
            format!("Task {task_id} failed because downloaded data size {} is different from expected {}", data.len(), data.len() + 1),
        ),
        (
            "RegionBadMd5",
            some_id.clone(),
            format!("Task {task_id} failed because downloaded data checksum {md5} is different from expected {}", "0".repeat(32)),
        ),
        (
            "RegionBadSha",
            some_id.clone(),
            format!("Task {task_id} failed because downloaded data sha512 multihash {sha512} is different from expected {}", "0".repeat(128)),
        ),
    ];
    for (region, remote, message) in cases {
        let local = new_local().await;
        let res = one
            .import(
                &demo,
                &local,
                json!({"name": "glance-download",
                "glance_region": region, "glance_image_id": remote}),
            )
            .await;
        assert_eq!(res.status(), 202, "{region}");
        let (task, image) = one.finished(&demo, &local).await;
        assert_eq!(task["status"], "failure", "{region}: {task}");
        let task_id = task["id"].as_str().unwrap();
        assert_eq!(
            task["message"],
            message.replace("{task}", task_id).as_str(),
            "{region}"
        );
        // Put back as it was: queued, no data, its own formats and properties.
        assert_eq!(image["status"], "queued", "{region}: {image}");
        assert!(image["checksum"].is_null(), "{region}: {image}");
        assert_eq!(image["disk_format"], "qcow2", "{region}: {image}");
        assert_eq!(image["container_format"], "ovf", "{region}: {image}");
        assert_eq!(image["hw_machine_type"], "pc", "{region}: {image}");
        assert!(
            image.get("os_glance_import_task").is_none(),
            "{region}: {image}"
        );
    }
    // The lying Glance was asked with the caller's token, for the record and the data.
    assert_eq!(*long.tokens.lock().unwrap(), [demo.clone(), demo.clone()]);
    drop(two);
}

#[tokio::test]
async fn glance_download_is_not_offered_unless_enabled() {
    let app = glance_tests::spawn_app().await;
    let info: Value = app
        .client
        .get(app.url("/v2/info/import"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !info["import-methods"]["value"]
            .as_array()
            .unwrap()
            .contains(&json!("glance-download")),
        "{info}"
    );
    let id = app
        .create_image(json!({"name": "x", "disk_format": "raw", "container_format": "bare"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url(&format!("/v2/images/{id}/import")))
        .json(
            &json!({"method": {"name": "glance-download", "glance_region": "RegionTwo",
            "glance_image_id": uuid::Uuid::new_v4()}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Import method name 'glance-download' is not valid"));
}

/// Behind a keystonemiddleware (`trusted_headers`) the catalog is its `X-Service-Catalog`
/// (the v2 form Glance reads), and the token the caller's `X-Auth-Token`; with a token file
/// a caller's own `X-Service-Catalog` is not believed.
#[tokio::test(flavor = "multi_thread")]
async fn glance_download_reads_the_x_service_catalog_of_a_proxy() {
    let data = payload(70_000);
    let (md5, sha512) = digests(&data);
    let remote = lying_glance(
        json!({"id": "x", "status": "active", "size": data.len(), "checksum": md5,
               "os_hash_algo": "sha512", "os_hash_value": sha512,
               "disk_format": "raw", "container_format": "bare", "os_distro": "debian"}),
        data.clone(),
    )
    .await;
    let methods = (
        "DEFAULT",
        "enabled_import_methods",
        "['glance-direct', 'glance-download']",
    );
    let any_port = ("import_filtering_opts", "allowed_ports", "");
    let app = glance_tests::spawn_app_with(&[
        ("DEFAULT", "auth_strategy", "trusted_headers"),
        methods,
        any_port,
    ])
    .await;
    let catalog = json!([{"type": "image", "name": "glance", "endpoints": [
        {"region": "RegionOne", "publicURL": app.address},
        {"region": "RegionTwo", "publicURL": remote.url, "internalURL": remote.url}
    ]}])
    .to_string();
    let proxy = |req: reqwest::RequestBuilder| {
        req.header("x-identity-status", "Confirmed")
            .header("x-user-id", "u1")
            .header("x-project-id", "p1")
            .header("x-roles", "member,reader")
            .header("x-auth-token", "the-callers-token")
            .header("x-service-catalog", &catalog)
    };
    let res = proxy(app.client.post(app.url("/v2/images")))
        .json(&json!({"name": "x", "disk_format": "qcow2", "container_format": "bare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = proxy(app.client.post(app.url(&format!("/v2/images/{id}/import"))))
        .json(
            &json!({"method": {"name": "glance-download", "glance_region": "regiontwo",
            "glance_image_id": uuid::Uuid::new_v4(), "glance_service_interface": "internal"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let image = loop {
        let image: Value = proxy(app.client.get(app.url(&format!("/v2/images/{id}"))))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if image["status"] == "active" {
            break image;
        }
        assert!(Instant::now() < deadline, "not imported: {image}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(image["os_distro"], "debian");
    assert_eq!(
        *remote.tokens.lock().unwrap(),
        ["the-callers-token", "the-callers-token"]
    );

    // With a token file, the caller's own X-Service-Catalog names nothing.
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let digest = glance_api::tokens::TokenFile::digest("tok");
    std::fs::write(&tokens, format!("{digest} u1 p1 member,reader\n")).unwrap();
    let app = glance_tests::spawn_app_with(&[
        ("DEFAULT", "auth_strategy", "tokens"),
        ("glance_auth", "token_file", tokens.to_str().unwrap()),
        methods,
        any_port,
    ])
    .await;
    let with_token = |req: reqwest::RequestBuilder| {
        req.header("x-auth-token", "tok")
            .header("x-service-catalog", &catalog)
    };
    let res = with_token(app.client.post(app.url("/v2/images")))
        .json(&json!({"name": "x", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = with_token(app.client.post(app.url(&format!("/v2/images/{id}/import"))))
        .json(
            &json!({"method": {"name": "glance-download", "glance_region": "RegionTwo",
            "glance_image_id": uuid::Uuid::new_v4()}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let task = loop {
        let tasks: Value = with_token(app.client.get(app.url(&format!("/v2/images/{id}/tasks"))))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task = tasks["tasks"][0].clone();
        if task["status"] == "failure" || task["status"] == "success" {
            break task;
        }
        assert!(Instant::now() < deadline, "not finished: {tasks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        task["message"],
        "public glance endpoint not found for region RegionTwo"
    );
}
