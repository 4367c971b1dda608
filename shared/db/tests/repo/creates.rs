//! Creates that arrive together share a transaction (`repo/batch.rs`); each must still be
//! answered, and stored, exactly as if it had come alone.

use std::collections::BTreeMap;

use futures::future::join_all;
use glance_domain::Image;
use glance_proto::registry::RegistryError;

use crate::helpers::{image, location, on_both_databases, user, TestDb};

on_both_databases!(
    creates_sent_together_each_read_back_with_their_own_children,
    a_taken_id_among_creates_sent_together_fails_only_its_own_create,
);

/// An image whose children name it, so a child filed under another image shows.
fn distinct(i: usize) -> Image {
    let mut img = image("p1", &format!("together-{i}"), i as i64);
    img.tags = (0..=i % 3).map(|t| format!("tag-{i}-{t}")).collect();
    img.properties = (0..i % 4)
        .map(|p| (format!("prop_{p}"), format!("value-{i}-{p}")))
        .collect::<BTreeMap<_, _>>();
    if i.is_multiple_of(5) {
        img.locations = vec![location(&format!("file:///images/{i}"))];
    }
    img
}

async fn creates_sent_together_each_read_back_with_their_own_children(db: &TestDb) {
    let images: Vec<Image> = (0..150).map(distinct).collect();
    let ctx = user("p1");
    let created = join_all(images.iter().map(|img| db.repo.create(&ctx, img.clone()))).await;
    for (img, created) in images.iter().zip(created) {
        let created = created.unwrap();
        assert_eq!(created.id, img.id);
        let read = db.repo.get(&ctx, img.id, false).await.unwrap();
        assert_eq!(read, created, "{:?}", img.name);
        assert_eq!(read.tags, img.tags, "{:?}", img.name);
        assert_eq!(read.properties, img.properties, "{:?}", img.name);
        assert_eq!(read.locations, img.locations, "{:?}", img.name);
    }
}

async fn a_taken_id_among_creates_sent_together_fails_only_its_own_create(db: &TestDb) {
    let ctx = user("p1");
    let first = distinct(1);
    db.repo.create(&ctx, first.clone()).await.unwrap();
    // Another create that happens to pick the same id, and the same create delivered
    // again (it succeeds: see `the_same_create_delivered_twice_succeeds`), among others.
    let mut taken = distinct(2);
    taken.id = first.id;
    let others: Vec<Image> = (10..40).map(distinct).collect();
    let mut all = vec![taken, first.clone()];
    all.extend(others.iter().cloned());
    let results = join_all(all.iter().map(|img| db.repo.create(&ctx, img.clone()))).await;

    assert!(
        matches!(results[0], Err(RegistryError::Duplicate(_))),
        "{:?}",
        results[0]
    );
    assert_eq!(results[1].as_ref().unwrap().name, first.name);
    for (img, result) in others.iter().zip(&results[2..]) {
        let created = result.as_ref().unwrap();
        let read = db.repo.get(&ctx, img.id, false).await.unwrap();
        assert_eq!(&read, created);
        assert_eq!(read.tags, img.tags);
    }
    let stored = db.repo.get(&ctx, first.id, false).await.unwrap();
    assert_eq!(stored.name, first.name, "the taken id kept its first image");
    assert_eq!(stored.tags, first.tags);
}
