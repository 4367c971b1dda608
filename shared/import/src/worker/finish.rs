//! How an import ends: its success or its failure recorded (the image put back as it was
//! before a failed import), riding out a registry that is away for a moment.

use std::sync::atomic::Ordering;

use glance_bus::Outcome;
use glance_domain::{ImageStatus, Location};
use glance_proto::tasks::{Task, TaskStatus};

use crate::plugins;
use crate::tasks::{merge_store_list, FAILED, IMPORTING, IMPORT_TASK};

use super::Run;

impl Run<'_> {
    /// Drops the import lock and records the task's success, riding out a registry or
    /// database that is away for a moment; if it stays away, the message goes back to the
    /// queue and the next attempt finds the data in place and finishes the bookkeeping.
    pub(super) async fn succeed(&self, task: Task, ttl: u32) -> Outcome {
        let unlocked = crate::persist("dropping the import lock", || async {
            self.update(|image| {
                image.properties.remove(IMPORT_TASK);
            })
            .await
        })
        .await;
        if let Err(e) = unlocked {
            tracing::warn!(error = %e, "could not drop the import lock");
        }
        let done = Task {
            status: TaskStatus::Success,
            result: Some(serde_json::json!({"image_id": self.image_id().to_string()})),
            // Glance's last progress report stays as the message of a finished import.
            message: format!("Copied {} MiB", self.progress.load(Ordering::Relaxed) >> 20),
            ..task
        };
        let saved = crate::persist("recording the import's success", || {
            self.import.tasks.save(&self.ctx, done.clone(), None, ttl)
        })
        .await;
        match saved {
            Ok(done) => self.notify("task.success", &done).await,
            Err(e) if e.is_transient() => {
                return Outcome::Retry(format!("could not record the import's success: {e}"))
            }
            Err(e) => tracing::warn!(error = %e, "could not record the import's success"),
        }
        tracing::info!(image_id = %self.image_id(), method = self.work.msg.method.name(), "image imported");
        Outcome::Done
    }

    /// Glance's revert: the stores this import wrote to are dropped, its stores move from
    /// importing to failed, the image goes back to `queued` (not for copy-image), the lock
    /// is released and the task records why.
    pub(super) async fn fail(&self, task: Task, why: &str, restore_image: bool, ttl: u32) {
        if restore_image {
            let targets = self.work.store_ids();
            let copy = self.work.copy();
            let dropped = std::sync::Mutex::new(Vec::new());
            let revert = self.revert.lock().expect("not poisoned").clone();
            let restored = self
                .update(|image| {
                    if let Some(revert) = &revert {
                        revert.apply(image);
                    }
                    let (gone, kept): (Vec<Location>, Vec<Location>) =
                        std::mem::take(&mut image.locations)
                            .into_iter()
                            .partition(|l| match l.metadata.get("store") {
                                Some(store) => targets.contains(store),
                                None => !copy,
                            });
                    image.locations = kept;
                    *dropped.lock().expect("not poisoned") = gone;
                    merge_store_list(image, IMPORTING, &targets, true);
                    merge_store_list(image, FAILED, &targets, false);
                    if image.locations.is_empty() {
                        image.checksum = None;
                        image.os_hash_algo = None;
                        image.os_hash_value = None;
                        image.size = None;
                        image.virtual_size = None;
                    }
                    if !copy && image.status != ImageStatus::Queued {
                        image.status = ImageStatus::Queued;
                        image.size = None;
                        image.virtual_size = None;
                    }
                    image.properties.remove(IMPORT_TASK);
                })
                .await;
            match restored {
                Ok(_) => {
                    let dropped = dropped.into_inner().expect("not poisoned");
                    let urls = dropped.into_iter().map(|l| l.url);
                    self.import
                        .remove_data(&self.ctx, self.image_id(), urls)
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "could not put the image back after a failed import")
                }
            }
            if !copy {
                let staging = self.import.stores.staging();
                crate::remove_staged(staging, self.image_id()).await;
                plugins::discard(staging, self.image_id()).await;
            }
        }
        let failed = Task {
            status: TaskStatus::Failure,
            message: why.to_owned(),
            ..task
        };
        let saved = crate::persist("recording the import's failure", || {
            self.import.tasks.save(&self.ctx, failed.clone(), None, ttl)
        })
        .await;
        match saved {
            Ok(failed) => self.notify("task.failure", &failed).await,
            Err(e) => tracing::warn!(error = %e, "could not record the import's failure"),
        }
    }

    /// A task notification, under the request id of the import's request.
    pub(super) async fn notify(&self, event_type: &str, task: &Task) {
        self.import.notifier.task(&self.ctx, event_type, task).await;
    }
}
