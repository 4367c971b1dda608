//! Counting, after a fault, what the ledger says should hold and does not.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use glance_tests::files_in;
use serde_json::Value;

use crate::load::{Ledger, MEMBER};

/// Where to look: an API that is up, the store's directory, the node's cache directory.
pub struct Site {
    pub http: reqwest::Client,
    pub api: String,
    pub images: PathBuf,
    pub cache: PathBuf,
}

/// One row of the table.
#[derive(Debug, Default)]
pub struct Row {
    pub fault: &'static str,
    pub acked: usize,
    pub writes_lost: usize,
    pub bytes_lost: u64,
    /// Accepted prefetches and imports whose work never happened, and messages
    /// dead-lettered during the fault.
    pub msgs_lost: usize,
    /// Accepted imports whose task reported a failure (the image back in `queued`).
    pub imports_failed: usize,
    pub stuck: usize,
    pub orphans: usize,
    /// What was found wrong, one line each.
    pub details: Vec<String>,
    /// Seconds from the end of the fault to the first write acknowledged after it.
    pub back_secs: Option<f64>,
    /// Seconds from the end of the load until the audit found nothing missing.
    pub settled_secs: f64,
}

const TRANSIENT: &[&str] = &["saving", "uploading", "importing"];

async fn get_json(http: &reqwest::Client, url: String) -> Option<Value> {
    let res = http.get(url).send().await.ok()?;
    match res.status().as_u16() {
        200 => res.json().await.ok(),
        _ => None,
    }
}

pub async fn image(http: &reqwest::Client, api: &str, id: &str) -> Option<Value> {
    get_json(http, format!("{api}/v2/images/{id}")).await
}

/// Messages in the broker's dead-letter queues (`<queue>.dead`), through the control script
/// named by `GLANCE_TEST_RABBITMQCTL`.
pub fn dead_letters() -> usize {
    let script = std::env::var("GLANCE_TEST_RABBITMQCTL").expect("GLANCE_TEST_RABBITMQCTL");
    let out = Command::new(&script)
        .args([
            "list_queues",
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} list_queues: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let name = cols.next()?;
            let count: usize = cols.next()?.parse().ok()?;
            name.ends_with(".dead").then_some(count)
        })
        .sum()
}

