//! The repository on SQLite always, and on PostgreSQL when `GLANCE_TEST_POSTGRES_URL` is set
//! (`GLANCE_REQUIRE_POSTGRES=1` makes its absence a failure).

use chrono::Utc;
use glance_db::{Database, ImageRepo};
use glance_domain::{Image, ImageId, ImageStatus, MemberStatus, RequestContext, Visibility};
use glance_proto::registry::{
    ListImages, MemberStatusFilter, RegistryError, SortColumn, SortDir, SortKey, VisibilityFilter,
};

struct Db {
    repo: ImageRepo,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.sqlite").display());
    let db = Database::connect(&url).await.unwrap();
    db.migrate_up().await.unwrap();
    Db {
        repo: ImageRepo::new(db),
        _dir: Some(dir),
    }
}

async fn postgres() -> Option<Db> {
    let Ok(server) = std::env::var("GLANCE_TEST_POSTGRES_URL") else {
        if std::env::var("GLANCE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
            panic!("GLANCE_REQUIRE_POSTGRES=1 but GLANCE_TEST_POSTGRES_URL is unset");
        }
        eprintln!(
            "GLANCE_TEST_POSTGRES_URL unset: PostgreSQL cases not run (scripts/test.sh sets it)"
        );
        return None;
    };
    let name = format!("glance_repo_{}", uuid::Uuid::new_v4().simple());
    let url = Database::create_postgres_database(&server, &name)
        .await
        .unwrap();
    let db = Database::connect(&url).await.unwrap();
    db.migrate_up().await.unwrap();
    Some(Db {
        repo: ImageRepo::new(db),
        _dir: None,
    })
}

fn ctx(project: &str, admin: bool) -> RequestContext {
    RequestContext {
        request_id: "req-test".into(),
        user_id: Some("u".into()),
        project_id: Some(project.into()),
        roles: vec!["member".into()],
        is_admin: admin,
    }
}

fn image(owner: &str, name: &str, visibility: Visibility) -> Image {
    let mut img = Image::new(ImageId::new(), Some(owner.into()), Utc::now());
    img.name = Some(name.into());
    img.visibility = visibility;
    img
}

fn list(ctx: RequestContext) -> ListImages {
    ListImages {
        ctx,
        limit: 1000,
        ..Default::default()
    }
}

async fn names(repo: &ImageRepo, req: ListImages) -> Vec<String> {
    let mut n: Vec<String> = repo
        .list(&req)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name.unwrap())
        .collect();
    n.sort();
    n
}

async fn a_record_round_trips_with_its_children(repo: ImageRepo) {
    let mut img = image("p1", "a", Visibility::Private);
    img.properties.insert("hw_disk_bus".into(), "scsi".into());
    img.tags = vec!["t1".into(), "t2".into()];
    img.locations.push(glance_domain::Location {
        url: "file:///x".into(),
        metadata: [("k".to_string(), "v".to_string())].into(),
        status: "active".into(),
    });
    repo.create(&ctx("p1", false), img.clone()).await.unwrap();
    let got = repo.get(&ctx("p1", false), img.id, false).await.unwrap();
    assert_eq!(got.properties, img.properties);
    assert_eq!(got.tags, img.tags);
    assert_eq!(got.locations, img.locations);
    assert_eq!(got.name, img.name);
    // The same create delivered twice (a registry died before acking) is not a duplicate...
    let again = repo.create(&ctx("p1", false), img.clone()).await.unwrap();
    assert_eq!(again.id, img.id);
    // ...but another create with the same id is.
    let mut other = img.clone();
    other.created_at += chrono::Duration::seconds(1);
    assert!(matches!(
        repo.create(&ctx("p1", false), other).await,
        Err(RegistryError::Duplicate(_))
    ));
}

