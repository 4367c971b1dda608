//! `glance-manage db purge` and `db purge_images_table` on SQLite and PostgreSQL: only
//! soft-deleted rows older than the cutoff go, children first, at most `max_rows` per table
//! per run, and never an image still waiting for the scrubber. Expired (soft-deleted) tasks
//! go with `purge`, their `task_info` first.

use std::collections::BTreeMap;

use chrono::Utc;
use glance_db::{Database, ImageRepo, TaskRepo};
use glance_domain::{Image, ImageId, ImageStatus, Location, RequestContext};
use glance_proto::registry::RegistryError;
use glance_proto::tasks::{ListTasks, Task, TaskStatus};

fn admin() -> RequestContext {
    RequestContext::admin("req-purge-test")
}

/// An active image with two properties, a tag and a location.
async fn image(repo: &ImageRepo, n: usize) -> ImageId {
    let mut image = Image::new(ImageId::new(), Some("p1".into()), Utc::now());
    image.name = Some(format!("img{n}"));
    image.status = ImageStatus::Active;
    image.properties = BTreeMap::from([
        ("os_distro".to_owned(), "debian".to_owned()),
        ("n".to_owned(), n.to_string()),
    ]);
    image.tags = vec!["t".to_owned()];
    image.locations = vec![Location {
        url: format!("file:///nowhere/{}", image.id),
        metadata: BTreeMap::new(),
        status: "active".into(),
    }];
    repo.create(&admin(), image).await.unwrap().id
}

/// A finished import task; `expired` ones get an `expires_at` in the past.
async fn task(tasks: &TaskRepo, n: usize, expired: bool) -> String {
    let now = Utc::now();
    let task = Task {
        id: uuid::Uuid::new_v4().to_string(),
        kind: Task::IMPORT_TYPE.into(),
        status: TaskStatus::Success,
        input: serde_json::json!({"n": n}),
        result: Some(serde_json::json!({"image_id": "x"})),
        message: String::new(),
        owner: Some("p1".into()),
        expires_at: expired.then(|| now - chrono::Duration::hours(1)),
        created_at: now,
        updated_at: now,
        image_id: None,
        request_id: None,
        user_id: None,
    };
    tasks.create(task).await.unwrap().id
}

/// Listing soft-deletes the expired tasks (Glance's `task_get_all`).
async fn expire_tasks(tasks: &TaskRepo) -> usize {
    let listed = tasks
        .list(&ListTasks {
            ctx: admin(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    listed.len()
}

fn counts(purged: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    purged.iter().copied().collect()
}

async fn purges_in_batches_children_first(url: &str) {
    let db = Database::connect(url).await.unwrap();
    db.migrate_up().await.unwrap();
    let tasks = TaskRepo::new(db.clone());
    let repo = ImageRepo::new(db);

    // Four expired tasks and one that has not expired.
    for n in 0..4 {
        task(&tasks, n, true).await;
    }
    let live_task = task(&tasks, 10, false).await;
    assert_eq!(
        expire_tasks(&tasks).await,
        1,
        "only the live task is listed"
    );

    // Four deleted images (8 properties, 4 tags, 4 locations soft-deleted), one live image
    // that lost a property, one image waiting for the scrubber.
    let mut deleted = Vec::new();
    for n in 0..4 {
        let id = image(&repo, n).await;
        repo.delete(&admin(), id, ImageStatus::Deleted)
            .await
            .unwrap();
        deleted.push(id);
    }
    let live = image(&repo, 10).await;
    let mut changed = repo.get(&admin(), live, false).await.unwrap();
    changed.properties.remove("n");
    repo.save(&admin(), changed, None).await.unwrap();
    let pending = image(&repo, 20).await;
    repo.delete(&admin(), pending, ImageStatus::PendingDelete)
        .await
        .unwrap();

    // Nothing is a day old yet.
    let none = repo.purge_deleted_rows(1, None).await.unwrap();
    assert!(none.iter().all(|(_, rows)| *rows == 0), "{none:?}");

    // The images table first: refused while children still point at the rows.
    let err = repo.purge_images_table(0, None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Conflict(_)), "{err:?}");

    // Children, three rows per table per run, oldest first.
    let first = counts(&repo.purge_deleted_rows(0, Some(3)).await.unwrap());
    assert_eq!(
        first,
        BTreeMap::from([
            ("image_properties", 3),
            ("image_tags", 3),
            ("image_locations", 3),
            ("image_members", 0),
            ("task_info", 3),
            ("tasks", 3),
        ])
    );
    let rest = counts(&repo.purge_deleted_rows(0, None).await.unwrap());
    assert_eq!(
        rest,
        BTreeMap::from([
            ("image_properties", 6), // 8 of deleted images + 1 removed from the live one - 3
            ("image_tags", 1),
            ("image_locations", 1),
            ("image_members", 0),
            ("task_info", 1),
            ("tasks", 1),
        ])
    );
    let again = repo.purge_deleted_rows(0, None).await.unwrap();
    assert!(again.iter().all(|(_, rows)| *rows == 0), "{again:?}");
    let kept = tasks.get(&admin(), &live_task).await.unwrap();
    assert_eq!(
        kept.input,
        serde_json::json!({"n": 10}),
        "its task_info stays"
    );
    assert_eq!(kept.result, Some(serde_json::json!({"image_id": "x"})));

    // Then the images, in batches; the pending_delete and live images stay.
    assert_eq!(
        repo.purge_images_table(0, Some(3)).await.unwrap(),
        ("images", 3)
    );
    assert_eq!(
        repo.purge_images_table(0, Some(3)).await.unwrap(),
        ("images", 1)
    );
    assert_eq!(
        repo.purge_images_table(0, Some(3)).await.unwrap(),
        ("images", 0)
    );
    for id in deleted {
        let gone = repo.get(&admin(), id, true).await.unwrap_err();
        assert!(matches!(gone, RegistryError::NotFound(_)), "{gone:?}");
    }
    let kept = repo.get(&admin(), live, false).await.unwrap();
    assert_eq!(
        kept.properties.get("os_distro").map(String::as_str),
        Some("debian")
    );
    assert_eq!(kept.tags, ["t"]);
    let waiting = repo.get(&admin(), pending, true).await.unwrap();
    assert_eq!(waiting.status, ImageStatus::PendingDelete);
    assert_eq!(
        waiting.locations.len(),
        1,
        "the scrubber still needs its location"
    );
}

#[tokio::test]
async fn purge_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("g.sqlite").display()
    );
    purges_in_batches_children_first(&url).await;
}

