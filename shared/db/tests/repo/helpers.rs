//! A fresh, migrated database per test, on each backend.
//!
//! PostgreSQL tests need `GLANCE_TEST_POSTGRES_URL`, a superuser URL of a throwaway server
//! (`postgresql://postgres@127.0.0.1:55432/postgres`); each test creates its own database
//! with a random name and drops it afterwards. Without the URL they fail, saying so:
//! `scripts/test.sh` starts the server.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use glance_db::{Database, ImageRepo};
use glance_domain::{
    ContainerFormat, DiskFormat, Image, ImageId, ImageStatus, Location, RequestContext, Visibility,
};
use glance_proto::registry::{ImageFilters, ListImages, SortKey};

/// Generates one `#[tokio::test]` per backend for each listed test body, as
/// `<module>::sqlite::<name>` and `<module>::postgres::<name>`.
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::helpers::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::helpers::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            )+
        }
    };
}
pub(crate) use on_both_databases;

pub struct TestDb {
    pub repo: ImageRepo,
    pub url: String,
    /// Keeps the SQLite file alive for the test.
    _dir: Option<tempfile::TempDir>,
    /// Server URL and database name, to drop it afterwards.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("glance.sqlite").display()
        );
        let db = Database::connect(&url).await.unwrap();
        db.migrate_up().await.unwrap();
        TestDb {
            repo: ImageRepo::new(db),
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A fresh database on the test PostgreSQL; unconfigured, the test fails rather than
    /// passing untested.
    pub async fn postgres() -> TestDb {
        let server = std::env::var("GLANCE_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .expect(
                "GLANCE_TEST_POSTGRES_URL is unset: run ./scripts/test.sh (it starts PostgreSQL)",
            );
        let name = format!("glance_test_{}", uuid::Uuid::new_v4().simple());
        let url = Database::create_postgres_database(&server, &name)
            .await
            .expect("create a test database");
        let db = Database::connect(&url).await.unwrap();
        db.migrate_up().await.unwrap();
        TestDb {
            repo: ImageRepo::new(db),
            url,
            _dir: None,
            postgres: Some((server, name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on a future: do it on a
        // thread with a runtime of its own. Runs on panic too, so failed tests clean up.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Database::drop_postgres_database(&server, &name))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test database: {e}");
        }
    }
}

/// A caller acting for `project`.
pub fn user(project: &str) -> RequestContext {
    RequestContext {
        request_id: "req-test".into(),
        user_id: Some(format!("user-of-{project}")),
        project_id: Some(project.into()),
        roles: vec!["member".into()],
        is_admin: false,
        ..RequestContext::default()
    }
}

pub fn admin() -> RequestContext {
    RequestContext {
        project_id: Some("admin-project".into()),
        ..RequestContext::admin("req-test")
    }
}

/// A fixed instant, whole microseconds, so tests can compare timestamps exactly.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T12:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// An active, shared image of `owner` created at `t0() + seconds`.
pub fn image(owner: &str, name: &str, seconds: i64) -> Image {
    let at = t0() + Duration::seconds(seconds);
    let mut image = Image::new(ImageId::new(), Some(owner.into()), at);
    image.name = Some(name.into());
    image.status = ImageStatus::Active;
    image.disk_format = Some(DiskFormat::Qcow2);
    image.container_format = Some(ContainerFormat::Bare);
    image.size = Some(1024);
    image
}

pub fn with_visibility(mut image: Image, visibility: Visibility) -> Image {
    image.visibility = visibility;
    image
}

pub fn location(url: &str) -> Location {
    Location {
        url: url.into(),
        metadata: BTreeMap::from([("store".to_owned(), "file".to_owned())]),
        status: "active".into(),
    }
}

/// Stores `image` as admin and returns its id.
pub async fn put(repo: &ImageRepo, image: Image) -> ImageId {
    repo.create(&admin(), image).await.unwrap().id
}

pub fn request(ctx: RequestContext, filters: ImageFilters) -> ListImages {
    ListImages {
        ctx,
        filters,
        sort: Vec::new(),
        limit: 1000,
        marker: None,
    }
}

/// The ids `ctx` lists with `filters`, in list order.
pub async fn ids(repo: &ImageRepo, ctx: RequestContext, filters: ImageFilters) -> Vec<ImageId> {
    listed(repo, request(ctx, filters)).await
}

pub async fn listed(repo: &ImageRepo, req: ListImages) -> Vec<ImageId> {
    repo.list(&req)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

/// Sorted copies, for comparing sets of ids.
pub fn set(ids: &[ImageId]) -> Vec<ImageId> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

pub fn sort(
    keys: &[(
        glance_proto::registry::SortColumn,
        glance_proto::registry::SortDir,
    )],
) -> Vec<SortKey> {
    keys.iter()
        .map(|&(column, dir)| SortKey { column, dir })
        .collect()
}
