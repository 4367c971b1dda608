//! Glance's visibility rules: `is_image_visible` for GET, `_select_images_query` for lists.

use glance_domain::{ImageId, MemberStatus, RequestContext, Visibility};
use glance_proto::registry::{ImageFilters, MemberStatusFilter, RegistryError, VisibilityFilter};

use crate::helpers::{
    admin, ids, image, on_both_databases, put, set, user, with_visibility, TestDb,
};

on_both_databases!(
    the_owner_and_admins_see_a_private_image_and_nobody_else_does,
    everyone_sees_public_and_community_images_by_id,
    an_image_without_an_owner_is_visible_to_everyone,
    a_shared_image_is_visible_to_a_member_in_any_status,
    a_shared_image_is_listed_for_an_accepted_member,
    a_pending_member_lists_the_image_only_when_asking_for_pending_or_all,
    community_images_are_listed_only_when_asked_for_or_owned,
    an_admin_lists_everything_except_others_community_images_unless_asked,
    a_visibility_filter_restricts_the_list_to_that_visibility,
    a_caller_without_a_project_lists_only_public_images,
);

async fn visible(db: &TestDb, ctx: RequestContext, id: ImageId) -> bool {
    match db.repo.get(&ctx, id, false).await {
        Ok(_) => true,
        Err(RegistryError::NotFound(_)) => false,
        Err(e) => panic!("{e}"),
    }
}

async fn the_owner_and_admins_see_a_private_image_and_nobody_else_does(db: &TestDb) {
    let private = put(
        &db.repo,
        with_visibility(image("p1", "private", 0), Visibility::Private),
    )
    .await;
    assert!(visible(db, user("p1"), private).await);
    assert!(visible(db, admin(), private).await);
    assert!(!visible(db, user("p2"), private).await);
    let nobody = RequestContext {
        project_id: None,
        ..user("p2")
    };
    assert!(!visible(db, nobody, private).await);
    // A shared image without members is as private as a private one.
    let shared = put(&db.repo, image("p1", "shared", 1)).await;
    assert!(!visible(db, user("p2"), shared).await);
}

async fn everyone_sees_public_and_community_images_by_id(db: &TestDb) {
    let public = put(
        &db.repo,
        with_visibility(image("p1", "public", 0), Visibility::Public),
    )
    .await;
    let community = put(
        &db.repo,
        with_visibility(image("p1", "community", 1), Visibility::Community),
    )
    .await;
    for id in [public, community] {
        assert!(visible(db, user("p2"), id).await);
    }
}

async fn an_image_without_an_owner_is_visible_to_everyone(db: &TestDb) {
    let mut img = with_visibility(image("p1", "orphan", 0), Visibility::Private);
    img.owner = None;
    let id = put(&db.repo, img).await;
    assert!(visible(db, user("p2"), id).await);
}

async fn a_shared_image_is_visible_to_a_member_in_any_status(db: &TestDb) {
    let id = put(&db.repo, image("p1", "shared", 0)).await;
    for (project, status) in [
        ("pending", MemberStatus::Pending),
        ("accepted", MemberStatus::Accepted),
        ("rejected", MemberStatus::Rejected),
    ] {
        db.repo.add_member(id, project, status).await.unwrap();
        assert!(visible(db, user(project), id).await, "{project}");
    }
    assert!(!visible(db, user("stranger"), id).await);
}

async fn a_shared_image_is_listed_for_an_accepted_member(db: &TestDb) {
    let shared = put(&db.repo, image("p1", "shared", 0)).await;
    db.repo
        .add_member(shared, "p2", MemberStatus::Accepted)
        .await
        .unwrap();
    let private = put(
        &db.repo,
        with_visibility(image("p1", "private", 1), Visibility::Private),
    )
    .await;
    // Membership of a non-shared image (left over from a visibility change) lists nothing.
    db.repo
        .add_member(private, "p2", MemberStatus::Accepted)
        .await
        .unwrap();
    assert_eq!(
        ids(&db.repo, user("p2"), ImageFilters::default()).await,
        [shared]
    );
    assert!(ids(&db.repo, user("p3"), ImageFilters::default())
        .await
        .is_empty());
}

