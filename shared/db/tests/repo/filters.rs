//! Every `ImageFilters` field, one at a time and combined.

use std::collections::BTreeMap;

use chrono::Duration;
use glance_domain::{ContainerFormat, DiskFormat, ImageStatus};
use glance_proto::registry::{CmpOp, ImageFilters};

use crate::helpers::{admin, ids, image, on_both_databases, put, set, t0, user, TestDb};

on_both_databases!(
    listing_filters_by_ids_names_statuses_owners_and_formats,
    listing_filters_by_a_size_range,
    listing_requires_every_tag,
    listing_filters_by_protection,
    hidden_images_are_listed_only_when_asked_for,
    listing_filters_by_creation_and_update_times,
    listing_filters_by_extra_properties_and_by_core_columns,
    deleted_and_killed_images_are_never_listed,
);

async fn listing_filters_by_ids_names_statuses_owners_and_formats(db: &TestDb) {
    let a = put(&db.repo, image("p1", "alpha", 0)).await;
    let mut queued = image("p2", "beta", 1);
    queued.status = ImageStatus::Queued;
    queued.disk_format = Some(DiskFormat::Raw);
    queued.container_format = Some(ContainerFormat::Ovf);
    let b = put(&db.repo, queued).await;
    let c = put(&db.repo, image("p3", "gamma", 2)).await;

    let list = |f: ImageFilters| ids(&db.repo, admin(), f);
    assert_eq!(
        set(&list(ImageFilters {
            ids: Some(vec![a, c]),
            ..Default::default()
        })
        .await),
        set(&[a, c])
    );
    assert_eq!(
        set(&list(ImageFilters {
            names: Some(vec!["alpha".into(), "beta".into()]),
            ..Default::default()
        })
        .await),
        set(&[a, b])
    );
    assert_eq!(
        list(ImageFilters {
            statuses: Some(vec![ImageStatus::Queued]),
            ..Default::default()
        })
        .await,
        [b]
    );
    assert_eq!(
        set(&list(ImageFilters {
            owners: Some(vec!["p1".into(), "p3".into()]),
            ..Default::default()
        })
        .await),
        set(&[a, c])
    );
    assert_eq!(
        list(ImageFilters {
            disk_formats: Some(vec!["raw".into()]),
            ..Default::default()
        })
        .await,
        [b]
    );
    assert_eq!(
        set(&list(ImageFilters {
            container_formats: Some(vec!["bare".into()]),
            ..Default::default()
        })
        .await),
        set(&[a, c])
    );
    // An empty "any of" matches nothing; filters combine with AND.
    assert!(list(ImageFilters {
        ids: Some(vec![]),
        ..Default::default()
    })
    .await
    .is_empty());
    assert!(list(ImageFilters {
        names: Some(vec!["alpha".into()]),
        owners: Some(vec!["p2".into()]),
        ..Default::default()
    })
    .await
    .is_empty());
}

async fn listing_filters_by_a_size_range(db: &TestDb) {
    let mut sized = Vec::new();
    for (i, size) in [Some(10), Some(100), Some(1000), None]
        .into_iter()
        .enumerate()
    {
        let mut img = image("p1", "sized", i as i64);
        img.size = size;
        sized.push(put(&db.repo, img).await);
    }
    let range = |min, max| ImageFilters {
        size_min: min,
        size_max: max,
        ..Default::default()
    };
    assert_eq!(
        set(&ids(&db.repo, admin(), range(Some(100), None)).await),
        set(&sized[1..3])
    );
    assert_eq!(
        set(&ids(&db.repo, admin(), range(None, Some(100))).await),
        set(&sized[0..2])
    );
    assert_eq!(
        ids(&db.repo, admin(), range(Some(50), Some(500))).await,
        [sized[1]]
    );
}

