use std::collections::BTreeMap;

use chrono::Utc;
use glance_domain::{ImageId, ImageStatus};
use glance_proto::registry::{ImageFilters, RegistryError};

use crate::helpers::{admin, image, location, on_both_databases, put, user, TestDb};

on_both_databases!(
    a_created_image_reads_back_exactly_with_its_properties_tags_and_locations,
    creating_an_image_twice_is_a_duplicate,
    the_same_create_delivered_twice_succeeds,
    a_missing_image_is_not_found,
    saving_replaces_properties_tags_and_locations,
    a_dropped_property_can_come_back,
    a_save_from_the_expected_state_wins,
    a_save_that_lost_the_race_is_a_conflict,
    of_two_saves_of_one_read_record_only_the_first_applies_when_guarded,
    saving_a_deleted_image_is_not_found,
    only_the_owner_or_an_admin_may_save_or_delete,
    a_deleted_image_is_hidden_unless_deleted_images_are_asked_for,
    deleting_returns_the_image_with_its_locations,
    deleting_an_image_twice_is_not_found,
    a_pending_delete_image_keeps_its_locations_for_the_scrubber,
    a_pending_delete_image_can_be_restored,
);

async fn a_created_image_reads_back_exactly_with_its_properties_tags_and_locations(db: &TestDb) {
    let mut img = image("p1", "cirros", 0);
    img.created_at = Utc::now(); // nanoseconds: the repository keeps microseconds
    img.updated_at = img.created_at;
    img.checksum = Some("0123456789abcdef0123456789abcdef".into());
    img.os_hash_algo = Some("sha512".into());
    img.os_hash_value = Some("ab".repeat(64));
    img.virtual_size = Some(4096);
    img.min_disk = 1;
    img.min_ram = 512;
    img.protected = true;
    img.tags = vec!["b".into(), "a".into(), "b".into()];
    img.properties = BTreeMap::from([
        ("hw_disk_bus".to_owned(), "scsi".to_owned()),
        ("description".to_owned(), "x".repeat(10_000)),
    ]);
    img.locations = vec![location("file:///a"), location("file:///b")];

    let created = db.repo.create(&user("p1"), img.clone()).await.unwrap();
    let read = db.repo.get(&user("p1"), img.id, false).await.unwrap();

    assert_eq!(read, created);
    assert_eq!(
        read.tags,
        ["b", "a"],
        "tags are a set, in first-given order"
    );
    assert_eq!(read.properties, img.properties);
    assert_eq!(read.locations, img.locations);
    assert_eq!(
        read.created_at.timestamp_micros(),
        img.created_at.timestamp_micros()
    );
}

async fn creating_an_image_twice_is_a_duplicate(db: &TestDb) {
    let img = image("p1", "one", 0);
    db.repo.create(&user("p1"), img.clone()).await.unwrap();
    // Another create (not a redelivery of this one) that happens to pick the same id.
    let mut other = img.clone();
    other.created_at += chrono::Duration::seconds(1);
    let again = db.repo.create(&user("p1"), other).await;
    assert!(
        matches!(again, Err(RegistryError::Duplicate(_))),
        "{again:?}"
    );

    // Ids of deleted images are never reused either (OSSN-0075).
    db.repo
        .delete(&admin(), img.id, ImageStatus::Deleted)
        .await
        .unwrap();
    let reused = db.repo.create(&user("p1"), img).await;
    assert!(
        matches!(reused, Err(RegistryError::Duplicate(_))),
        "{reused:?}"
    );
}

/// A registry that committed a create and died before acknowledging it gets the request
/// again from the broker; the stored row is its own, so that is success.
async fn the_same_create_delivered_twice_succeeds(db: &TestDb) {
    let mut img = image("p1", "redelivered", 0);
    img.created_at = Utc::now();
    img.tags = vec!["t".into()];
    let first = db.repo.create(&user("p1"), img.clone()).await.unwrap();
    let second = db.repo.create(&user("p1"), img).await.unwrap();
    assert_eq!(second, first);
}

async fn a_missing_image_is_not_found(db: &TestDb) {
    let id = ImageId::new();
    let got = db.repo.get(&admin(), id, true).await;
    assert_eq!(got, Err(RegistryError::image_not_found(id)));
}

async fn saving_replaces_properties_tags_and_locations(db: &TestDb) {
    let mut img = image("p1", "before", 0);
    img.tags = vec!["keep".into(), "drop".into()];
    img.properties = BTreeMap::from([
        ("keep".to_owned(), "1".to_owned()),
        ("change".to_owned(), "old".to_owned()),
        ("drop".to_owned(), "x".to_owned()),
    ]);
    img.locations = vec![location("file:///a"), location("file:///b")];
    let created = db.repo.create(&user("p1"), img).await.unwrap();

    let mut edit = created.clone();
    edit.name = Some("after".into());
    edit.tags = vec!["keep".into(), "new".into()];
    edit.properties = BTreeMap::from([
        ("keep".to_owned(), "1".to_owned()),
        ("change".to_owned(), "new".to_owned()),
        ("add".to_owned(), "y".to_owned()),
    ]);
    let mut moved = location("file:///a");
    moved.status = "pending_delete".into();
    edit.locations = vec![moved, location("file:///c")];
    // Whatever the caller sends, creation time is kept and update time is now.
    edit.created_at = Utc::now();

    let saved = db.repo.save(&user("p1"), edit.clone(), None).await.unwrap();
    assert_eq!(saved.created_at, created.created_at);
    assert!(saved.updated_at > created.updated_at);

    let read = db.repo.get(&user("p1"), created.id, false).await.unwrap();
    assert_eq!(read, saved);
    assert_eq!(read.name.as_deref(), Some("after"));
    assert_eq!(read.tags, ["keep", "new"]);
    assert_eq!(read.properties, edit.properties);
    assert_eq!(read.locations, edit.locations);
}

