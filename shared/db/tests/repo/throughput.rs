//! Not tests: rough rates of the registry's hottest call, for comparing changes.
//! `cargo test --release -p glance-db --test repo throughput -- --ignored --nocapture`

use std::time::Instant;

use crate::helpers::{image, location, put, user, TestDb};

async fn gets_per_second(db: &TestDb) -> f64 {
    let mut img = image("p1", "hot", 0);
    img.tags = vec!["a".into(), "b".into()];
    img.properties.insert("k".into(), "v".into());
    img.locations = vec![location("file:///x")];
    let id = put(&db.repo, img).await;
    let (total, tasks) = (20_000, 16);
    let start = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let repo = db.repo.clone();
            tokio::spawn(async move {
                for _ in 0..total / tasks {
                    repo.get(&user("p1"), id, false).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    f64::from(total) / start.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn throughput_of_get_on_sqlite() {
    let rate = gets_per_second(&TestDb::sqlite().await).await;
    eprintln!("SQLite: {rate:.0} gets/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn throughput_of_get_on_postgres() {
    if let Some(db) = TestDb::postgres().await {
        let rate = gets_per_second(&db).await;
        eprintln!("PostgreSQL: {rate:.0} gets/s");
    }
}
