//! Creates that arrive together are committed together.
//!
//! A create is a small transaction (the image row, its tags and properties), and on
//! SQLite most of its cost is the commit: every page it touched is appended to the WAL,
//! checksummed, and now and then checkpointed, and each statement is a round trip to the
//! connection's thread. Creates queue here while a transaction is being written; the next
//! transaction takes all of them (up to [`MAX_BATCH`]), so under concurrency the commit's
//! cost and the round trips are shared. A create that arrives alone is written alone, as
//! before, and waits for nothing.
//!
//! Each image stays all or nothing, with the same answer it would have had alone: if a
//! batch fails for any reason (an id already taken, say), it is rolled back and its
//! creates are written one by one through [`ImageRepo::create_one`].

use std::sync::Mutex;

use glance_domain::{Image, RequestContext};
use glance_proto::registry::{RegistryError, RegistryResult};
use sea_orm::{
    ActiveModelTrait, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel, TransactionTrait,
};
use tokio::sync::oneshot;

use super::convert::{
    about_the_rows, db_error, new_image_row, new_location, new_property, new_tag, now,
};
use super::ImageRepo;
use crate::entity::image;

/// The most creates one transaction takes: bounds the transaction's size (and how long
/// the write connection is held), not what queues.
pub(super) const MAX_BATCH: usize = 64;

/// Rows per INSERT: well under SQLite's and PostgreSQL's limits on bound values (32,766
/// and 65,535) for the widest row, the image's 20 columns.
const ROWS_PER_INSERT: usize = 256;

struct Pending {
    ctx: RequestContext,
    image: Image,
    reply: oneshot::Sender<RegistryResult<Image>>,
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    /// Whether a task is writing batches; it takes whatever queues until none is left.
    writing: bool,
}

/// The creates waiting for the write transaction (one per repository and its clones).
#[derive(Default)]
pub(super) struct CreateQueue {
    state: Mutex<State>,
}

impl std::fmt::Debug for CreateQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateQueue").finish_non_exhaustive()
    }
}

impl ImageRepo {
    /// Queues `image` (already normalised) and returns once its transaction committed or
    /// failed. The batch is written on a task of its own, so a caller that goes away does
    /// not cut short the creates of the others.
    pub(super) async fn create_batched(
        &self,
        ctx: &RequestContext,
        image: Image,
    ) -> RegistryResult<Image> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.creates.state.lock().expect("create queue poisoned");
            state.pending.push(Pending {
                ctx: ctx.clone(),
                image,
                reply,
            });
            !std::mem::replace(&mut state.writing, true)
        };
        if start {
            let repo = self.clone();
            tokio::spawn(async move { repo.write_queued().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(RegistryError::Internal(
                "the task writing the image was lost".into(),
            ))
        })
    }

    /// Writes batches until the queue is empty.
    async fn write_queued(self) {
        // Should a batch panic, the next create starts a writer again rather than queueing
        // behind one that is gone (the creates of that batch hear "lost").
        let _writing = Writing(&self.creates);
        loop {
            let batch: Vec<Pending> = {
                let mut state = self.creates.state.lock().expect("create queue poisoned");
                if state.pending.is_empty() {
                    state.writing = false;
                    return;
                }
                let n = state.pending.len().min(MAX_BATCH);
                state.pending.drain(..n).collect()
            };
            self.write_batch(batch).await;
        }
    }

    async fn write_batch(&self, batch: Vec<Pending>) {
        if batch.len() > 1 {
            let images: Vec<&Image> = batch.iter().map(|p| &p.image).collect();
            match self.insert_together(&images).await {
                Ok(()) => {
                    for p in batch {
                        self.written(&p.image.id);
                        let _ = p.reply.send(Ok(p.image));
                    }
                    return;
                }
                // A full or unreachable database fails each create alike, and must be
                // reported (a full SQLite has its writer replaced) before the next write.
                Err(e) if !about_the_rows(&e) => {
                    let e = db_error("inserting a batch of images", e);
                    for p in batch {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(count = batch.len(), error = %e,
                        "a batch of creates failed; writing them one by one");
                }
            }
        }
        for p in batch {
            let result = self.create_one(&p.ctx, p.image).await;
            let _ = p.reply.send(result);
        }
    }

    /// Every image of `images` with its children in one transaction, or none of them.
    #[tracing::instrument(level = "debug", skip_all, fields(count = images.len()))]
    async fn insert_together(&self, images: &[&Image]) -> Result<(), DbErr> {
        // Every row is made before the first statement, so the transaction holds the
        // write connection for the statements alone.
        let now = now();
        let (mut properties, mut tags, mut locations) = (Vec::new(), Vec::new(), Vec::new());
        for image in images {
            let id = image.id.to_string();
            for (name, value) in &image.properties {
                properties.push(new_property(&id, name, value, now));
            }
            for tag in &image.tags {
                tags.push(new_tag(&id, tag, now));
            }
            for location in &image.locations {
                locations.push(new_location(&id, location, now));
            }
        }
        let rows: Vec<image::ActiveModel> = images.iter().map(|i| new_image_row(i)).collect();

        let txn = self.database().writer().begin().await?;
        // The image rows go first, as in `create_one`: on SQLite the transaction takes the
        // write lock with its first statement.
        insert_rows(&txn, rows).await?;
        insert_rows(&txn, properties).await?;
        insert_rows(&txn, tags).await?;
        insert_rows(&txn, locations).await?;
        txn.commit().await
    }
}

/// Clears `writing` when a writer task unwinds.
struct Writing<'a>(&'a CreateQueue);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut state) = self.0.state.lock() {
                state.writing = false;
            }
        }
    }
}

/// `rows` in INSERTs of at most [`ROWS_PER_INSERT`]; none for no rows.
async fn insert_rows<A>(txn: &DatabaseTransaction, mut rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(ROWS_PER_INSERT));
        let chunk = std::mem::replace(&mut rows, rest);
        A::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}
