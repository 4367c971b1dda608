//! Many projects, one service: sharing an image with another project through its members,
//! the quotas and property protections, over HTTP against the all-in-one. Who the caller
//! is (tokens, trusted headers) is in `callers.rs`.

mod common;

use common::sharing::*;
use glance_tests::spawn_app_with;
use serde_json::json;
#[tokio::test(flavor = "multi_thread")]
async fn an_image_shared_with_a_project_is_listed_once_accepted_and_gone_once_removed() {
    let app = spawn_app_with(&[TRUSTED]).await;
    let id = create(
        &app,
        a(),
        json!({"name": "golden", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    assert_eq!(upload(&app, a(), &id, vec![9u8; 4096]).await.0, 204);
    let members = app.url(&format!("/v2/images/{id}/members"));
    let member_b = format!("{members}/project-b");

    // Not shared yet: B cannot see it.
    assert_eq!(
        send(
            app.client
                .get(app.url(&format!("/v2/images/{id}")))
                .headers(b())
        )
        .await
        .0,
        404
    );

    let (status, m) = send(
        app.client
            .post(&members)
            .headers(a())
            .json(&json!({"member": "project-b"})),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["member_id"], "project-b");
    assert_eq!(m["image_id"], id.as_str());
    assert_eq!(m["status"], "pending");
    assert_eq!(m["schema"], "/v2/schemas/member");
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, _) = send(
        app.client
            .post(&members)
            .headers(a())
            .json(&json!({"member": "project-b"})),
    )
    .await;
    assert_eq!(status, 409, "a duplicate member");

    // Pending: B sees the image but does not list it unless asking for pending ones.
    assert_eq!(
        send(
            app.client
                .get(app.url(&format!("/v2/images/{id}")))
                .headers(b())
        )
        .await
        .0,
        200
    );
    assert!(!listed(&app, b(), "", &id).await);
    assert!(listed(&app, b(), "?member_status=pending", &id).await);
    assert!(listed(&app, b(), "?member_status=all", &id).await);
    assert!(!listed(&app, b(), "?member_status=accepted", &id).await);

    // Only the member changes its status; only the owner adds and removes.
    let (status, _) = send(
        app.client
            .put(&member_b)
            .headers(a())
            .json(&json!({"status": "accepted"})),
    )
    .await;
    assert_eq!(status, 403, "the owner cannot accept for B");
    let (status, _) = send(
        app.client
            .put(&member_b)
            .headers(b())
            .json(&json!({"status": "maybe"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(
        app.client
            .post(&members)
            .headers(b())
            .json(&json!({"member": "project-c"})),
    )
    .await;
    assert_eq!(status, 403, "a member cannot share further");
    let (status, m) = send(
        app.client
            .put(&member_b)
            .headers(b())
            .json(&json!({"status": "accepted"})),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["status"], "accepted");

    assert!(listed(&app, b(), "", &id).await);
    assert!(!listed(&app, b(), "?member_status=pending", &id).await);
    let data = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .headers(b())
        .send()
        .await
        .unwrap();
    assert_eq!(data.status(), 200);
    assert_eq!(data.bytes().await.unwrap().len(), 4096);

    // The owner sees every member; a member sees only itself; others see no image.
    let (_, all) = send(
        app.client
            .post(&members)
            .headers(a())
            .json(&json!({"member": "project-c"})),
    )
    .await;
    assert_eq!(all["status"], "pending");
    let (status, list) = send(app.client.get(&members).headers(a())).await;
    assert_eq!(status, 200);
    assert_eq!(list["schema"], "/v2/schemas/members");
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
    let (_, mine) = send(app.client.get(&members).headers(b())).await;
    assert_eq!(mine["members"].as_array().unwrap().len(), 1);
    assert_eq!(mine["members"][0]["member_id"], "project-b");
    let (status, _) = send(
        app.client
            .get(&members)
            .headers(caller("project-d", "member,reader")),
    )
    .await;
    assert_eq!(status, 404);
    let (status, one) = send(app.client.get(&member_b).headers(b())).await;
    assert_eq!((status, one["status"].as_str()), (200, Some("accepted")));
    assert_eq!(
        send(app.client.get(format!("{members}/project-x")).headers(a()))
            .await
            .0,
        404
    );

    // Removing: B can't, the owner can, and then the image is gone for B.
    assert_eq!(send(app.client.delete(&member_b).headers(b())).await.0, 403);
    assert_eq!(send(app.client.delete(&member_b).headers(a())).await.0, 204);
    assert_eq!(send(app.client.delete(&member_b).headers(a())).await.0, 404);
    assert_eq!(
        send(
            app.client
                .get(app.url(&format!("/v2/images/{id}")))
                .headers(b())
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(
            app.client
                .get(app.url(&format!("/v2/images/{id}/file")))
                .headers(b())
        )
        .await
        .0,
        404
    );
    assert!(!listed(&app, b(), "?member_status=all", &id).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_shared_images_have_members() {
    let app = spawn_app_with(&[TRUSTED]).await;
    let id = create(&app, a(), json!({"name": "p", "visibility": "private"})).await;
    let members = app.url(&format!("/v2/images/{id}/members"));
    assert_eq!(send(app.client.get(&members).headers(a())).await.0, 403);
    assert_eq!(
        send(
            app.client
                .post(&members)
                .headers(a())
                .json(&json!({"member": "project-b"}))
        )
        .await
        .0,
        403
    );
    let reader = caller("project-a", "reader");
    let shared = create(&app, a(), json!({"name": "s"})).await;
    let members = app.url(&format!("/v2/images/{shared}/members"));
    assert_eq!(
        send(
            app.client
                .post(&members)
                .headers(reader.clone())
                .json(&json!({"member": "project-b"}))
        )
        .await
        .0,
        403,
        "a reader cannot share"
    );
    assert_eq!(send(app.client.get(&members).headers(reader)).await.0, 200);
    assert_eq!(
        send(
            app.client
                .post(&members)
                .headers(a())
                .json(&json!({"nope": 1}))
        )
        .await
        .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_images_are_listed_only_when_asked_for() {
    let app = spawn_app_with(&[TRUSTED]).await;
    let id = create(&app, a(), json!({"name": "h", "os_hidden": true})).await;
    assert!(!listed(&app, a(), "", &id).await);
    assert!(listed(&app, a(), "?os_hidden=true", &id).await);
    assert_eq!(
        send(
            app.client
                .get(app.url(&format!("/v2/images/{id}")))
                .headers(a())
        )
        .await
        .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn count_quotas_refuse_with_413() {
    let app = spawn_app_with(&[
        TRUSTED,
        ("DEFAULT", "image_member_quota", "1"),
        ("DEFAULT", "image_tag_quota", "2"),
        ("DEFAULT", "image_property_quota", "2"),
    ])
    .await;
    let id = create(&app, a(), json!({"name": "q", "tags": ["t1"], "p1": "v"})).await;
    let members = app.url(&format!("/v2/images/{id}/members"));
    assert_eq!(
        send(
            app.client
                .post(&members)
                .headers(a())
                .json(&json!({"member": "project-b"}))
        )
        .await
        .0,
        200
    );
    let (status, body) = send(
        app.client
            .post(&members)
            .headers(a())
            .json(&json!({"member": "project-c"})),
    )
    .await;
    assert_eq!(status, 413, "{body}");

    let tag = |t: &str| app.url(&format!("/v2/images/{id}/tags/{t}"));
    assert_eq!(send(app.client.put(tag("t2")).headers(a())).await.0, 204);
    assert_eq!(send(app.client.put(tag("t3")).headers(a())).await.0, 413);
    assert_eq!(
        send(app.client.put(tag("t2")).headers(a())).await.0,
        204,
        "no new tag"
    );

    let (status, _) = send(patch(
        &app,
        a(),
        &id,
        json!([{"op": "add", "path": "/p2", "value": "v"}]),
    ))
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(patch(
        &app,
        a(),
        &id,
        json!([{"op": "add", "path": "/p3", "value": "v"}]),
    ))
    .await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = send(patch(
        &app,
        a(),
        &id,
        json!([{"op": "replace", "path": "/p2", "value": "w"}]),
    ))
    .await;
    assert_eq!(status, 200, "changing a value adds nothing");

    let (status, _) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(a())
            .json(&json!({"tags": ["a", "b", "c"]})),
    )
    .await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_storage_quota_counts_a_projects_stored_images() {
    let app = spawn_app_with(&[TRUSTED, ("DEFAULT", "user_storage_quota", "4KB")]).await;
    let body = json!({"name": "q", "disk_format": "raw", "container_format": "bare"});
    let first = create(&app, a(), body.clone()).await;
    assert_eq!(upload(&app, a(), &first, vec![1u8; 3000]).await.0, 204);
    let second = create(&app, a(), body.clone()).await;
    let (status, err) = upload(&app, a(), &second, vec![1u8; 2000]).await;
    assert_eq!(status, 413, "{err}");
    // Chunked, with no size declared: cut off mid-stream, and the 413 names the quota.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..2).map(|_| Ok(vec![1u8; 1500])).collect();
    let (status, err) = send(
        app.client
            .put(app.url(&format!("/v2/images/{second}/file")))
            .headers(a())
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
    )
    .await;
    assert_eq!(status, 413, "{err}");
    assert!(err.to_string().contains("storage quota"), "{err}");
    assert!(err.to_string().contains("1096 bytes remaining"), "{err}");
    // The failed upload left the image queued, and what still fits is accepted.
    assert_eq!(image_as(&app, a(), &second).await["status"], "queued");
    assert_eq!(upload(&app, a(), &second, vec![1u8; 1000]).await.0, 204);
    // Another project has its own quota.
    let theirs = create(&app, b(), body).await;
    assert_eq!(upload(&app, b(), &theirs, vec![1u8; 4000]).await.0, 204);
    // Deleting frees the space.
    assert_eq!(
        send(
            app.client
                .delete(app.url(&format!("/v2/images/{first}")))
                .headers(a())
        )
        .await
        .0,
        204
    );
    let third = create(
        &app,
        a(),
        json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    assert_eq!(upload(&app, a(), &third, vec![1u8; 3000]).await.0, 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_properties_follow_the_protection_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("property-protections.conf");
    std::fs::write(
        &file,
        "[^x_billing_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n\
         [^x_ro_]\ncreate = admin\nread = member,admin\nupdate = !\ndelete = !\n\n\
         [.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n",
    )
    .unwrap();
    let app = spawn_app_with(&[
        TRUSTED,
        (
            "DEFAULT",
            "property_protection_file",
            file.to_str().unwrap(),
        ),
    ])
    .await;
    let (status, _) = send(
        app.client
            .post(app.url("/v2/images"))
            .headers(a())
            .json(&json!({"x_billing_code": "42"})),
    )
    .await;
    assert_eq!(status, 403, "a member may not create it");
    let id = create(&app, a(), json!({"name": "p", "os_distro": "debian"})).await;
    let (status, _) = send(patch(
        &app,
        admin(),
        &id,
        json!([{"op": "add", "path": "/x_billing_code", "value": "42"},
               {"op": "add", "path": "/x_ro_flavor", "value": "gold"}]),
    ))
    .await;
    assert_eq!(status, 200);
    let mine = image_as(&app, a(), &id).await;
    assert!(
        mine.get("x_billing_code").is_none(),
        "hidden from members: {mine}"
    );
    assert_eq!(mine["x_ro_flavor"], "gold");
    assert_eq!(mine["os_distro"], "debian");
    assert_eq!(image_as(&app, admin(), &id).await["x_billing_code"], "42");
    let (status, _) = send(patch(
        &app,
        a(),
        &id,
        json!([{"op": "replace", "path": "/x_ro_flavor", "value": "x"}]),
    ))
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(patch(
        &app,
        admin(),
        &id,
        json!([{"op": "remove", "path": "/x_ro_flavor"}]),
    ))
    .await;
    assert_eq!(status, 403, "nobody deletes it");
    let (status, _) = send(patch(
        &app,
        a(),
        &id,
        json!([{"op": "remove", "path": "/os_distro"}]),
    ))
    .await;
    assert_eq!(status, 200);
}
