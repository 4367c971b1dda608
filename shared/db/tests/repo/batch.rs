//! `get_many`: many image-shows in one call (one statement on PostgreSQL), each answered as
//! its own `get` would be.

use std::collections::BTreeMap;

use glance_domain::{ImageId, ImageStatus, MemberStatus, RequestContext, Visibility};
use glance_proto::registry::{GetImage, RegistryError};

use crate::helpers::{
    admin, image, location, on_both_databases, put, user, with_visibility, TestDb,
};

on_both_databases!(
    a_batch_answers_each_show_in_order_as_a_single_get_would,
    a_batch_of_one_image_many_times_answers_every_copy,
);

fn show(ctx: RequestContext, id: ImageId) -> GetImage {
    GetImage {
        ctx,
        id,
        include_deleted: false,
    }
}

async fn a_batch_answers_each_show_in_order_as_a_single_get_would(db: &TestDb) {
    let mut full = image("p1", "full", 0);
    full.tags = vec!["b".into(), "a".into()];
    full.properties = BTreeMap::from([("hw_disk_bus".to_owned(), "scsi".to_owned())]);
    full.locations = vec![location("file:///a"), location("file:///b")];
    let full = put(&db.repo, full).await;
    let private = put(
        &db.repo,
        with_visibility(image("p1", "private", 1), Visibility::Private),
    )
    .await;
    let shared = put(&db.repo, image("p1", "shared", 2)).await;
    db.repo
        .add_member(shared, "p2", MemberStatus::Pending)
        .await
        .unwrap();
    let deleted = put(&db.repo, image("p1", "deleted", 3)).await;
    db.repo
        .delete(&admin(), deleted, ImageStatus::Deleted)
        .await
        .unwrap();
    let missing = ImageId::new();

    let batch = vec![
        show(user("p1"), full),
        show(user("p2"), private), // not p2's: hidden
        show(user("p2"), shared),  // p2 is a member
        show(user("p3"), shared),  // p3 is not
        show(user("p1"), deleted),
        GetImage {
            include_deleted: true,
            ..show(admin(), deleted)
        },
        show(user("p1"), missing),
        show(admin(), private),
    ];
    let answers = db.repo.get_many(&batch).await;
    assert_eq!(answers.len(), batch.len());
    for (item, answer) in batch.iter().zip(&answers) {
        let single = db.repo.get(&item.ctx, item.id, item.include_deleted).await;
        assert_eq!(
            answer, &single,
            "{:?} asking for {}",
            item.ctx.project_id, item.id
        );
    }
    let found: Vec<bool> = answers.iter().map(Result::is_ok).collect();
    assert_eq!(
        found,
        [true, false, true, false, false, true, false, true],
        "{answers:#?}"
    );
    let first = answers[0].as_ref().unwrap();
    assert_eq!(first.tags, ["b", "a"]);
    assert_eq!(first.properties["hw_disk_bus"], "scsi");
    assert_eq!(first.locations.len(), 2);
    assert!(matches!(&answers[6], Err(e) if *e == RegistryError::image_not_found(missing)));
}

async fn a_batch_of_one_image_many_times_answers_every_copy(db: &TestDb) {
    let id = put(&db.repo, image("p1", "one", 0)).await;
    let batch: Vec<GetImage> = (0..5).map(|_| show(user("p1"), id)).collect();
    let answers = db.repo.get_many(&batch).await;
    assert_eq!(answers.len(), 5);
    assert!(answers
        .iter()
        .all(|a| a.as_ref().is_ok_and(|img| img.id == id)));
}
