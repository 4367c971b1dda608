//! Opening databases and applying migrations.

use glance_db::{Database, ImageRepo};
use glance_domain::ImageStatus;

use crate::helpers::{image, on_both_databases, user, TestDb};

on_both_databases!(migrations_apply_once_and_report_their_version);

/// Every migration's name, oldest first (features add theirs to the list).
fn migration_names() -> Vec<String> {
    use sea_orm_migration::MigratorTrait;
    glance_db::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

async fn migrations_apply_once_and_report_their_version(db: &TestDb) {
    // The harness has migrated already; a second run (another registry starting) is a no-op.
    let fresh = Database::connect(&db.url).await.unwrap();
    assert!(fresh.pending_migrations().await.unwrap().is_empty());
    fresh.migrate_up().await.unwrap();
    let version = fresh.version().await.unwrap();
    assert_eq!(version, migration_names().last().cloned());
    fresh.close().await;
}

#[tokio::test]
async fn a_database_of_the_first_release_upgrades_in_place() {
    use sea_orm_migration::MigratorTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("old.sqlite").display()
    );
    let old = sea_orm::Database::connect(&url).await.unwrap();
    glance_db::Migrator::up(&old, Some(1)).await.unwrap();
    old.close().await.unwrap();

    let db = Database::connect(&url).await.unwrap();
    assert_eq!(
        db.version().await.unwrap().as_deref(),
        Some("m20261129_000001_initial_schema")
    );
    assert_eq!(
        db.pending_migrations().await.unwrap(),
        migration_names()[1..]
    );
    db.migrate_up().await.unwrap();
    let repo = ImageRepo::new(db);
    let mut img = image("p1", "x", 0);
    img.properties.insert("a".into(), "1".into());
    let created = repo.create(&user("p1"), img).await.unwrap();
    let mut dropped = created.clone();
    dropped.properties.clear();
    repo.save(&user("p1"), dropped, None).await.unwrap();
    repo.save(&user("p1"), created.clone(), None).await.unwrap();
    assert_eq!(
        repo.get(&user("p1"), created.id, false)
            .await
            .unwrap()
            .properties,
        created.properties
    );
}

#[tokio::test]
async fn an_empty_database_has_no_version_until_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.sqlite").display());
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.version().await.unwrap(), None);
    assert_eq!(
        db.pending_migrations().await.unwrap().len(),
        migration_names().len()
    );
    db.migrate_up().await.unwrap();
    assert!(db.version().await.unwrap().is_some());
    assert!(db.pending_migrations().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_sqlalchemy_sqlite_url_creates_the_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glance.sqlite");
    // SQLAlchemy spells an absolute path with four slashes.
    let db = Database::connect(&format!("sqlite:///{}", path.display()))
        .await
        .unwrap();
    db.migrate_up().await.unwrap();
    let repo = ImageRepo::new(db);
    repo.create(&user("p1"), image("p1", "x", 0)).await.unwrap();
    assert!(path.exists());
    let wal = dir.path().join("glance.sqlite-wal");
    assert!(wal.exists(), "the database runs in WAL mode");
}

#[tokio::test]
async fn an_in_memory_database_keeps_its_data_between_statements() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    db.migrate_up().await.unwrap();
    let repo = ImageRepo::new(db);
    let created = repo
        .create(&user("p1"), image("p1", "mem", 0))
        .await
        .unwrap();
    let read = repo.get(&user("p1"), created.id, false).await.unwrap();
    assert_eq!(read, created);
    let deleted = repo
        .delete(&user("p1"), created.id, ImageStatus::Deleted)
        .await
        .unwrap();
    assert_eq!(deleted.status, ImageStatus::Deleted);
}

#[tokio::test]
async fn an_unsupported_database_is_refused() {
    let err = Database::connect("mysql+pymysql://glance:secret@db/glance")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}
