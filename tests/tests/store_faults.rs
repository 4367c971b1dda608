//! A store that fails is not a store that has nothing: reading image data that is absent
//! answers 404, reading data the store cannot read answers 500 (the cause in the log).

use serde_json::json;

async fn uploaded_image(app: &glance_tests::TestApp) -> String {
    let res = app
        .client
        .post(app.url("/v2/images"))
        .json(&json!({"name": "fragile", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .header("content-type", "application/octet-stream")
        .body(vec![3u8; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    id
}

/// The file behind image `id` in the all-in-one's filesystem store.
fn data_file(app: &glance_tests::TestApp, id: &str) -> std::path::PathBuf {
    let path = app.data_dir.path().join("images").join(id);
    assert!(path.is_file(), "{} holds the data", path.display());
    path
}

#[tokio::test]
async fn data_the_store_cannot_read_is_a_500_not_a_404() {
    let app = glance_tests::spawn_app().await;
    let id = uploaded_image(&app).await;
    // A symlink to itself: opening it fails with ELOOP, an I/O error, not "no such file".
    let path = data_file(&app, &id);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&path, &path).unwrap();

    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("The server has either erred"),
        "Glance's 500 body: {body}"
    );
}

#[tokio::test]
async fn data_that_is_gone_is_a_404() {
    let app = glance_tests::spawn_app().await;
    let id = uploaded_image(&app).await;
    std::fs::remove_file(data_file(&app, &id)).unwrap();

    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
