//! `auth_strategy = keystone` against a real Keystone (`GLANCE_TEST_KEYSTONE_URL`, started by
//! `scripts/test.sh` from `../shared/reference-keystone`): who a token makes the caller,
//! which tokens are refused and how, the cache, the service token's renewal, Keystone
//! going away and coming back, and two API processes of the mesh validating against it.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use glance_keystone::{Identity, PasswordAuth};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

struct Keystone {
    url: String,
    glance_password: String,
}

/// The test Keystone. Without one the test fails rather than passing untested
/// (`scripts/test.sh` starts one; with `GLANCE_TEST_WITH_KEYSTONE=0` it leaves this whole
/// binary out, and says so).
fn keystone() -> Keystone {
    let url = std::env::var("GLANCE_TEST_KEYSTONE_URL").unwrap_or_else(|_| {
        panic!(
            "GLANCE_TEST_KEYSTONE_URL is unset: run ./scripts/test.sh (it starts Keystone), or \
             leave this binary out (scripts/test.sh does with GLANCE_TEST_WITH_KEYSTONE=0)"
        )
    });
    Keystone {
        url,
        glance_password: std::env::var("GLANCE_TEST_KEYSTONE_GLANCE_PASSWORD")
            .unwrap_or_else(|_| "glance".into()),
    }
}

impl Keystone {
    fn identity(&self) -> Identity {
        Identity::new(&self.url, Duration::from_secs(30)).unwrap()
    }

    /// A project-scoped token of `user` (whose password is its name, as the reference
    /// Keystone seeds them) in `project`, and its project's id.
    async fn token(&self, user: &str, project: &str) -> (String, String) {
        let password = if user == "glance" {
            self.glance_password.clone()
        } else {
            user.to_owned()
        };
        let issued = self
            .identity()
            .issue(&PasswordAuth {
                username: user.into(),
                password,
                user_domain_name: Some("Default".into()),
                project_name: Some(project.into()),
                project_domain_name: Some("Default".into()),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("token for {user}: {e}"));
        (issued.token, issued.info.project_id.unwrap())
    }

    /// Revokes `token` (a user may revoke its own).
    async fn revoke(&self, token: &str) {
        let res = reqwest::Client::new()
            .delete(format!("{}/v3/auth/tokens", self.url.trim_end_matches('/')))
            .header("x-auth-token", token)
            .header("x-subject-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "revoke: {}", res.text().await.unwrap());
    }

    /// `[keystone_authtoken]` for the service user, as an operator writes it, with the
    /// identity URL given.
    fn settings(&self, auth_url: &str) -> Vec<(&'static str, &'static str, String)> {
        let ks = "keystone_authtoken";
        vec![
            ("DEFAULT", "auth_strategy", "keystone".into()),
            (ks, "www_authenticate_uri", self.url.clone()),
            (ks, "auth_url", auth_url.to_owned()),
            (ks, "auth_type", "password".into()),
            (ks, "username", "glance".into()),
            (ks, "password", self.glance_password.clone()),
            (ks, "project_name", "service".into()),
            (ks, "user_domain_name", "Default".into()),
            (ks, "project_domain_name", "Default".into()),
            (ks, "service_token_roles", "service".into()),
            (ks, "service_token_roles_required", "true".into()),
        ]
    }
}

/// The all-in-one over HTTP, with its state (for the validator's call count).
struct App {
    url: String,
    state: actix_web::web::Data<glance_api::AppState>,
    _data: tempfile::TempDir,
    join: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.join.abort();
    }
}

impl App {
    fn keystone(&self) -> Arc<glance_api::keystone::KeystoneAuth> {
        self.state.config().keystone.clone().unwrap()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        req.send().await.unwrap()
    }