async fn a_dropped_property_can_come_back(db: &TestDb) {
    let mut img = image("p1", "props", 0);
    img.properties = BTreeMap::from([("os_distro".to_owned(), "ubuntu".to_owned())]);
    let created = db.repo.create(&user("p1"), img).await.unwrap();

    let mut without = created.clone();
    without.properties.clear();
    db.repo.save(&user("p1"), without, None).await.unwrap();

    let mut again = created.clone();
    again.properties = BTreeMap::from([("os_distro".to_owned(), "debian".to_owned())]);
    db.repo.save(&user("p1"), again, None).await.unwrap();

    let read = db.repo.get(&user("p1"), created.id, false).await.unwrap();
    assert_eq!(read.properties["os_distro"], "debian");
}

async fn a_save_from_the_expected_state_wins(db: &TestDb) {
    let mut img = image("p1", "upload", 0);
    img.status = ImageStatus::Queued;
    let created = db.repo.create(&user("p1"), img).await.unwrap();

    let mut saving = created.clone();
    saving.status = ImageStatus::Saving;
    let saved = db
        .repo
        .save(&user("p1"), saving, Some(ImageStatus::Queued))
        .await
        .unwrap();
    assert_eq!(saved.status, ImageStatus::Saving);
}

async fn a_save_that_lost_the_race_is_a_conflict(db: &TestDb) {
    let mut img = image("p1", "race", 0);
    img.status = ImageStatus::Queued;
    let created = db.repo.create(&user("p1"), img).await.unwrap();

    let mut first = created.clone();
    first.status = ImageStatus::Saving;
    db.repo
        .save(&user("p1"), first, Some(ImageStatus::Queued))
        .await
        .unwrap();

    let mut second = created.clone();
    second.status = ImageStatus::Importing;
    second.name = Some("loser".into());
    let lost = db
        .repo
        .save(&user("p1"), second, Some(ImageStatus::Queued))
        .await;
    assert!(matches!(lost, Err(RegistryError::Conflict(_))), "{lost:?}");

    let read = db.repo.get(&user("p1"), created.id, false).await.unwrap();
    assert_eq!(read.status, ImageStatus::Saving);
    assert_eq!(
        read.name.as_deref(),
        Some("race"),
        "the losing save changed nothing"
    );
}

async fn of_two_saves_of_one_read_record_only_the_first_applies_when_guarded(db: &TestDb) {
    let read = db
        .repo
        .create(&user("p1"), image("p1", "locked", 0))
        .await
        .unwrap();
    let since = Some(read.updated_at);
    let active = Some(ImageStatus::Active);

    let mut first = read.clone();
    first.properties.insert("lock".into(), "first".into());
    db.repo
        .save_guarded(
            &user("p1"),
            first,
            active,
            since,
            &glance_proto::leases::LeaseChange::Keep,
        )
        .await
        .unwrap();

    let mut second = read.clone();
    second.properties.insert("lock".into(), "second".into());
    let lost = db
        .repo
        .save_guarded(
            &user("p1"),
            second.clone(),
            active,
            since,
            &glance_proto::leases::LeaseChange::Keep,
        )
        .await;
    assert!(
        matches!(&lost, Err(RegistryError::Conflict(m)) if m.contains("since it was read")),
        "{lost:?}"
    );
    let stored = db.repo.get(&user("p1"), read.id, false).await.unwrap();
    assert_eq!(stored.properties["lock"], "first");

    // Unguarded, the same save applies: the guard is what refused it.
    db.repo.save(&user("p1"), second, active).await.unwrap();
    let stored = db.repo.get(&user("p1"), read.id, false).await.unwrap();
    assert_eq!(stored.properties["lock"], "second");
}

async fn saving_a_deleted_image_is_not_found(db: &TestDb) {
    let created = db
        .repo
        .create(&user("p1"), image("p1", "gone", 0))
        .await
        .unwrap();
    db.repo
        .delete(&user("p1"), created.id, ImageStatus::Deleted)
        .await
        .unwrap();
    let saved = db.repo.save(&user("p1"), created.clone(), None).await;
    assert!(
        matches!(saved, Err(RegistryError::NotFound(_))),
        "{saved:?}"
    );
    let cas = db
        .repo
        .save(&user("p1"), created, Some(ImageStatus::Active))
        .await;
    assert!(matches!(cas, Err(RegistryError::NotFound(_))), "{cas:?}");
}