async fn a_pending_member_lists_the_image_only_when_asking_for_pending_or_all(db: &TestDb) {
    let id = put(&db.repo, image("p1", "shared", 0)).await;
    db.repo
        .add_member(id, "p2", MemberStatus::Pending)
        .await
        .unwrap();
    let with = |status| ImageFilters {
        member_status: Some(status),
        ..ImageFilters::default()
    };
    assert!(ids(&db.repo, user("p2"), ImageFilters::default())
        .await
        .is_empty());
    assert_eq!(
        ids(&db.repo, user("p2"), with(MemberStatusFilter::Pending)).await,
        [id]
    );
    assert_eq!(
        ids(&db.repo, user("p2"), with(MemberStatusFilter::All)).await,
        [id]
    );
    assert!(
        ids(&db.repo, user("p2"), with(MemberStatusFilter::Rejected))
            .await
            .is_empty()
    );
    // The owner lists their own image whatever the member status filter.
    assert_eq!(
        ids(&db.repo, user("p1"), with(MemberStatusFilter::Rejected)).await,
        [id]
    );
}

async fn community_images_are_listed_only_when_asked_for_or_owned(db: &TestDb) {
    let community = put(
        &db.repo,
        with_visibility(image("p1", "community", 0), Visibility::Community),
    )
    .await;
    let public = put(
        &db.repo,
        with_visibility(image("p1", "public", 1), Visibility::Public),
    )
    .await;
    let vis = |v| ImageFilters {
        visibility: Some(v),
        ..ImageFilters::default()
    };
    assert_eq!(
        ids(&db.repo, user("p2"), ImageFilters::default()).await,
        [public]
    );
    assert_eq!(
        ids(&db.repo, user("p2"), vis(VisibilityFilter::Community)).await,
        [community]
    );
    assert_eq!(
        set(&ids(&db.repo, user("p2"), vis(VisibilityFilter::All)).await),
        set(&[public, community])
    );
    assert_eq!(
        set(&ids(&db.repo, user("p1"), ImageFilters::default()).await),
        set(&[public, community])
    );
}

async fn an_admin_lists_everything_except_others_community_images_unless_asked(db: &TestDb) {
    let mut all = Vec::new();
    for (i, v) in [Visibility::Private, Visibility::Shared, Visibility::Public]
        .into_iter()
        .enumerate()
    {
        all.push(put(&db.repo, with_visibility(image("p1", "x", i as i64), v)).await);
    }
    let community = put(
        &db.repo,
        with_visibility(image("p1", "c", 9), Visibility::Community),
    )
    .await;
    assert_eq!(
        set(&ids(&db.repo, admin(), ImageFilters::default()).await),
        set(&all)
    );
    let everything = ImageFilters {
        visibility: Some(VisibilityFilter::All),
        ..ImageFilters::default()
    };
    all.push(community);
    assert_eq!(set(&ids(&db.repo, admin(), everything).await), set(&all));
}

async fn a_visibility_filter_restricts_the_list_to_that_visibility(db: &TestDb) {
    let private = put(
        &db.repo,
        with_visibility(image("p1", "private", 0), Visibility::Private),
    )
    .await;
    let shared = put(&db.repo, image("p1", "shared", 1)).await;
    let public = put(
        &db.repo,
        with_visibility(image("p2", "public", 2), Visibility::Public),
    )
    .await;
    let others_private = put(
        &db.repo,
        with_visibility(image("p2", "private", 3), Visibility::Private),
    )
    .await;
    let vis = |v| ImageFilters {
        visibility: Some(v),
        ..ImageFilters::default()
    };
    assert_eq!(
        ids(&db.repo, user("p1"), vis(VisibilityFilter::Private)).await,
        [private]
    );
    assert_eq!(
        ids(&db.repo, user("p1"), vis(VisibilityFilter::Shared)).await,
        [shared]
    );
    assert_eq!(
        ids(&db.repo, user("p1"), vis(VisibilityFilter::Public)).await,
        [public]
    );
    assert_eq!(
        set(&ids(&db.repo, admin(), vis(VisibilityFilter::Private)).await),
        set(&[private, others_private])
    );
}

async fn a_caller_without_a_project_lists_only_public_images(db: &TestDb) {
    let public = put(
        &db.repo,
        with_visibility(image("p1", "public", 0), Visibility::Public),
    )
    .await;
    let shared = put(&db.repo, image("p1", "shared", 1)).await;
    db.repo
        .add_member(shared, "p2", MemberStatus::Accepted)
        .await
        .unwrap();
    let anonymous = RequestContext {
        project_id: None,
        ..user("p2")
    };
    let all = ImageFilters {
        member_status: Some(MemberStatusFilter::All),
        ..ImageFilters::default()
    };
    assert_eq!(ids(&db.repo, anonymous, all).await, [public]);
}
