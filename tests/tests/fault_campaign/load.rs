//! The steady mixed load and the ledger of what the service acknowledged under it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The project every load image shares itself with.
pub const MEMBER: &str = "campaign-member";

/// What the service acknowledged.
#[derive(Default)]
pub struct Ledger {
    /// Images created (201), not deleted since.
    pub live: BTreeSet<String>,
    /// Uploads answered 204, and imports answered 202: md5 and size of their data.
    pub data: BTreeMap<String, (String, u64)>,
    /// Which of `data` came through an import (their task must finish too).
    pub imported: BTreeSet<String>,
    /// Images staged (204) whose import was not accepted: they wait in `uploading`.
    pub staged: BTreeSet<String>,
    /// Images whose delete was answered 204 (with delayed delete: their data is scrubbed).
    pub deleted: BTreeSet<String>,
    /// Images shared with [`MEMBER`] (200).
    pub shared: BTreeSet<String>,
    /// Images whose prefetch into the node's cache was accepted (202).
    pub prefetched: BTreeSet<String>,
    /// When each write was acknowledged.
    pub acked_at: Vec<Instant>,
    /// How many writes were acknowledged so far, for those watching the load run.
    pub counter: Arc<AtomicUsize>,
}

impl Ledger {
    pub fn acked(&self) -> usize {
        self.acked_at.len()
    }

    fn ack(&mut self) {
        self.acked_at.push(Instant::now());
        self.counter.fetch_add(1, Ordering::SeqCst);
    }

    fn forget(&mut self, id: &str) {
        self.live.remove(id);
        self.data.remove(id);
        self.imported.remove(id);
        self.staged.remove(id);
        self.shared.remove(id);
        self.prefetched.remove(id);
    }
}

pub fn payload(round: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i: usize| (i.wrapping_mul(round + 7) % 251) as u8)
        .collect()
}

async fn status_of(res: reqwest::Result<reqwest::Response>) -> u16 {
    res.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Until `stop`, rounds of: create, then upload 2 MiB (or, one round in six, stage and import
/// glance-direct), download, share (one in three), prefetch (one in four) and delete the
/// oldest image with data (one in five), through `apis` in turn. Errors are expected while
/// a fault is under way; only acknowledgements are recorded.
pub async fn load(
    http: reqwest::Client,
    apis: Vec<String>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicUsize>,
) -> Ledger {
    let mut ledger = Ledger {
        counter,
        ..Ledger::default()
    };
    let mut round = 0;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        let api = &apis[round % apis.len()];
        let created = http
            .post(format!("{api}/v2/images"))
            .json(&json!({"name": format!("load-{round}"), "disk_format": "raw", "container_format": "bare"}))
            .send()
            .await;
        let image = match created {
            Ok(res) if res.status() == 201 => res.json::<Value>().await.ok(),
            _ => None,
        };
        let Some(image) = image else {
            // As a client would, pause before trying again.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let id = image["id"].as_str().unwrap_or_default().to_owned();
        ledger.live.insert(id.clone());
        ledger.ack();

        let data = payload(round, 2 << 20);
        let (md5, _) = glance_tests::digests(&data);
        let image_url = format!("{api}/v2/images/{id}");
        if round % 6 == 0 {
            let staged = http
                .put(format!("{image_url}/stage"))
                .header("content-type", "application/octet-stream")
                .body(data.clone())
                .send()
                .await;
            if status_of(staged).await == 204 {
                let import = http
                    .post(format!("{image_url}/import"))
                    .json(&json!({"method": {"name": "glance-direct"}}))
                    .send()
                    .await;
                if status_of(import).await == 202 {
                    ledger.data.insert(id.clone(), (md5, data.len() as u64));
                    ledger.imported.insert(id.clone());
                    ledger.ack();
                } else {
                    ledger.staged.insert(id.clone());
                }
            }
        } else {
            let put = http
                .put(format!("{image_url}/file"))
                .header("content-type", "application/octet-stream")
                .body(data.clone())
                .send()
                .await;
            if status_of(put).await == 204 {
                ledger.data.insert(id.clone(), (md5, data.len() as u64));
                ledger.ack();
            }
        }
        let _ = http.get(format!("{image_url}/file")).send().await;
        if round % 3 == 0 {
            let shared = http
                .post(format!("{image_url}/members"))
                .json(&json!({ "member": MEMBER }))
                .send()
                .await;
            if status_of(shared).await == 200 {
                ledger.shared.insert(id.clone());
                ledger.ack();
            }
        }
        if round % 4 == 0 && ledger.data.contains_key(&id) && !ledger.imported.contains(&id) {
            let prefetch = http.put(format!("{api}/v2/cache/{id}")).send().await;
            if status_of(prefetch).await == 202 {
                ledger.prefetched.insert(id.clone());
                ledger.ack();
            }
        }
        if round % 5 == 0 {
            let oldest = ledger
                .data
                .keys()
                .find(|k| !ledger.imported.contains(*k))
                .cloned();
            if let Some(old) = oldest {
                let del = http.delete(format!("{api}/v2/images/{old}")).send().await;
                // Unanswered, the delete may or may not have landed: expect neither.
                ledger.forget(&old);
                if status_of(del).await == 204 {
                    ledger.deleted.insert(old);
                    ledger.ack();
                }
            }
        }
    }
    ledger
}