async fn only_the_owner_or_an_admin_may_save_or_delete(db: &TestDb) {
    let created = db
        .repo
        .create(&user("p1"), image("p1", "mine", 0))
        .await
        .unwrap();
    let saved = db.repo.save(&user("p2"), created.clone(), None).await;
    assert!(
        matches!(saved, Err(RegistryError::NotFound(_))),
        "{saved:?}"
    );
    let deleted = db
        .repo
        .delete(&user("p2"), created.id, ImageStatus::Deleted)
        .await;
    assert!(
        matches!(deleted, Err(RegistryError::NotFound(_))),
        "{deleted:?}"
    );

    db.repo.save(&admin(), created.clone(), None).await.unwrap();
    db.repo
        .delete(&admin(), created.id, ImageStatus::Deleted)
        .await
        .unwrap();
}

async fn a_deleted_image_is_hidden_unless_deleted_images_are_asked_for(db: &TestDb) {
    let mut img = image("p1", "doomed", 0);
    img.tags = vec!["t".into()];
    let id = put(&db.repo, img).await;
    db.repo
        .delete(&user("p1"), id, ImageStatus::Deleted)
        .await
        .unwrap();

    let hidden = db.repo.get(&user("p1"), id, false).await;
    assert_eq!(hidden, Err(RegistryError::image_not_found(id)));
    let listed = crate::helpers::ids(&db.repo, admin(), ImageFilters::default()).await;
    assert!(!listed.contains(&id));

    let shown = db.repo.get(&admin(), id, true).await.unwrap();
    assert_eq!(shown.status, ImageStatus::Deleted);
    assert!(shown.deleted_at.is_some());
    assert!(
        shown.tags.is_empty(),
        "a deleted image's children are deleted too"
    );
}

async fn deleting_returns_the_image_with_its_locations(db: &TestDb) {
    let mut img = image("p1", "data", 0);
    img.locations = vec![location("file:///data/x")];
    let id = put(&db.repo, img).await;
    let deleted = db
        .repo
        .delete(&user("p1"), id, ImageStatus::Deleted)
        .await
        .unwrap();
    assert_eq!(deleted.status, ImageStatus::Deleted);
    assert_eq!(deleted.locations, vec![location("file:///data/x")]);
    assert!(deleted.deleted_at.is_some());
}

async fn deleting_an_image_twice_is_not_found(db: &TestDb) {
    let id = put(&db.repo, image("p1", "twice", 0)).await;
    db.repo
        .delete(&user("p1"), id, ImageStatus::Deleted)
        .await
        .unwrap();
    let again = db.repo.delete(&user("p1"), id, ImageStatus::Deleted).await;
    assert_eq!(again, Err(RegistryError::image_not_found(id)));
    let bad = db.repo.delete(&admin(), id, ImageStatus::Active).await;
    assert!(matches!(bad, Err(RegistryError::Invalid(_))), "{bad:?}");
}

async fn a_pending_delete_image_keeps_its_locations_for_the_scrubber(db: &TestDb) {
    let mut img = image("p1", "delayed", 0);
    img.locations = vec![location("file:///data/y")];
    let id = put(&db.repo, img).await;
    let pending = db
        .repo
        .delete(&user("p1"), id, ImageStatus::PendingDelete)
        .await
        .unwrap();
    assert_eq!(pending.status, ImageStatus::PendingDelete);
    assert_eq!(pending.locations[0].status, "pending_delete");

    assert!(db.repo.get(&user("p1"), id, false).await.is_err());
    let seen = db.repo.get(&admin(), id, true).await.unwrap();
    assert_eq!(seen.locations.len(), 1, "the scrubber finds the data");
    let first_deleted_at = seen.deleted_at.unwrap();

    // The scrubber's final delete is accepted on the already deleted row.
    let scrubbed = db
        .repo
        .delete(&admin(), id, ImageStatus::Deleted)
        .await
        .unwrap();
    assert_eq!(scrubbed.status, ImageStatus::Deleted);
    assert_eq!(scrubbed.deleted_at, Some(first_deleted_at));
    let after = db.repo.get(&admin(), id, true).await.unwrap();
    assert!(after.locations.is_empty());
}

async fn a_pending_delete_image_can_be_restored(db: &TestDb) {
    let mut img = image("p1", "restore", 0);
    img.locations = vec![location("file:///data/z")];
    img.tags = vec!["kept".into()];
    let id = put(&db.repo, img).await;
    let mut restored = db
        .repo
        .delete(&admin(), id, ImageStatus::PendingDelete)
        .await
        .unwrap();
    restored.status = ImageStatus::Active;
    restored.deleted_at = None;
    restored.locations[0].status = "active".into();
    db.repo
        .save(&admin(), restored, Some(ImageStatus::PendingDelete))
        .await
        .unwrap();

    let read = db.repo.get(&user("p1"), id, false).await.unwrap();
    assert_eq!(read.status, ImageStatus::Active);
    assert_eq!(read.deleted_at, None);
    assert_eq!(read.tags, ["kept"]);
    assert_eq!(read.locations, vec![location("file:///data/z")]);
}