    /// The status of `method path` with `token`.
    async fn status(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::StatusCode {
        self.call(method, path, token).await.status()
    }

    async fn create(&self, token: &str, name: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v2/images", self.url))
            .header("x-auth-token", token)
            .json(&json!({"name": name, "disk_format": "raw", "container_format": "bare"}))
            .send()
            .await
            .unwrap()
    }
}

async fn try_spawn(settings: &[(&str, &str, String)]) -> anyhow::Result<App> {
    let data = tempfile::tempdir().unwrap();
    let mut raw = glance_config::RawConfig::defaults();
    raw.set("DEFAULT", "workers", "2");
    for (section, option, value) in settings {
        raw.set(section, option, value);
    }
    if let Some(url) = glance_tests::fresh_database_url().await {
        raw.set("database", "connection", &url);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = glance_all_in_one::build_from_raw(&raw, data.path(), listener).await?;
    let state = app.state();
    let join = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    Ok(App {
        url: format!("http://127.0.0.1:{port}"),
        state,
        _data: data,
        join,
    })
}

async fn spawn(settings: &[(&str, &str, String)]) -> App {
    try_spawn(settings).await.expect("service builds")
}

fn with(
    mut settings: Vec<(&'static str, &'static str, String)>,
    extra: &[(&'static str, &'static str, &str)],
) -> Vec<(&'static str, &'static str, String)> {
    settings.extend(extra.iter().map(|(s, o, v)| (*s, *o, v.to_string())));
    settings
}

#[tokio::test]
async fn a_keystone_token_makes_the_caller_its_user_project_and_roles() {
    let ks = keystone();
    let app = spawn(&ks.settings(&ks.url)).await;
    let (demo, demo_project) = ks.token("demo", "demo").await;
    let (alt, _) = ks.token("alt", "alt").await;
    let (reader, _) = ks.token("reader", "demo").await;

    let res = app.create(&demo, "mine").await;
    assert_eq!(res.status(), 201);
    let image: Value = res.json().await.unwrap();
    assert_eq!(image["owner"], demo_project.as_str());
    let id = image["id"].as_str().unwrap();

    let path = format!("/v2/images/{id}");
    assert_eq!(
        app.status(reqwest::Method::GET, &path, Some(&demo)).await,
        200
    );
    // Another project does not see a private image; a reader of the project does.
    assert_eq!(
        app.status(reqwest::Method::GET, &path, Some(&alt)).await,
        404
    );
    assert_eq!(
        app.status(reqwest::Method::GET, &path, Some(&reader)).await,
        200
    );
    // A reader may not write (Glance's secure RBAC defaults).
    assert_eq!(app.create(&reader, "nope").await.status(), 403);
    assert_eq!(
        app.status(reqwest::Method::DELETE, &path, Some(&reader))
            .await,
        403
    );
    assert_eq!(
        app.status(reqwest::Method::DELETE, &path, Some(&demo))
            .await,
        204
    );
}

#[tokio::test]
async fn missing_garbage_and_revoked_tokens_are_401_with_keystones_uri() {
    let ks = keystone();
    let app = spawn(&ks.settings(&ks.url)).await;
    let (revoked, _) = ks.token("demo", "demo").await;
    ks.revoke(&revoked).await;
    for token in [None, Some("garbage"), Some(revoked.as_str())] {
        let res = app.call(reqwest::Method::GET, "/v2/images", token).await;
        assert_eq!(res.status(), 401, "token {token:?}");
        assert_eq!(
            res.headers()["www-authenticate"],
            format!("Keystone uri=\"{}\"", ks.url).as_str(),
            "token {token:?}"
        );
    }
    // Identity is not needed for version discovery.
    assert_eq!(
        app.status(reqwest::Method::GET, "/versions", None).await,
        200
    );
}

#[tokio::test]
async fn a_cold_token_costs_one_keystone_call_however_many_requests_bring_it() {
    let ks = keystone();
    let app = spawn(&ks.settings(&ks.url)).await;
    let (demo, _) = ks.token("demo", "demo").await;
    let before = app.keystone().validations();
    let calls = (0..24).map(|_| app.call(reqwest::Method::GET, "/v2/images", Some(&demo)));
    for res in futures::future::join_all(calls).await {
        assert_eq!(res.status(), 200);
    }
    assert_eq!(app.keystone().validations() - before, 1);
    // Cached, a revoked token still works until token_cache_time has passed, as with
    // keystonemiddleware; an invalid one is remembered as invalid too.
    ks.revoke(&demo).await;
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&demo))
            .await,
        200
    );
    for _ in 0..3 {
        assert_eq!(
            app.status(reqwest::Method::GET, "/v2/images", Some("not-a-token"))
                .await,
            401
        );
    }
    assert_eq!(app.keystone().validations() - before, 2);
}

#[tokio::test]
async fn without_the_cache_a_revoked_token_is_refused_at_once() {
    let ks = keystone();
    let settings = with(
        ks.settings(&ks.url),
        &[("keystone_authtoken", "token_cache_time", "-1")],
    );
    let app = spawn(&settings).await;
    let (demo, _) = ks.token("demo", "demo").await;
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&demo))
            .await,
        200
    );
    ks.revoke(&demo).await;
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&demo))
            .await,
        401
    );
}

