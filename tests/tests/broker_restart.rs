//! The broker goes away and comes back: processes keep running, reads answer 503 with a
//! clear message while it is down (never a hang), and service resumes once it is back.
//!
//! It stops the shared test broker, so it is `#[ignore]`d (the runner reports it skipped)
//! and `scripts/test.sh` runs it alone, after every other test, with
//! `GLANCE_TEST_RABBITMQCTL` naming a `rabbitmqctl` bound to the test node.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn rabbitmqctl(ctl: &str, verb: &str) {
    let status = Command::new(ctl)
        .arg(verb)
        .status()
        .expect("run rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {verb} failed");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "stops the shared broker: scripts/test.sh runs it alone"]
async fn services_survive_a_broker_restart() {
    let node = std::env::var("GLANCE_TEST_RABBITMQCTL").expect(
        "GLANCE_TEST_RABBITMQCTL is unset: this test stops the broker, so only \
         scripts/test.sh runs it, alone, with a rabbitmqctl for its test node",
    );
    let mesh = common::mesh().await;
    let _registry = mesh.registry("registry");
    let (_api, api) = mesh.api("api").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let img: Value = http
        .post(format!("{api}/v2/images"))
        .json(&json!({"name": "survivor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = img["id"].as_str().unwrap().to_owned();

    rabbitmqctl(&node, "stop_app");
    let started = Instant::now();
    let res = http
        .get(format!("{api}/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        503,
        "reads fail cleanly while the broker is down"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a 503, not a hang"
    );
    let body = res.text().await.unwrap();
    assert!(body.contains("unavailable"), "{body}");

    rabbitmqctl(&node, "start_app");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = http
            .get(format!("{api}/v2/images/{id}"))
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not come back after the broker did (last status {})\n\
             --- api log ---\n{}\n--- registry log ---\n{}",
            res.status(),
            mesh.log("api"),
            mesh.log("registry")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let res = http
        .post(format!("{api}/v2/images"))
        .json(&json!({"name": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "writes work again too");
}
