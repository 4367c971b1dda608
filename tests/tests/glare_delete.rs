//! Glare's delayed delete in the embedded mode: a deleted artifact waits, `deleted`, with
//! its blobs, until the in-process scrubber removes both; a type may opt out; deleting it
//! again removes it at once. On PostgreSQL with `GLANCE_TEST_DATABASE=postgres`.

mod common;

use std::time::Duration;

use common::glare::{files_under, spawn_glare_with, Glare, Who};
use common::wait_until;
use reqwest::Method;
use serde_json::{json, Value};

/// An images artifact of project A named `name`, with a blob; returns its id.
async fn image_with_blob(g: &Glare, name: &str) -> String {
    let id = g
        .create(
            Who::MemberA,
            json!({"name": name, "version": "1.0", "disk_format": "raw",
                   "container_format": "bare"}),
        )
        .await;
    let (status, doc) = g
        .upload(
            Who::MemberA,
            &format!("/artifacts/images/{id}/image"),
            vec![5u8; 50_000],
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    id
}

fn ids(list: &Value) -> Vec<&str> {
    list["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_delete_keeps_the_artifact_deleted_until_the_scrubber_removes_it() {
    let g = spawn_glare_with(&[
        ("DEFAULT", "delayed_delete", "true"),
        ("DEFAULT", "wakeup_time", "1"),
        ("DEFAULT", "scrub_time", "4"),
    ])
    .await;
    let images = g.data_dir.path().join("images");
    let id = image_with_blob(&g, "doomed").await;
    let show = format!("/artifacts/images/{id}");
    assert_eq!(files_under(&images), 1);

    g.expect(Who::MemberA, Method::DELETE, &show, None, 204)
        .await;
    // Still there, `deleted`, with its data; out of every list; not downloadable; frozen.
    let doc = g.expect(Who::MemberA, Method::GET, &show, None, 200).await;
    assert_eq!(doc["status"], "deleted", "{doc}");
    assert_eq!(doc["image"]["status"], "active", "{doc}");
    assert_eq!(files_under(&images), 1, "the blob waits for the scrubber");
    for path in ["/artifacts/images", "/artifacts/all"] {
        let list = g.expect(Who::MemberA, Method::GET, path, None, 200).await;
        assert!(!ids(&list).contains(&id.as_str()), "{path}: {list}");
    }
    let list = g
        .expect(
            Who::Admin,
            Method::GET,
            "/artifacts/images?status=deleted",
            None,
            200,
        )
        .await;
    assert!(ids(&list).is_empty(), "{list}");
    let (status, _, _) = g
        .raw(
            Who::MemberA,
            Method::GET,
            &format!("{show}/image"),
            None,
            vec![],
        )
        .await;
    assert_eq!(status, 403);
    let (status, doc) = g
        .call(
            Who::MemberA,
            Method::PATCH,
            &show,
            Some(json!([{"op": "replace", "path": "/name", "value": "revived"}])),
        )
        .await;
    assert_eq!(status, 403, "{doc}");
    let (status, _) = g
        .upload(Who::MemberA, &format!("{show}/image"), b"more".to_vec())
        .await;
    assert_eq!(status, 403);
    // Its name and version are free again.
    let again = g
        .create(
            Who::MemberA,
            json!({"name": "doomed", "version": "1.0", "disk_format": "raw",
                   "container_format": "bare"}),
        )
        .await;
    assert_ne!(again, id);

    wait_until(
        "the scrubber to remove the artifact and its blob",
        Duration::from_secs(60),
        || async {
            let (status, _) = g.call(Who::Admin, Method::GET, &show, None).await;
            status == 404 && files_under(&images) == 0
        },
    )
    .await;
    // The new artifact of the same name is untouched.
    g.expect(
        Who::MemberA,
        Method::GET,
        &format!("/artifacts/images/{again}"),
        None,
        200,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_can_opt_out_and_a_second_delete_removes_at_once() {
    let g = spawn_glare_with(&[
        ("DEFAULT", "delayed_delete", "true"),
        ("DEFAULT", "scrub_time", "3600"),
        ("artifact_type:heat_environments", "delayed_delete", "false"),
    ])
    .await;
    let images = g.data_dir.path().join("images");

    let env = g
        .expect(
            Who::MemberA,
            Method::POST,
            "/artifacts/heat_environments",
            Some(json!({"name": "env"})),
            201,
        )
        .await;
    let env = format!(
        "/artifacts/heat_environments/{}",
        env["id"].as_str().unwrap()
    );
    let (status, _) = g
        .upload(Who::MemberA, &format!("{env}/environment"), b"e".to_vec())
        .await;
    assert_eq!(status, 200);
    assert_eq!(files_under(&images), 1);
    g.expect(Who::MemberA, Method::DELETE, &env, None, 204)
        .await;
    g.expect(Who::MemberA, Method::GET, &env, None, 404).await;
    assert_eq!(files_under(&images), 0, "heat_environments delete at once");

    let id = image_with_blob(&g, "twice").await;
    let show = format!("/artifacts/images/{id}");
    g.expect(Who::MemberA, Method::DELETE, &show, None, 204)
        .await;
    let doc = g.expect(Who::MemberA, Method::GET, &show, None, 200).await;
    assert_eq!(doc["status"], "deleted");
    assert_eq!(files_under(&images), 1);
    // Another project cannot see it, so cannot delete it either.
    g.expect(Who::MemberB, Method::DELETE, &show, None, 404)
        .await;
    g.expect(Who::MemberA, Method::DELETE, &show, None, 204)
        .await;
    g.expect(Who::MemberA, Method::GET, &show, None, 404).await;
    assert_eq!(
        files_under(&images),
        0,
        "the second delete removes the blob"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_artifact_still_counts_against_its_projects_quotas() {
    // As Glare's: its data is still stored until the scrubber comes.
    let g = spawn_glare_with(&[
        ("DEFAULT", "delayed_delete", "true"),
        ("DEFAULT", "scrub_time", "3600"),
    ])
    .await;
    g.expect(
        Who::Admin,
        Method::PUT,
        "/quotas",
        Some(json!([{"project_id": "project-a",
                     "project_quotas": [{"quota_name": "max_artifact_number",
                                         "quota_value": 1}]}])),
        200,
    )
    .await;
    let id = image_with_blob(&g, "counted").await;
    g.expect(
        Who::MemberA,
        Method::DELETE,
        &format!("/artifacts/images/{id}"),
        None,
        204,
    )
    .await;
    let (status, doc) = g
        .call(
            Who::MemberA,
            Method::POST,
            "/artifacts/images",
            Some(json!({"name": "next"})),
        )
        .await;
    assert_eq!(status, 403, "{doc}");
    g.expect(
        Who::MemberA,
        Method::DELETE,
        &format!("/artifacts/images/{id}"),
        None,
        204,
    )
    .await;
    g.create(Who::MemberA, json!({"name": "next"})).await;
}