/// The statuses of image `id`'s import tasks.
async fn task_statuses(http: &reqwest::Client, api: &str, id: &str) -> Vec<String> {
    let tasks = get_json(http, format!("{api}/v2/images/{id}/tasks")).await;
    tasks
        .as_ref()
        .and_then(|t| t["tasks"].as_array())
        .map(|t| {
            t.iter()
                .filter_map(|t| t["status"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether image `id`'s import ended in a failure its task reports, leaving the image
/// `queued` (a fault may fail an import, as in Glance; it must not lose one).
async fn import_failed(http: &reqwest::Client, api: &str, id: &str) -> bool {
    let queued = image(http, api, id)
        .await
        .is_some_and(|i| i["status"] == "queued");
    queued
        && task_statuses(http, api, id)
            .await
            .iter()
            .any(|s| s == "failure")
}

/// Counts, once, what `ledger` (plus the images in `extra`) says should hold and does not.
pub async fn audit(site: &Site, ledger: &Ledger, extra: &[String], dead_before: usize) -> Row {
    let (http, api) = (&site.http, site.api.as_str());
    let mut row = Row {
        acked: ledger.acked(),
        msgs_lost: dead_letters().saturating_sub(dead_before),
        ..Row::default()
    };
    if row.msgs_lost > 0 {
        row.details
            .push(format!("{} message(s) dead-lettered", row.msgs_lost));
    }
    for id in ledger.live.iter().chain(extra) {
        match image(http, api, id).await {
            None => {
                row.writes_lost += 1;
                row.details.push(format!("{id}: created, now missing"));
            }
            // Staged and waiting for its import: `uploading` until someone imports it.
            Some(img) if img["status"] == "uploading" && ledger.staged.contains(id) => {}
            Some(img) if TRANSIENT.contains(&img["status"].as_str().unwrap_or_default()) => {
                row.stuck += 1;
                row.details.push(format!("{id}: stuck {}", img["status"]));
            }
            Some(_) => {}
        }
    }
    for (id, (md5, size)) in &ledger.data {
        let body = match http.get(format!("{api}/v2/images/{id}/file")).send().await {
            Ok(res) if res.status() == 200 => res.bytes().await.ok(),
            _ => None,
        };
        if body.is_some_and(|b| glance_tests::digests(&b).0 == *md5) {
            continue;
        }
        if ledger.imported.contains(id) {
            // Accepted for import and not done: its task must say it failed.
            if import_failed(http, api, id).await {
                row.imports_failed += 1;
            } else {
                row.msgs_lost += 1;
                row.details
                    .push(format!("{id}: import accepted, not done nor failed"));
            }
        } else {
            row.writes_lost += 1;
            row.bytes_lost += size;
            row.details
                .push(format!("{id}: uploaded, data missing or wrong"));
        }
    }
    for id in &ledger.imported {
        let statuses = task_statuses(http, api, id).await;
        if statuses.iter().any(|s| s == "pending" || s == "processing") {
            row.stuck += 1;
            row.details.push(format!("{id}: import tasks {statuses:?}"));
        }
    }
    for id in &ledger.shared {
        let member = get_json(http, format!("{api}/v2/images/{id}/members/{MEMBER}")).await;
        if member.is_none() {
            row.writes_lost += 1;
            row.details.push(format!("{id}: membership lost"));
        }
    }
    for id in &ledger.deleted {
        if image(http, api, id).await.is_some() {
            row.writes_lost += 1;
            row.details.push(format!("{id}: deleted, still there"));
        }
        // Delayed delete: the scrubbers must have removed the data by now.
        if site.images.join(id).exists() {
            row.orphans += 1;
            row.details
                .push(format!("{id}: deleted, data not scrubbed"));
        }
    }
    if !ledger.prefetched.is_empty() {
        let cached = get_json(http, format!("{api}/v2/cache"))
            .await
            .map(|state| glance_tests::cached_ids(&state))
            .unwrap_or_default();
        for id in ledger.prefetched.iter().filter(|id| !cached.contains(id)) {
            row.msgs_lost += 1;
            row.details
                .push(format!("{id}: prefetch accepted, not cached"));
        }
    }
    let staged_leftovers = files_in(&site.images.join(".staging"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| ledger.data.contains_key(n) || ledger.deleted.contains(n))
        })
        .count();
    let partials = [
        files_in(&site.images.join(".incoming")),
        files_in(&site.images.join(".staging/.incoming")),
        files_in(&site.cache.join("incomplete")),
    ];
    for path in partials.iter().flatten() {
        row.orphans += 1;
        row.details
            .push(format!("{}: partial file", path.display()));
    }
    row.orphans += staged_leftovers;
    row
}

/// Audits every 250 ms until nothing is lost, stuck or orphaned (or 60 s passed); the last
/// audit, with the seconds it took and when the service first acknowledged a write after
/// `fault_end`.
pub async fn recover(
    site: &Site,
    ledger: &Ledger,
    extra: &[String],
    dead_before: usize,
    fault_end: Instant,
) -> Row {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    loop {
        let row = audit(site, ledger, extra, dead_before).await;
        let clean =
            row.writes_lost == 0 && row.msgs_lost == 0 && row.stuck == 0 && row.orphans == 0;
        if clean || Instant::now() > deadline {
            let back = ledger
                .acked_at
                .iter()
                .find(|t| **t > fault_end)
                .map(|t| t.duration_since(fault_end).as_secs_f64());
            return Row {
                back_secs: back,
                settled_secs: start.elapsed().as_secs_f64(),
                ..row
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn print(rows: &[Row]) {
    println!(
        "\n{:<40} {:>6} {:>11} {:>10} {:>9} {:>14} {:>6} {:>8} {:>8} {:>11}",
        "fault",
        "acked",
        "writes lost",
        "bytes lost",
        "msgs lost",
        "imports failed",
        "stuck",
        "orphans",
        "back (s)",
        "settled (s)"
    );
    for r in rows {
        let back = r
            .back_secs
            .map_or("never".to_owned(), |s| format!("{s:.1}"));
        println!(
            "{:<40} {:>6} {:>11} {:>10} {:>9} {:>14} {:>6} {:>8} {:>8} {:>11.1}",
            r.fault,
            r.acked,
            r.writes_lost,
            r.bytes_lost,
            r.msgs_lost,
            r.imports_failed,
            r.stuck,
            r.orphans,
            back,
            r.settled_secs
        );
    }
    for r in rows.iter().filter(|r| !r.details.is_empty()) {
        println!("{}:", r.fault);
        for d in &r.details {
            println!("  {d}");
        }
    }
}
