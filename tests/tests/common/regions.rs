//! Two regions for the glance-download tests: a Keystone of the test's own (the reference
//! Keystone, started from `../shared/reference-keystone`, so the catalog other tests read is
//! left alone), one of our all-in-ones per region, and the clients (the `glance` CLI and
//! openstacksdk) as the demo user of RegionOne.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use glance_keystone::{Identity, PasswordAuth};
use glance_tests::digests;
use serde_json::{json, Value};
// ---------------------------------------------------------------------------------------
// A Keystone of our own.

pub struct Keystone {
    pub url: String,
    pub home: tempfile::TempDir,
    pub scripts: PathBuf,
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let _ = Command::new(self.scripts.join("stop.sh"))
            .env("KEYSTONE_REF_HOME", self.home.path())
            .output();
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Keystone {
    /// Starts Keystone with its RegionOne image endpoint at `image_url` (a few tries, as
    /// scripts/test.sh does: a free port may be taken before uWSGI binds it).
    pub fn start(image_url: &str) -> Keystone {
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

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
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
    pub async fn add_region(&self, region: &str, url: &str) {
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

    pub fn settings(&self) -> Vec<(&'static str, &'static str, String)> {
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

pub struct App {
    pub url: String,
    pub _data: tempfile::TempDir,
    pub join: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.join.abort();
    }
}

pub async fn spawn(listener: TcpListener, settings: &[(&str, &str, String)]) -> App {
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
    pub async fn send(&self, token: &str, req: reqwest::RequestBuilder) -> reqwest::Response {
        req.header("x-auth-token", token).send().await.unwrap()
    }

    pub async fn json(&self, token: &str, path: &str) -> Value {
        let res = self
            .send(
                token,
                reqwest::Client::new().get(format!("{}{path}", self.url)),
            )
            .await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    pub async fn create(&self, token: &str, body: Value) -> String {
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
    pub async fn active(&self, token: &str, data: &[u8], properties: Value) -> String {
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

    pub async fn import(&self, token: &str, id: &str, method: Value) -> reqwest::Response {
        self.send(
            token,
            reqwest::Client::new()
                .post(format!("{}/v2/images/{id}/import", self.url))
                .json(&json!({ "method": method })),
        )
        .await
    }

    /// The image's import task once it finished, and the image then.
    pub async fn finished(&self, token: &str, id: &str) -> (Value, Value) {
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

    pub async fn bytes(&self, token: &str, id: &str) -> Vec<u8> {
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
pub struct Regions {
    pub ks: Keystone,
    pub one: App,
    pub two: App,
}

pub async fn regions() -> Regions {
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

pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

pub fn remote_properties() -> Value {
    json!({"hw_disk_bus": "scsi", "os_distro": "cirros", "os_type": "linux",
           "trait:CUSTOM_FAST": "required", "color": "blue"})
}

pub fn assert_imported(image: &Value, data: &[u8]) {
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

pub fn venv(tool: &str) -> PathBuf {
    let path = repo().join("target/venv/bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/test.sh (it makes the venv)",
        path.display()
    );
    path
}

/// `cmd` as the demo user of RegionOne, through the catalog of `keystone`.
pub fn as_demo(cmd: &mut Command, keystone: &str) -> String {
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

pub fn glance_cli(keystone: &str, args: &[&str]) -> String {
    // With stdin open the client takes it for image data: close it.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" \"$@\" <&-")
        .arg(venv("glance"))
        .args(args);
    as_demo(&mut cmd, keystone)
}

pub fn id_in(table: &str) -> String {
    table
        .lines()
        .find(|l| l.split('|').nth(1).is_some_and(|c| c.trim() == "id"))
        .and_then(|l| l.split('|').nth(2))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|| panic!("no id in:\n{table}"))
}

pub const SDK_IMPORT: &str = r#"
import sys, openstack
conn = openstack.connect(region_name="RegionOne")
image = conn.image.create_image(name="via-sdk", disk_format="qcow2", container_format="ovf")
conn.image.import_image(image, method="glance-download", remote_region="RegionTwo",
                        remote_image_id=sys.argv[1], remote_service_interface="public")
print(image.id)
"#;

pub fn sdk_import(keystone: &str, remote_id: &str) -> String {
    let mut cmd = Command::new(venv("python"));
    cmd.args(["-c", SDK_IMPORT, remote_id]);
    as_demo(&mut cmd, keystone).trim().to_owned()
}

pub async fn on_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