#[tokio::test]
async fn purge_on_postgres() {
    let server = std::env::var("GLANCE_TEST_POSTGRES_URL")
        .expect("GLANCE_TEST_POSTGRES_URL is unset: run ./scripts/test.sh (it starts PostgreSQL)");
    let name = format!("glance_purge_{}", uuid::Uuid::new_v4().simple());
    let url = Database::create_postgres_database(&server, &name)
        .await
        .unwrap();
    purges_in_batches_children_first(&url).await;
    Database::drop_postgres_database(&server, &name)
        .await
        .unwrap();
}

/// The command line: Glance's names and flags, counts per table.
#[tokio::test]
async fn glance_manage_db_purge_reports_counts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("g.sqlite").display()
    );
    {
        let db = Database::connect(&url).await.unwrap();
        db.migrate_up().await.unwrap();
        let tasks = TaskRepo::new(db.clone());
        let repo = ImageRepo::new(db);
        for n in 0..2 {
            task(&tasks, n, true).await;
        }
        assert_eq!(expire_tasks(&tasks).await, 0);
        for n in 0..2 {
            let id = image(&repo, n).await;
            repo.delete(&admin(), id, ImageStatus::Deleted)
                .await
                .unwrap();
        }
    }
    let manage = |args: &[&str]| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
            });
        let out = std::process::Command::new(target.join("debug/glance-manage"))
            .args(args)
            .env("GLANCE__DATABASE__CONNECTION", &url)
            .output()
            .expect("glance-manage is built (cargo build --bins)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = manage(&["db", "purge_images_table", "--age-in-days", "0"]);
    assert!(
        !ok && text.contains("run `glance-manage db purge`"),
        "{text}"
    );
    let (ok, text) = manage(&["db", "purge", "--age_in_days", "0", "--max_rows", "3"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("Purged 3 row(s) from image_properties"),
        "{text}"
    );
    assert!(text.contains("Purged 2 row(s) from image_tags"), "{text}");
    assert!(text.contains("Purged 2 row(s) from task_info"), "{text}");
    assert!(text.contains("Purged 2 row(s) from tasks"), "{text}");
    let (ok, text) = manage(&["db", "purge", "--age-in-days", "0", "--max-rows", "-1"]);
    assert!(
        ok && text.contains("Purged 1 row(s) from image_properties"),
        "{text}"
    );
    let (ok, text) = manage(&["db", "purge_images_table", "--age-in-days", "0"]);
    assert!(ok && text.contains("Purged 2 row(s) from images"), "{text}");
    let (ok, text) = manage(&["db", "purge", "--max-rows", "-2"]);
    assert!(!ok && text.contains("max_rows"), "{text}");
}