async fn a_save_from_a_stale_status_loses_the_race(repo: ImageRepo) {
    let img = image("p1", "race", Visibility::Private);
    repo.create(&ctx("p1", false), img.clone()).await.unwrap();
    let mut saving = img.clone();
    saving.status = ImageStatus::Saving;
    repo.save(&ctx("p1", false), saving.clone(), Some(ImageStatus::Queued))
        .await
        .unwrap();
    let again = repo
        .save(&ctx("p1", false), saving, Some(ImageStatus::Queued))
        .await;
    assert!(
        matches!(again, Err(RegistryError::Conflict(_))),
        "{again:?}"
    );
}

async fn a_deleted_image_is_gone_but_pending_delete_keeps_its_locations(repo: ImageRepo) {
    let mut img = image("p1", "del", Visibility::Private);
    img.locations.push(glance_domain::Location {
        url: "file:///y".into(),
        metadata: Default::default(),
        status: "active".into(),
    });
    repo.create(&ctx("p1", false), img.clone()).await.unwrap();
    let deleted = repo
        .delete(&ctx("p1", false), img.id, ImageStatus::PendingDelete)
        .await
        .unwrap();
    assert_eq!(deleted.locations.len(), 1);
    assert!(matches!(
        repo.get(&ctx("p1", false), img.id, false).await,
        Err(RegistryError::NotFound(_))
    ));
    let kept = repo.get(&ctx("p1", true), img.id, true).await.unwrap();
    assert_eq!(kept.status, ImageStatus::PendingDelete);
    assert_eq!(kept.locations.len(), 1);
    assert!(names(&repo, list(ctx("p1", true))).await.is_empty());
}

async fn visibility_follows_glances_rules(repo: ImageRepo) {
    let c = |p: &str| ctx(p, false);
    repo.create(&c("a"), image("a", "a-private", Visibility::Private))
        .await
        .unwrap();
    repo.create(&c("a"), image("a", "a-public", Visibility::Public))
        .await
        .unwrap();
    repo.create(&c("a"), image("a", "a-community", Visibility::Community))
        .await
        .unwrap();
    let shared_accepted = image("a", "a-shared-accepted", Visibility::Shared);
    let shared_pending = image("a", "a-shared-pending", Visibility::Shared);
    repo.create(&c("a"), shared_accepted.clone()).await.unwrap();
    repo.create(&c("a"), shared_pending.clone()).await.unwrap();
    repo.add_member(shared_accepted.id, "b", MemberStatus::Accepted)
        .await
        .unwrap();
    repo.add_member(shared_pending.id, "b", MemberStatus::Pending)
        .await
        .unwrap();

    // The owner sees all of theirs, community included.
    assert_eq!(names(&repo, list(c("a"))).await.len(), 5);
    // Another project: public, and shared images it accepted.
    assert_eq!(
        names(&repo, list(c("b"))).await,
        ["a-public", "a-shared-accepted"]
    );
    // Pending memberships appear when asked for.
    let mut pending = list(c("b"));
    pending.filters.member_status = Some(MemberStatusFilter::Pending);
    assert_eq!(
        names(&repo, pending).await,
        ["a-public", "a-shared-pending"]
    );
    // Community only when asked for.
    let mut community = list(c("b"));
    community.filters.visibility = Some(VisibilityFilter::Community);
    assert_eq!(names(&repo, community).await, ["a-community"]);
    // A stranger sees only the public one.
    assert_eq!(names(&repo, list(c("z"))).await, ["a-public"]);
    // Admins see everything but unrequested community images of others.
    assert_eq!(
        names(&repo, list(ctx("admin-project", true))).await.len(),
        4
    );
    // Showing one image: a member in any status may, a stranger may not.
    assert!(repo.get(&c("b"), shared_pending.id, false).await.is_ok());
    assert!(repo.get(&c("z"), shared_pending.id, false).await.is_err());
}

