//! Many writers at once: SQLite must queue them, not fail them with "database is locked".

use glance_domain::ImageStatus;
use glance_proto::registry::{ImageFilters, ListImages, RegistryError};

use crate::helpers::{admin, image, on_both_databases, request, user, TestDb};

on_both_databases!(
    eight_writers_creating_two_hundred_images_each_all_succeed,
    of_concurrent_saves_from_the_same_state_exactly_one_wins,
    of_concurrent_guarded_saves_of_one_read_exactly_one_wins,
);

async fn eight_writers_creating_two_hundred_images_each_all_succeed(db: &TestDb) {
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let repo = db.repo.clone();
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for i in 0..200 {
                    let mut img = image(&format!("p{w}"), &format!("w{w}-{i}"), i);
                    img.tags = vec![format!("writer-{w}")];
                    img.properties.insert("i".into(), i.to_string());
                    if let Err(e) = repo.create(&user(&format!("p{w}")), img).await {
                        errors.push(e);
                    }
                    // Readers run alongside the writers.
                    if i % 50 == 0 {
                        let req = ListImages {
                            limit: 20,
                            ..request(admin(), ImageFilters::default())
                        };
                        if let Err(e) = repo.list(&req).await {
                            errors.push(e);
                        }
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for writer in writers {
        errors.extend(writer.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );

    let all = ListImages {
        limit: 5000,
        ..request(admin(), ImageFilters::default())
    };
    assert_eq!(db.repo.list(&all).await.unwrap().len(), 1600);
}

async fn of_concurrent_saves_from_the_same_state_exactly_one_wins(db: &TestDb) {
    let mut img = image("p1", "contested", 0);
    img.status = ImageStatus::Queued;
    let created = db.repo.create(&user("p1"), img).await.unwrap();

    let racers: Vec<_> = (0..8)
        .map(|i| {
            let repo = db.repo.clone();
            let mut mine = created.clone();
            mine.status = ImageStatus::Saving;
            mine.name = Some(format!("racer-{i}"));
            tokio::spawn(async move {
                repo.save(&user("p1"), mine, Some(ImageStatus::Queued))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(saved) => winners.push(saved.name.unwrap()),
            Err(RegistryError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = db.repo.get(&user("p1"), created.id, false).await.unwrap();
    assert_eq!(stored.name, Some(winners.remove(0)));
}

/// The copy-image lock: no status change to compare, only "nobody saved since I read".
async fn of_concurrent_guarded_saves_of_one_read_exactly_one_wins(db: &TestDb) {
    let read = db
        .repo
        .create(&user("p1"), image("p1", "contested", 0))
        .await
        .unwrap();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let repo = db.repo.clone();
            let mut mine = read.clone();
            mine.properties.insert("lock".into(), format!("racer-{i}"));
            let since = Some(read.updated_at);
            tokio::spawn(async move {
                repo.save_guarded(
                    &user("p1"),
                    mine,
                    Some(ImageStatus::Active),
                    since,
                    &glance_proto::leases::LeaseChange::Keep,
                )
                .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(saved) => winners.push(saved.properties["lock"].clone()),
            Err(RegistryError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = db.repo.get(&user("p1"), read.id, false).await.unwrap();
    assert_eq!(stored.properties["lock"], winners[0]);
}
