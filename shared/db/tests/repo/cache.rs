//! The record cache of a registry that is its database's only writer.

use glance_domain::{ImageStatus, MemberStatus, Visibility};
use glance_proto::registry::ImageFilters;

use crate::helpers::{ids, image, on_both_databases, user, with_visibility, TestDb};

on_both_databases!(the_record_cache_never_serves_a_stale_record_or_page);

async fn the_record_cache_never_serves_a_stale_record_or_page(db: &TestDb) {
    let repo = db.repo.clone().with_record_cache(100);
    let owner = user("p1");
    let names = |repo| async move {
        let mut names: Vec<String> = repo_list(repo).await;
        names.sort();
        names
    };
    async fn repo_list(repo: glance_db::ImageRepo) -> Vec<String> {
        let req = crate::helpers::request(user("p1"), ImageFilters::default());
        repo.list(&req)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name.unwrap())
            .collect()
    }

    let mut img = image("p1", "before", 0);
    repo.create(&owner, img.clone()).await.unwrap();
    assert_eq!(names(repo.clone()).await, ["before"]);
    let cached = repo.get(&owner, img.id, false).await.unwrap();
    assert_eq!(cached.name.as_deref(), Some("before"));

    img.name = Some("after".into());
    repo.save(&owner, img.clone(), None).await.unwrap();
    let read = repo.get(&owner, img.id, false).await.unwrap();
    assert_eq!(read.name.as_deref(), Some("after"));
    assert_eq!(names(repo.clone()).await, ["after"]);

    repo.create(&owner, image("p1", "second", 1)).await.unwrap();
    assert_eq!(names(repo.clone()).await, ["after", "second"]);

    repo.delete(&owner, img.id, ImageStatus::Deleted)
        .await
        .unwrap();
    assert!(repo.get(&owner, img.id, false).await.is_err());
    assert_eq!(names(repo.clone()).await, ["second"]);

    // A kept record is still checked against the caller, and membership changes count.
    let shared = with_visibility(image("p1", "shared", 2), Visibility::Shared);
    repo.create(&owner, shared.clone()).await.unwrap();
    repo.get(&owner, shared.id, false).await.unwrap();
    assert!(repo.get(&user("p2"), shared.id, false).await.is_err());
    assert!(ids(&repo, user("p2"), ImageFilters::default())
        .await
        .is_empty());
    repo.add_member(shared.id, "p2", MemberStatus::Accepted)
        .await
        .unwrap();
    assert!(repo.get(&user("p2"), shared.id, false).await.is_ok());
    assert_eq!(
        ids(&repo, user("p2"), ImageFilters::default()).await,
        [shared.id]
    );
}
