//! md5 and the configured multihash computed while bytes pass, each on its own thread so the
//! two hashes run in parallel with each other and with the network and disk.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;
use glance_digest::{Algorithm, Hasher};

/// Batches (1 MiB each) queued per hasher before the upload waits for it: bounds memory
/// per upload.
const QUEUE_DEPTH: usize = 4;

struct Worker {
    tx: SyncSender<Bytes>,
    handle: JoinHandle<String>,
}

impl Worker {
    fn start(mut digest: Hasher) -> Self {
        let (tx, rx) = sync_channel::<Bytes>(QUEUE_DEPTH);
        let handle = std::thread::Builder::new()
            .name("glance-hash".into())
            .spawn(move || {
                for chunk in rx {
                    digest.update(&chunk);
                }
                digest.finish_hex()
            })
            .expect("spawn hash thread");
        Self { tx, handle }
    }
}

async fn queue(tx: &SyncSender<Bytes>, chunk: Bytes) {
    // A send only fails if the thread died, which `finish` reports.
    match tx.try_send(chunk) {
        Ok(()) | Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {}
        Err(std::sync::mpsc::TrySendError::Full(chunk)) => {
            let tx = tx.clone();
            let _ = tokio::task::spawn_blocking(move || tx.send(chunk)).await;
        }
    }
}

/// Feeds every chunk to an md5 and a multihash thread.
pub struct Hashers {
    md5: Worker,
    multihash: Worker,
}

/// The hex digests of everything fed.
#[derive(Debug)]
pub struct Digests {
    pub md5: String,
    pub multihash: String,
}

impl Hashers {
    pub fn start(multihash: Algorithm) -> Self {
        Self {
            md5: Worker::start(Hasher::md5()),
            multihash: Worker::start(Hasher::new(multihash)),
        }
    }

    /// Queues `chunk` for both hashers. A full queue (a hasher `QUEUE_DEPTH` batches
    /// behind) waits on a blocking thread: that is the back-pressure on the upload.
    pub async fn update_async(&self, chunk: Bytes) {
        queue(&self.md5.tx, chunk.clone()).await;
        queue(&self.multihash.tx, chunk).await;
    }

    pub async fn finish(self) -> Digests {
        tokio::task::spawn_blocking(move || {
            let Hashers { md5, multihash } = self;
            drop(md5.tx);
            drop(multihash.tx);
            Digests {
                md5: md5.handle.join().expect("md5 thread panicked"),
                multihash: multihash.handle.join().expect("hash thread panicked"),
            }
        })
        .await
        .expect("join hashers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digests_match_the_known_values_for_abc() {
        let h = Hashers::start(Algorithm::Sha512);
        h.update_async(Bytes::from_static(b"a")).await;
        h.update_async(Bytes::from_static(b"bc")).await;
        let d = h.finish().await;
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert!(d.multihash.starts_with("ddaf35a193617aba"));
    }
}