async fn a_marker_walk_returns_every_image_once(repo: ImageRepo) {
    let mut all = std::collections::BTreeSet::new();
    for i in 0..50 {
        let mut img = image("p1", &format!("same{}", i % 2), Visibility::Private);
        if i % 3 == 0 {
            img.size = Some(i);
        }
        all.insert(img.id);
        repo.create(&ctx("p1", false), img).await.unwrap();
    }
    for sort in [
        vec![],
        vec![SortKey {
            column: SortColumn::Name,
            dir: SortDir::Asc,
        }],
        vec![SortKey {
            column: SortColumn::Size,
            dir: SortDir::Desc,
        }],
        vec![
            SortKey {
                column: SortColumn::Size,
                dir: SortDir::Asc,
            },
            SortKey {
                column: SortColumn::Name,
                dir: SortDir::Desc,
            },
        ],
    ] {
        let mut seen = std::collections::BTreeSet::new();
        let mut marker = None;
        loop {
            let page = repo
                .list(&ListImages {
                    ctx: ctx("p1", false),
                    sort: sort.clone(),
                    limit: 7,
                    marker,
                    ..Default::default()
                })
                .await
                .unwrap();
            for img in &page {
                assert!(seen.insert(img.id), "duplicate with sort {sort:?}");
            }
            if page.len() < 7 {
                break;
            }
            marker = page.last().map(|i| i.id);
        }
        assert_eq!(seen, all, "sort {sort:?}");
    }
}

async fn concurrent_creates_all_succeed(repo: ImageRepo) {
    let tasks = (0..8).map(|t| {
        let repo = repo.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let mut img = image("p1", &format!("c{t}-{i}"), Visibility::Private);
                img.tags = vec!["bulk".into()];
                repo.create(&ctx("p1", false), img).await.unwrap();
            }
        })
    });
    for t in futures::future::join_all(tasks).await {
        t.unwrap();
    }
    let mut req = list(ctx("p1", false));
    req.filters.tags = vec!["bulk".into()];
    assert_eq!(repo.list(&req).await.unwrap().len(), 1000);
}

macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_cases {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let db = super::sqlite().await;
                    super::$name(db.repo.clone()).await;
                }
            )+
        }
        mod postgres_cases {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    if let Some(db) = super::postgres().await {
                        super::$name(db.repo.clone()).await;
                    }
                }
            )+
        }
    };
}

on_both_databases!(
    a_record_round_trips_with_its_children,
    a_save_from_a_stale_status_loses_the_race,
    a_deleted_image_is_gone_but_pending_delete_keeps_its_locations,
    visibility_follows_glances_rules,
    a_marker_walk_returns_every_image_once,
    concurrent_creates_all_succeed,
);

#[tokio::test]
async fn migrations_report_their_version() {
    let db = sqlite().await;
    let version = db.repo.database().version().await.unwrap();
    assert_eq!(version.as_deref(), Some("m20261129_000001_initial_schema"));
    assert!(db
        .repo
        .database()
        .pending_migrations()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_record_cache_never_serves_a_stale_record_or_page() {
    let db = sqlite().await;
    let repo = db.repo.clone().with_record_cache(100);
    let c = ctx("p1", false);
    let mut img = image("p1", "before", Visibility::Private);
    repo.create(&c, img.clone()).await.unwrap();
    assert_eq!(names(&repo, list(c.clone())).await, ["before"]);
    assert_eq!(
        repo.get(&c, img.id, false).await.unwrap().name.as_deref(),
        Some("before")
    );

    img.name = Some("after".into());
    repo.save(&c, img.clone(), None).await.unwrap();
    assert_eq!(
        repo.get(&c, img.id, false).await.unwrap().name.as_deref(),
        Some("after")
    );
    assert_eq!(names(&repo, list(c.clone())).await, ["after"]);

    repo.create(&c, image("p1", "second", Visibility::Private))
        .await
        .unwrap();
    assert_eq!(names(&repo, list(c.clone())).await, ["after", "second"]);

    repo.delete(&c, img.id, ImageStatus::Deleted).await.unwrap();
    assert!(repo.get(&c, img.id, false).await.is_err());
    assert_eq!(names(&repo, list(c.clone())).await, ["second"]);

    // A cached record is still checked against the caller.
    let shared = image("p1", "shared", Visibility::Shared);
    repo.create(&c, shared.clone()).await.unwrap();
    repo.get(&c, shared.id, false).await.unwrap();
    assert!(repo
        .get(&ctx("stranger", false), shared.id, false)
        .await
        .is_err());
}