async fn listing_requires_every_tag(db: &TestDb) {
    let mut both = image("p1", "both", 0);
    both.tags = vec!["x".into(), "y".into()];
    let both = put(&db.repo, both).await;
    let mut only_x = image("p1", "x", 1);
    only_x.tags = vec!["x".into()];
    let only_x = put(&db.repo, only_x).await;

    let tags = |t: &[&str]| ImageFilters {
        tags: t.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(
        set(&ids(&db.repo, admin(), tags(&["x"])).await),
        set(&[both, only_x])
    );
    assert_eq!(ids(&db.repo, admin(), tags(&["x", "y"])).await, [both]);
    assert!(ids(&db.repo, admin(), tags(&["x", "z"])).await.is_empty());

    // A removed tag no longer matches.
    let mut untagged = db.repo.get(&admin(), both, false).await.unwrap();
    untagged.tags = vec!["x".into()];
    db.repo.save(&admin(), untagged, None).await.unwrap();
    assert!(ids(&db.repo, admin(), tags(&["y"])).await.is_empty());
}

async fn listing_filters_by_protection(db: &TestDb) {
    let mut protected = image("p1", "p", 0);
    protected.protected = true;
    let protected = put(&db.repo, protected).await;
    let open = put(&db.repo, image("p1", "o", 1)).await;
    let by = |p| ImageFilters {
        protected: Some(p),
        ..Default::default()
    };
    assert_eq!(ids(&db.repo, admin(), by(true)).await, [protected]);
    assert_eq!(ids(&db.repo, admin(), by(false)).await, [open]);
}

async fn hidden_images_are_listed_only_when_asked_for(db: &TestDb) {
    let mut hidden = image("p1", "hidden", 0);
    hidden.os_hidden = true;
    let hidden = put(&db.repo, hidden).await;
    let shown = put(&db.repo, image("p1", "shown", 1)).await;
    let by = |h| ImageFilters {
        os_hidden: h,
        ..Default::default()
    };
    assert_eq!(ids(&db.repo, user("p1"), by(None)).await, [shown]);
    assert_eq!(ids(&db.repo, user("p1"), by(Some(false))).await, [shown]);
    assert_eq!(ids(&db.repo, user("p1"), by(Some(true))).await, [hidden]);
    // Hidden images stay reachable by id.
    assert!(db.repo.get(&user("p1"), hidden, false).await.is_ok());
}

async fn listing_filters_by_creation_and_update_times(db: &TestDb) {
    let early = put(&db.repo, image("p1", "early", 0)).await;
    let middle = put(&db.repo, image("p1", "middle", 60)).await;
    let late = put(&db.repo, image("p1", "late", 120)).await;
    let at = t0() + Duration::seconds(60);

    let created = |op| ImageFilters {
        created_at: vec![(op, at)],
        ..Default::default()
    };
    assert_eq!(ids(&db.repo, admin(), created(CmpOp::Eq)).await, [middle]);
    assert_eq!(
        set(&ids(&db.repo, admin(), created(CmpOp::Neq)).await),
        set(&[early, late])
    );
    assert_eq!(ids(&db.repo, admin(), created(CmpOp::Gt)).await, [late]);
    assert_eq!(
        set(&ids(&db.repo, admin(), created(CmpOp::Gte)).await),
        set(&[middle, late])
    );
    assert_eq!(ids(&db.repo, admin(), created(CmpOp::Lt)).await, [early]);
    assert_eq!(
        set(&ids(&db.repo, admin(), created(CmpOp::Lte)).await),
        set(&[early, middle])
    );
    let window = ImageFilters {
        created_at: vec![
            (CmpOp::Gt, t0()),
            (CmpOp::Lt, t0() + Duration::seconds(120)),
        ],
        ..Default::default()
    };
    assert_eq!(ids(&db.repo, admin(), window).await, [middle]);

    // A save stamps updated_at with the present, far after t0.
    let touched = db.repo.get(&admin(), early, false).await.unwrap();
    db.repo.save(&admin(), touched, None).await.unwrap();
    let updated = ImageFilters {
        updated_at: vec![(CmpOp::Gt, t0() + Duration::days(1))],
        ..Default::default()
    };
    assert_eq!(ids(&db.repo, admin(), updated).await, [early]);
}

async fn listing_filters_by_extra_properties_and_by_core_columns(db: &TestDb) {
    let mut scsi = image("p1", "scsi", 0);
    scsi.properties = BTreeMap::from([
        ("hw_disk_bus".to_owned(), "scsi".to_owned()),
        ("os_distro".to_owned(), "ubuntu".to_owned()),
    ]);
    scsi.min_ram = 512;
    scsi.checksum = Some("c".repeat(32));
    let scsi = put(&db.repo, scsi).await;
    let mut virtio = image("p1", "virtio", 1);
    virtio.properties = BTreeMap::from([("hw_disk_bus".to_owned(), "virtio".to_owned())]);
    put(&db.repo, virtio).await;

    let props = |pairs: &[(&str, &str)]| ImageFilters {
        properties: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    assert_eq!(
        ids(&db.repo, admin(), props(&[("hw_disk_bus", "scsi")])).await,
        [scsi]
    );
    assert_eq!(
        ids(
            &db.repo,
            admin(),
            props(&[("hw_disk_bus", "scsi"), ("os_distro", "ubuntu")])
        )
        .await,
        [scsi]
    );
    assert!(ids(
        &db.repo,
        admin(),
        props(&[("hw_disk_bus", "scsi"), ("os_distro", "debian")])
    )
    .await
    .is_empty());
    assert_eq!(
        ids(&db.repo, admin(), props(&[("min_ram", "512")])).await,
        [scsi]
    );
    let checksum = "c".repeat(32);
    assert_eq!(
        ids(&db.repo, admin(), props(&[("checksum", &checksum)])).await,
        [scsi]
    );
    // Glance compares the column with the text: a value that is no number matches nothing.
    assert!(ids(&db.repo, admin(), props(&[("min_ram", "lots")]))
        .await
        .is_empty());
}

async fn deleted_and_killed_images_are_never_listed(db: &TestDb) {
    let live = put(&db.repo, image("p1", "live", 0)).await;
    let mut killed = image("p1", "killed", 1);
    killed.status = ImageStatus::Killed;
    put(&db.repo, killed).await;
    let deleted = put(&db.repo, image("p1", "deleted", 2)).await;
    db.repo
        .delete(&admin(), deleted, ImageStatus::Deleted)
        .await
        .unwrap();
    let pending = put(&db.repo, image("p1", "pending", 3)).await;
    db.repo
        .delete(&admin(), pending, ImageStatus::PendingDelete)
        .await
        .unwrap();
    let asking = ImageFilters {
        statuses: Some(vec![
            ImageStatus::Active,
            ImageStatus::Killed,
            ImageStatus::Deleted,
            ImageStatus::PendingDelete,
        ]),
        ..Default::default()
    };
    assert_eq!(ids(&db.repo, admin(), asking).await, [live]);
}