#[tokio::test]
async fn a_service_token_must_be_valid_and_carry_a_service_role() {
    let ks = keystone();
    let app = spawn(&ks.settings(&ks.url)).await;
    let (demo, _) = ks.token("demo", "demo").await;
    let (glance, _) = ks.token("glance", "service").await;
    let list = |service: &str| {
        reqwest::Client::new()
            .get(format!("{}/v2/images", app.url))
            .header("x-auth-token", &demo)
            .header("x-service-token", service.to_owned())
            .send()
    };
    assert_eq!(list(&glance).await.unwrap().status(), 200);
    // demo has no service role; a garbage service token is no token.
    assert_eq!(list(&demo).await.unwrap().status(), 401);
    assert_eq!(list("garbage").await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_refused_service_token_is_renewed_and_the_request_succeeds() {
    let ks = keystone();
    let app = spawn(&ks.settings(&ks.url)).await;
    let first = app.keystone().service_token_now().await.unwrap();
    ks.revoke(&first).await;
    // A new user token must be validated with a service token Keystone now refuses.
    let (demo, _) = ks.token("demo", "demo").await;
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&demo))
            .await,
        200
    );
    let second = app.keystone().service_token_now().await.unwrap();
    assert_ne!(first, second, "the service token was renewed");
}

#[tokio::test]
async fn wrong_service_credentials_stop_the_start_naming_the_options() {
    let ks = keystone();
    let mut settings = ks.settings(&ks.url);
    for s in settings.iter_mut().filter(|s| s.1 == "password") {
        s.2 = "wrong".into();
    }
    let Err(e) = try_spawn(&settings).await else {
        panic!("a service with a wrong Keystone password started")
    };
    let message = format!("{e:#}");
    assert!(
        message.contains("[keystone_authtoken] username, password"),
        "{message}"
    );
}

#[tokio::test]
async fn keystone_unreachable_is_503_and_the_service_recovers_when_it_is_back() {
    let ks = keystone();
    let upstream = ks
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut proxy = Forwarder::start(upstream).await;
    let app = spawn(&ks.settings(&proxy.url())).await;
    let (demo, _) = ks.token("demo", "demo").await;
    let (alt, _) = ks.token("alt", "alt").await;
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&demo))
            .await,
        200
    );

    proxy.stop();
    // A token validated before the outage is served from the cache; a new one cannot be
    // checked, which is not the caller's fault: 503, not 401.
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&demo))
            .await,
        200
    );
    let res = app
        .call(reqwest::Method::GET, "/v2/images", Some(&alt))
        .await;
    assert_eq!(res.status(), 503);
    assert!(res.text().await.unwrap().contains("Keystone"));

    proxy.resume().await;
    assert_eq!(
        app.status(reqwest::Method::GET, "/v2/images", Some(&alt))
            .await,
        200
    );
}

#[tokio::test]
async fn two_api_processes_of_the_mesh_validate_against_one_keystone() {
    let ks = keystone();
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry");
    let env: Vec<(String, String)> = ks
        .settings(&ks.url)
        .into_iter()
        .map(|(section, option, value)| {
            (
                format!(
                    "GLANCE__{}__{}",
                    section.to_ascii_uppercase(),
                    option.to_ascii_uppercase()
                ),
                value,
            )
        })
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_api1, one) = mesh.api_with("api-1", &env).await;
    let (_api2, two) = mesh.api_with("api-2", &env).await;
    let (demo, demo_project) = ks.token("demo", "demo").await;
    let (alt, _) = ks.token("alt", "alt").await;
    let http = reqwest::Client::new();

    let res = http
        .post(format!("{one}/v2/images"))
        .header("x-auth-token", &demo)
        .json(&json!({"name": "meshed", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let image: Value = res.json().await.unwrap();
    assert_eq!(image["owner"], demo_project.as_str());
    let path = format!("{two}/v2/images/{}", image["id"].as_str().unwrap());
    let show = |token: Option<&str>| {
        let mut req = http.get(&path);
        if let Some(t) = token {
            req = req.header("x-auth-token", t.to_owned());
        }
        req.send()
    };
    assert_eq!(show(Some(&demo)).await.unwrap().status(), 200);
    assert_eq!(show(Some(&alt)).await.unwrap().status(), 404);
    let res = show(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    // Trusted headers are not believed by an API that validates tokens.
    let res = http
        .get(&path)
        .header("x-identity-status", "Confirmed")
        .header("x-roles", "admin")
        .header("x-project-id", "whoever")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// A TCP forwarder to Keystone that the test can take down (every connection reset, the
/// port closed) and bring back on the same port.
struct Forwarder {
    port: u16,
    upstream: String,
    tasks: JoinSet<()>,
}

impl Forwarder {
    async fn start(upstream: String) -> Self {
        let port = common::free_port();
        let mut f = Self {
            port,
            upstream,
            tasks: JoinSet::new(),
        };
        f.resume().await;
        f
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v3", self.port)
    }

    fn stop(&mut self) {
        self.tasks.abort_all();
    }

    async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let upstream = self.upstream.clone();
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }
}
