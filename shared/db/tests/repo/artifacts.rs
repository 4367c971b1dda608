//! The artifact repository's list and the scrubber's query: scopes applied in SQL.

use chrono::{Duration, Utc};
use glance_db::{ArtifactRepo, Database};
use glance_domain::{Artifact, ArtifactStatus, ArtifactVisibility};

use crate::helpers::{admin, on_both_databases, user, TestDb};

on_both_databases!(
    a_list_keeps_to_the_names_owner_and_status_asked_for,
    the_scrubbers_query_finds_deleted_artifacts_once_they_are_due,
);

async fn repo(db: &TestDb) -> ArtifactRepo {
    ArtifactRepo::new(Database::connect(&db.url).await.unwrap())
}

fn artifact(owner: &str, name: &str, version: &str, status: ArtifactStatus) -> Artifact {
    let now = Utc::now();
    Artifact {
        id: uuid::Uuid::new_v4(),
        type_name: "images".into(),
        name: name.into(),
        version: version.parse().unwrap(),
        owner: owner.into(),
        visibility: ArtifactVisibility::Private,
        status,
        created_at: now,
        updated_at: now,
        activated_at: None,
        fields: Default::default(),
        revision: 0,
    }
}

fn names(list: &[Artifact]) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .map(|a| format!("{}/{}", a.owner, a.name))
        .collect();
    out.sort();
    out
}

async fn a_list_keeps_to_the_names_owner_and_status_asked_for(db: &TestDb) {
    let repo = repo(db).await;
    for a in [
        artifact("p1", "alpha", "1.0.0", ArtifactStatus::Drafted),
        artifact("p1", "beta", "1.0.0", ArtifactStatus::Active),
        artifact("p1", "gone", "1.0.0", ArtifactStatus::Deleted),
        artifact("p2", "alpha", "1.0.0", ArtifactStatus::Drafted),
    ] {
        repo.create(a).await.unwrap();
    }
    let p1 = user("p1");
    let all = repo
        .list(&p1, Some("images"), None, false, &[])
        .await
        .unwrap();
    assert_eq!(names(&all), ["p1/alpha", "p1/beta"]);
    let named = ["alpha".to_owned(), "gone".to_owned()];
    let some = repo
        .list(&p1, Some("images"), None, true, &named)
        .await
        .unwrap();
    assert_eq!(names(&some), ["p1/alpha", "p1/gone"]);
    let owned = repo
        .list(&admin(), None, Some("p2"), true, &[])
        .await
        .unwrap();
    assert_eq!(names(&owned), ["p2/alpha"]);
    let other_type = repo
        .list(&p1, Some("heat_templates"), None, true, &[])
        .await
        .unwrap();
    assert!(other_type.is_empty());
}

async fn the_scrubbers_query_finds_deleted_artifacts_once_they_are_due(db: &TestDb) {
    let repo = repo(db).await;
    let mut old = artifact("p1", "old", "1.0.0", ArtifactStatus::Deleted);
    old.updated_at = Utc::now() - Duration::seconds(600);
    let fresh = artifact("p1", "fresh", "1.0.0", ArtifactStatus::Deleted);
    let live = artifact("p1", "live", "1.0.0", ArtifactStatus::Active);
    for a in [old.clone(), fresh.clone(), live] {
        repo.create(a).await.unwrap();
    }
    let before = Utc::now() - Duration::seconds(60);
    assert!(repo
        .deleted_due(&user("p1"), before, 10, None)
        .await
        .is_err());
    let due = repo.deleted_due(&admin(), before, 10, None).await.unwrap();
    assert_eq!(names(&due), ["p1/old"]);
    let all = repo
        .deleted_due(&admin(), Utc::now(), 1, None)
        .await
        .unwrap();
    assert_eq!(names(&all), ["p1/old"], "oldest first, one per page");
    let next = repo
        .deleted_due(&admin(), Utc::now(), 1, Some(old.id))
        .await
        .unwrap();
    assert_eq!(names(&next), ["p1/fresh"]);
}
