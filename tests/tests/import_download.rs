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

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glance_keystone::{Identity, PasswordAuth};
use glance_tests::digests;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// A Keystone of our own.

struct Keystone {
    url: String,
    home: tempfile::TempDir,
    scripts: PathBuf,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = Command::new(self.scripts.join("stop.sh"))
            .env("KEYSTONE_REF_HOME", self.home.path())
            .output();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Keystone {
    /// Starts Keystone with its RegionOne image endpoint at `image_url` (a few tries, as
    /// scripts/test.sh does: a free port may be taken before uWSGI binds it).
    fn start(image_url: &str) -> Keystone {
        let scripts = std::env::var("KEYSTONE_SCRIPTS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join("../shared/reference-keystone"));
        let venv = std::env::var("KEYSTONE_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo().join("target/keystone-venv"));
        assert!(
            scripts.join("start.sh").exists(),
            "the reference Keystone is not at {} (KEYSTONE_SCRIPTS to point elsewhere)",
            scripts.display()
        );
        let mut log = String::new();
        for _ in 0..3 {
            let home = tempfile::tempdir().unwrap();
            let port = free_port();
            let out = Command::new(scripts.join("start.sh"))
                .env("KEYSTONE_REF_HOME", home.path())
                .env("KEYSTONE_REF_PORT", port.to_string())
                .env("VENV", &venv)
                .env("IMAGE_URL", image_url)
                .output()
                .unwrap();
            let ks = Keystone {
                url: format!("http://127.0.0.1:{port}"),
                home,
                scripts: scripts.clone(),
            };
            if out.status.success() {
                return ks;
            }
            log.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        panic!("Keystone would not start:\n{log}");
    }

    async fn token(&self, user: &str, password: &str, project: &str) -> String {
        Identity::new(&self.url, Duration::from_secs(30))
            .unwrap()
            .issue(&PasswordAuth {
                username: user.into(),
                password: password.into(),
                user_domain_name: Some("Default".into()),
                project_name: Some(project.into()),
                project_domain_name: Some("Default".into()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("token for {user}: {e}"))
            .token
    }

    /// Registers `region` with a public and an internal image endpoint at `url`, as an
    /// operator does with the Identity API.
    async fn add_region(&self, region: &str, url: &str) {
        let admin = self.token("admin", "ADMIN_PASS", "admin").await;
        let http = reqwest::Client::new();
        let v3 = format!("{}/v3", self.url);
        let res = http
            .post(format!("{v3}/regions"))
            .header("x-auth-token", &admin)
            .json(&json!({"region": {"id": region}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let services: Value = http
            .get(format!("{v3}/services?type=image"))
            .header("x-auth-token", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let service = services["services"][0]["id"].as_str().unwrap().to_owned();
        for interface in ["public", "internal"] {
            let res = http
                .post(format!("{v3}/endpoints"))
                .header("x-auth-token", &admin)
                .json(
                    &json!({"endpoint": {"service_id": service, "interface": interface,
                    "region_id": region, "url": url}}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        }
    }

    fn settings(&self) -> Vec<(&'static str, &'static str, String)> {
        let ks = "keystone_authtoken";
        vec![
            ("DEFAULT", "auth_strategy", "keystone".into()),
            (ks, "www_authenticate_uri", self.url.clone()),
            (ks, "auth_url", self.url.clone()),
            (ks, "auth_type", "password".into()),
            (ks, "username", "glance".into()),
            (ks, "password", "glance".into()),
            (ks, "project_name", "service".into()),
            (ks, "user_domain_name", "Default".into()),
            (ks, "project_domain_name", "Default".into()),
            (
                "DEFAULT",
                "enabled_import_methods",
                "['glance-direct', 'web-download', 'copy-image', 'glance-download']".into(),
            ),
            // Our regions listen on loopback ports.
            ("import_filtering_opts", "allowed_ports", String::new()),
        ]
    }
}

// ---------------------------------------------------------------------------------------
// Our all-in-ones, one per region.

struct App {
    url: String,
    _data: tempfile::TempDir,
    join: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.join.abort();
    }
}

async fn spawn(listener: TcpListener, settings: &[(&str, &str, String)]) -> App {
    let data = tempfile::tempdir().unwrap();
    let mut raw = glance_config::RawConfig::defaults();
    raw.set("DEFAULT", "workers", "2");
    for (section, option, value) in settings {
        raw.set(section, option, value);
    }
    if let Some(url) = glance_tests::fresh_database_url().await {
        raw.set("database", "connection", &url);
    }
    let port = listener.local_addr().unwrap().port();
    let app = glance_all_in_one::build_from_raw(&raw, data.path(), listener)
        .await
        .expect("service builds");
    let join = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    App {
        url: format!("http://127.0.0.1:{port}"),
        _data: data,
        join,
    }
}

impl App {
    async fn send(&self, token: &str, req: reqwest::RequestBuilder) -> reqwest::Response {
        req.header("x-auth-token", token).send().await.unwrap()
    }

    async fn json(&self, token: &str, path: &str) -> Value {
        let res = self
            .send(
                token,
                reqwest::Client::new().get(format!("{}{path}", self.url)),
            )
            .await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    async fn create(&self, token: &str, body: Value) -> String {
        let res = self
            .send(
                token,
                reqwest::Client::new()
                    .post(format!("{}/v2/images", self.url))
                    .json(&body),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let image: Value = res.json().await.unwrap();
        image["id"].as_str().unwrap().to_owned()
    }

    /// An active image of `data` with `properties`.
    async fn active(&self, token: &str, data: &[u8], properties: Value) -> String {
        let mut body = json!({"name": "source", "disk_format": "raw", "container_format": "bare"});
        body.as_object_mut()
            .unwrap()
            .extend(properties.as_object().unwrap().clone());
        let id = self.create(token, body).await;
        let res = self
            .send(
                token,
                reqwest::Client::new()
                    .put(format!("{}/v2/images/{id}/file", self.url))
                    .header("content-type", "application/octet-stream")
                    .body(data.to_vec()),
            )
            .await;
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        id
    }

    async fn import(&self, token: &str, id: &str, method: Value) -> reqwest::Response {
        self.send(
            token,
            reqwest::Client::new()
                .post(format!("{}/v2/images/{id}/import", self.url))
                .json(&json!({ "method": method })),
        )
        .await
    }

    /// The image's import task once it finished, and the image then.
    async fn finished(&self, token: &str, id: &str) -> (Value, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let tasks = self.json(token, &format!("/v2/images/{id}/tasks")).await;
            if let Some(task) = tasks["tasks"].as_array().and_then(|t| t.first()) {
                if matches!(task["status"].as_str(), Some("success" | "failure")) {
                    return (
                        task.clone(),
                        self.json(token, &format!("/v2/images/{id}")).await,
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "import of {id} did not finish: {tasks}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn bytes(&self, token: &str, id: &str) -> Vec<u8> {
        let res = self
            .send(
                token,
                reqwest::Client::new().get(format!("{}/v2/images/{id}/file", self.url)),
            )
            .await;
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap().to_vec()
    }
}

/// Keystone with RegionOne (`one`) and RegionTwo (`two`), each one of our all-in-ones.
struct Regions {
    ks: Keystone,
    one: App,
    two: App,
}

async fn regions() -> Regions {
    let (l1, l2) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let (u1, u2) = (
        format!("http://127.0.0.1:{}", l1.local_addr().unwrap().port()),
        format!("http://127.0.0.1:{}", l2.local_addr().unwrap().port()),
    );
    let ks = tokio::task::spawn_blocking(move || Keystone::start(&u1))
        .await
        .unwrap();
    ks.add_region("RegionTwo", &u2).await;
    let settings = ks.settings();
    let one = spawn(l1, &settings).await;
    let two = spawn(l2, &settings).await;
    Regions { ks, one, two }
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

fn remote_properties() -> Value {
    json!({"hw_disk_bus": "scsi", "os_distro": "cirros", "os_type": "linux",
           "trait:CUSTOM_FAST": "required", "color": "blue"})
}

fn assert_imported(image: &Value, data: &[u8]) {
    let (md5, sha512) = digests(data);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], data.len(), "{image}");
    assert_eq!(image["checksum"], md5.as_str());
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], sha512.as_str());
    // The remote's formats replace those the local image was created with.
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(image["container_format"], "bare");
    // `extra_properties`' default prefixes are copied, and nothing else.
    assert_eq!(image["hw_disk_bus"], "scsi");
    assert_eq!(image["os_distro"], "cirros");
    assert_eq!(image["os_type"], "linux");
    assert_eq!(image["trait:CUSTOM_FAST"], "required");
    assert!(image.get("color").is_none(), "{image}");
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
}

// ---------------------------------------------------------------------------------------
// The clients.

fn venv(tool: &str) -> PathBuf {
    let path = repo().join("target/venv/bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test.sh (it makes the venv)",
        path.display()
    );
    path
}

/// `cmd` as the demo user of RegionOne, through the catalog of `keystone`.
fn as_demo(cmd: &mut Command, keystone: &str) -> String {
    cmd.env("OS_AUTH_URL", format!("{keystone}/v3"))
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_USERNAME", "demo")
        .env("OS_PASSWORD", "demo")
        .env("OS_PROJECT_NAME", "demo")
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_REGION_NAME", "RegionOne")
        .env_remove("OS_IMAGE_URL")
        .env_remove("OS_AUTH_TOKEN")
        .env_remove("OS_CLOUD");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn glance_cli(keystone: &str, args: &[&str]) -> String {
    // With stdin open the client takes it for image data: close it.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" <&-")
        .arg(venv("glance"))
        .args(args);
    as_demo(&mut cmd, keystone)
}

fn id_in(table: &str) -> String {
    table
        .lines()
        .find(|l| l.split('|').nth(1).is_some_and(|c| c.trim() == "id"))
        .and_then(|l| l.split('|').nth(2))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| panic!("no id in:\n{table}"))
}

const SDK_IMPORT: &str = r#"
import sys, openstack
conn = openstack.connect(region_name="RegionOne")
image = conn.image.create_image(name="via-sdk", disk_format="qcow2", container_format="ovf")
conn.image.import_image(image, method="glance-download", remote_region="RegionTwo",
                        remote_image_id=sys.argv[1], remote_service_interface="public")
print(image.id)
"#;

fn sdk_import(keystone: &str, remote_id: &str) -> String {
    let mut cmd = Command::new(venv("python"));
    cmd.args(["-c", SDK_IMPORT, remote_id]);
    as_demo(&mut cmd, keystone).trim().to_owned()
}

async fn on_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

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
