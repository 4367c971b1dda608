//! Who the caller is, over HTTP against the all-in-one: tokens from the token file, a
//! reload that picks up new and revoked tokens and policy, and trusted headers.

mod common;

use common::sharing::*;
use glance_tests::spawn_app_with;
use reqwest::header::HeaderMap;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_the_token_file_identify_callers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let digest = |t: &str| glance_api::tokens::TokenFile::digest(t);
    std::fs::write(
        &file,
        format!(
            "# digest user project roles\n{} alice project-a member\n{} root admin-project admin\n",
            digest("tok-alice"),
            digest("tok-root")
        ),
    )
    .unwrap();
    let app = spawn_app_with(&[
        ("DEFAULT", "auth_strategy", "tokens"),
        ("glance_auth", "token_file", file.to_str().unwrap()),
    ])
    .await;
    let list = |token: Option<&str>| {
        let mut req = app.client.get(app.url("/v2/images"));
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        req
    };
    assert_eq!(send(list(None)).await.0, 401);
    assert_eq!(send(list(Some("tok-alic"))).await.0, 401);
    assert_eq!(
        send(list(Some(&digest("tok-alice")))).await.0,
        401,
        "the digest is no token"
    );
    // Trusted headers mean nothing here.
    assert_eq!(
        send(app.client.get(app.url("/v2/images")).headers(admin()))
            .await
            .0,
        401
    );
    assert_eq!(send(list(Some("tok-alice"))).await.0, 200);

    let (status, img) = send(
        app.client
            .post(app.url("/v2/images"))
            .header("x-auth-token", "tok-alice")
            .json(&json!({"name": "t"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(img["owner"], "project-a");
    let id = img["id"].as_str().unwrap();
    let (status, _) = send(
        patch(
            &app,
            HeaderMap::new(),
            id,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .header("x-auth-token", "tok-alice"),
    )
    .await;
    assert_eq!(status, 403, "a member may not publicize");
    let (status, _) = send(
        patch(
            &app,
            HeaderMap::new(),
            id,
            json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
        )
        .header("x-auth-token", "tok-root"),
    )
    .await;
    assert_eq!(status, 200, "the admin may");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_without_a_token_file_refuse_to_start() {
    let mut raw = glance_config::RawConfig::defaults();
    raw.set("DEFAULT", "auth_strategy", "tokens");
    let err =
        glance_api::ApiConfig::from_raw(&raw, glance_config::AuthStrategy::NoAuth).unwrap_err();
    assert!(err.contains("token_file"), "{err}");
    raw.set("glance_auth", "token_file", "/nonexistent/tokens");
    assert!(glance_api::ApiConfig::from_raw(&raw, glance_config::AuthStrategy::NoAuth).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_picks_up_new_and_revoked_tokens_and_policy() {
    use glance_service::Lifecycle;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let policy = dir.path().join("policy.json");
    let conf = dir.path().join("glance-api.conf");
    let digest = glance_api::tokens::TokenFile::digest;
    std::fs::write(
        &tokens,
        format!("{} alice project-a member\n", digest("old")),
    )
    .unwrap();
    std::fs::write(&policy, "{}").unwrap();
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nauth_strategy = tokens\nworkers = 2\n\n[glance_auth]\ntoken_file = {}\n\n\
             [oslo_policy]\npolicy_file = {}\n",
            tokens.display(),
            policy.display()
        ),
    )
    .unwrap();
    let raw = glance_config::RawConfig::load(std::slice::from_ref(&conf)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let data = tempfile::tempdir().unwrap();
    let app = glance_all_in_one::build_from_raw(&raw, data.path(), listener)
        .await
        .unwrap();
    let lifecycle = glance_api::lifecycle::ApiLifecycle {
        state: app.state(),
        server: app.handle(),
        connections: app.connections(),
        config_files: vec![conf.clone()],
        default_auth: glance_config::AuthStrategy::NoAuth,
        workers: app.workers(),
    };
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    let client = reqwest::Client::new();
    let list = |token: &'static str| {
        client
            .get(format!("{url}/v2/images"))
            .header("x-auth-token", token)
            .send()
    };
    assert_eq!(list("old").await.unwrap().status(), 200);
    assert_eq!(list("new").await.unwrap().status(), 401);

    std::fs::write(&tokens, format!("{} bob project-b member\n", digest("new"))).unwrap();
    std::fs::write(&policy, r#"{"get_images": "!"}"#).unwrap();
    lifecycle.reload().unwrap();
    assert_eq!(list("old").await.unwrap().status(), 401, "revoked");
    assert_eq!(
        list("new").await.unwrap().status(),
        403,
        "listing is now forbidden"
    );

    // A broken file is refused and the running settings stay.
    std::fs::write(&policy, r#"{"get_images": "(role:x or"}"#).unwrap();
    assert!(lifecycle.reload().is_err());
    assert_eq!(list("new").await.unwrap().status(), 403);
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_headers_name_the_project_by_either_header_and_need_confirmation() {
    let app = spawn_app_with(&[TRUSTED]).await;
    let mut tenant = HeaderMap::new();
    tenant.insert("x-identity-status", "Confirmed".parse().unwrap());
    tenant.insert("x-tenant-id", "project-t".parse().unwrap());
    tenant.insert("x-user-id", "u".parse().unwrap());
    tenant.insert("x-roles", "member".parse().unwrap());
    let (status, img) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(tenant.clone())
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{img}");
    assert_eq!(img["owner"], "project-t");
    let mut invalid = tenant;
    invalid.insert("x-identity-status", "Invalid".parse().unwrap());
    assert_eq!(
        send(app.client.get(app.url("/v2/images")).headers(invalid))
            .await
            .0,
        401
    );
    // A reader may look but not create; nobody creates for another project.
    let (status, _) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(caller("project-a", "reader"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(a())
            .json(&json!({"owner": "project-b"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, img) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(admin())
            .json(&json!({"owner": "project-b"})),
    )
    .await;
    assert_eq!((status, img["owner"].as_str()), (201, Some("project-b")));
}
