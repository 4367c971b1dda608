//! Streams in and out of the cache: reading an entry (whole or one range) off a blocking
//! thread, and the tee that copies a download into a [`CacheWriter`] as it passes.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::{CacheError, CacheWriter, Entry};

pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

const READ_CHUNK: usize = 1 << 20;

/// Streams `range` (or all) of an open file in 1 MiB reads on a blocking thread, a few
/// reads ahead. The file is open, so an eviction meanwhile does not cut the download.
pub fn read_file(mut file: std::fs::File, range: Range<u64>) -> ByteStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut remaining = range.end.saturating_sub(range.start);
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64);
            // `read_to_end` fills spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(want as usize);
            match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "cached image is shorter than its record",
                    )));
                    return;
                }
                Ok(n) => {
                    remaining -= n as u64;
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

enum Msg {
    Chunk(Bytes),
    End,
}

/// How a tee ended: the entry promoted, or why not. `Err(None)` means the stream was
/// abandoned (client gone, read error) and nothing was kept.
pub type TeeOutcome = Result<Entry, Option<CacheError>>;

/// Passes `inner` through unchanged while a blocking thread writes every chunk to
/// `writer`. At the end of the stream (or once the record's size is reached) the entry is
/// verified and promoted; if the stream is dropped early or fails, the writer is dropped
/// and nothing is kept. A cache write error only stops caching, never the stream.
///
/// The channel to the writer thread is bounded, so a slow cache disk slows the download
/// rather than filling memory.
pub fn tee<S, E>(
    inner: S,
    writer: CacheWriter,
) -> (
    impl Stream<Item = Result<Bytes, E>> + 'static,
    oneshot::Receiver<TeeOutcome>,
)
where
    S: Stream<Item = Result<Bytes, E>> + 'static,
    E: 'static,
{
    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let mut writer = Some(writer);
        let mut outcome: TeeOutcome = Err(None);
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Chunk(chunk) => {
                    let Some(w) = writer.as_mut() else { continue };
                    if let Err(e) = w.write(&chunk) {
                        tracing::warn!(error = %e, "cache write failed; serving on uncached");
                        writer = None;
                        outcome = Err(Some(e.into()));
                    } else if w.is_full() {
                        outcome = writer.take().expect("writer").commit().map_err(Some);
                    }
                }
                Msg::End => {
                    if let Some(w) = writer.take() {
                        outcome = w.commit().map_err(Some);
                    }
                    break;
                }
            }
        }
        if let Err(Some(e)) = &outcome {
            tracing::warn!(error = %e, "image not cached");
        }
        drop(writer);
        let _ = done_tx.send(outcome);
    });
    let stream = futures::stream::unfold(
        (Box::pin(inner), Some(tx)),
        |(mut inner, mut tx)| async move {
            match inner.next().await {
                Some(Ok(chunk)) => {
                    if let Some(t) = &tx {
                        if t.send(Msg::Chunk(chunk.clone())).await.is_err() {
                            tx = None;
                        }
                    }
                    Some((Ok(chunk), (inner, tx)))
                }
                // Dropping the sender without `End` abandons the entry.
                Some(Err(e)) => Some((Err(e), (inner, None))),
                None => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(Msg::End).await;
                    }
                    None
                }
            }
        },
    );
    (stream, done_rx)
}
