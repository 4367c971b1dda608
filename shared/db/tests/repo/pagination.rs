//! Sorting and keyset pagination by marker.

use std::collections::HashSet;

use glance_domain::{ImageId, ImageStatus, Visibility};
use glance_proto::registry::{
    ImageFilters, ListImages, RegistryError, SortColumn as C, SortDir as D,
};

use crate::helpers::{
    admin, image, listed, on_both_databases, put, request, sort, user, with_visibility, TestDb,
};

on_both_databases!(
    the_default_order_is_newest_first,
    nulls_sort_as_the_smallest_value,
    walking_pages_by_marker_returns_every_image_exactly_once,
    an_unknown_deleted_or_invisible_marker_is_invalid,
    a_limit_caps_the_page,
);

async fn the_default_order_is_newest_first(db: &TestDb) {
    let old = put(&db.repo, image("p1", "old", 0)).await;
    let new = put(&db.repo, image("p1", "new", 10)).await;
    assert_eq!(
        listed(&db.repo, request(admin(), ImageFilters::default())).await,
        [new, old]
    );
}

async fn nulls_sort_as_the_smallest_value(db: &TestDb) {
    let mut unsized_ = image("p1", "b", 0);
    unsized_.size = None;
    unsized_.name = None;
    let unsized_ = put(&db.repo, unsized_).await;
    let mut small = image("p1", "c", 1);
    small.size = Some(1);
    let small = put(&db.repo, small).await;
    let mut big = image("p1", "a", 2);
    big.size = Some(100);
    let big = put(&db.repo, big).await;

    let sorted = |keys| ListImages {
        sort: sort(keys),
        ..request(admin(), ImageFilters::default())
    };
    assert_eq!(
        listed(&db.repo, sorted(&[(C::Size, D::Asc)])).await,
        [unsized_, small, big]
    );
    assert_eq!(
        listed(&db.repo, sorted(&[(C::Size, D::Desc)])).await,
        [big, small, unsized_]
    );
    assert_eq!(
        listed(&db.repo, sorted(&[(C::Name, D::Asc)])).await,
        [unsized_, big, small]
    );
}

/// 50 images with one name, creation times shared by groups of five, some sizes and owners
/// missing: every sort below has long runs of equal values that only the tie-breakers order.
async fn fifty_lookalikes(db: &TestDb) -> Vec<ImageId> {
    let mut all = Vec::new();
    for i in 0..50i64 {
        let mut img = image(&format!("p{}", i % 3), "same", i / 5);
        img.size = (i % 4 != 0).then_some(1024 * (i % 2));
        if i % 7 == 0 {
            img.owner = None;
        }
        img.min_ram = (i % 3) as i32;
        img.visibility = if i % 2 == 0 {
            Visibility::Public
        } else {
            Visibility::Shared
        };
        all.push(put(&db.repo, img).await);
    }
    all
}

async fn walk(db: &TestDb, base: &ListImages, page: u32) -> Vec<ImageId> {
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let req = ListImages {
            limit: page,
            marker,
            ..base.clone()
        };
        let ids = listed(&db.repo, req).await;
        seen.extend(&ids);
        if ids.len() < page as usize {
            return seen;
        }
        marker = ids.last().copied();
        assert!(seen.len() <= 100, "the walk does not end");
    }
}

async fn walking_pages_by_marker_returns_every_image_exactly_once(db: &TestDb) {
    let all = fifty_lookalikes(db).await;
    let sorts: &[&[(C, D)]] = &[
        &[],
        &[(C::Name, D::Asc)],
        &[(C::Name, D::Desc)],
        &[(C::Size, D::Asc)],
        &[(C::Size, D::Desc)],
        &[(C::Owner, D::Desc), (C::Size, D::Asc)],
        &[(C::Owner, D::Asc), (C::MinRam, D::Desc)],
        &[(C::CreatedAt, D::Asc)],
        &[
            (C::Visibility, D::Asc),
            (C::Status, D::Desc),
            (C::Name, D::Asc),
        ],
        &[(C::Id, D::Asc)],
    ];
    for keys in sorts {
        for ctx in [admin(), user("p1")] {
            let base = ListImages {
                sort: sort(keys),
                ..request(ctx.clone(), ImageFilters::default())
            };
            let whole = listed(&db.repo, base.clone()).await;
            if ctx.is_admin {
                assert_eq!(whole.len(), all.len(), "{keys:?}");
            }
            let walked = walk(db, &base, 7).await;
            assert_eq!(walked, whole, "{keys:?} as {:?}", ctx.project_id);
            let unique: HashSet<_> = walked.iter().collect();
            assert_eq!(unique.len(), walked.len(), "{keys:?}: an image came twice");
        }
    }
}

async fn an_unknown_deleted_or_invisible_marker_is_invalid(db: &TestDb) {
    let private = put(
        &db.repo,
        with_visibility(image("p1", "private", 0), Visibility::Private),
    )
    .await;
    let deleted = put(&db.repo, image("p1", "deleted", 1)).await;
    db.repo
        .delete(&admin(), deleted, ImageStatus::Deleted)
        .await
        .unwrap();
    for (ctx, marker) in [
        (admin(), ImageId::new()),
        (admin(), deleted),
        (user("p2"), private),
    ] {
        let req = ListImages {
            marker: Some(marker),
            ..request(ctx, ImageFilters::default())
        };
        assert_eq!(
            db.repo.list(&req).await,
            Err(RegistryError::Invalid(format!(
                "Invalid marker. Image {marker} could not be found."
            )))
        );
    }
}

async fn a_limit_caps_the_page(db: &TestDb) {
    for i in 0..5 {
        put(&db.repo, image("p1", "n", i)).await;
    }
    let page = |limit| ListImages {
        limit,
        ..request(admin(), ImageFilters::default())
    };
    assert_eq!(listed(&db.repo, page(3)).await.len(), 3);
    assert!(listed(&db.repo, page(0)).await.is_empty());
}
