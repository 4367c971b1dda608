//! Streams in and out of the cache: reading an entry (whole or one range) off a blocking
//! thread, and the tee that copies a stream into a [`CacheWriter`] as it passes.

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use glance_domain::ImageId;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

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

/// Bytes a tee holds for its writer: how far the writer may fall behind the stream before
/// the tee gives up the entry ([`WhenBehind::GiveUp`]) or waits ([`WhenBehind::Wait`]).
/// Also the most memory one tee holds besides the chunk in hand.
pub const TEE_BUFFER: usize = 8 << 20;

/// What a tee does when its writer is [`TEE_BUFFER`] bytes behind the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBehind {
    /// Hold the stream until the writer catches up: for a prefetch, whose point is the entry.
    Wait,
    /// Let the writer go (its file is removed) and pass the stream on at full speed: for a
    /// client's download, which the cache must never slow. The image can be prefetched.
    GiveUp,
}

/// How a tee ended. Only [`TeeOutcome::Cached`] leaves an entry; every other outcome removes
/// the writer's file (data that fails verification goes to `invalid/`).
#[derive(Debug)]
pub enum TeeOutcome {
    /// The data matched the record and is the entry (or another writer's identical entry
    /// was there first).
    Cached(Entry),
    /// The stream stopped before the end (the client left, the store failed to read).
    Abandoned,
    /// The writer fell [`TEE_BUFFER`] behind and the tee let it go.
    FellBehind,
    /// Writing or verifying failed.
    Failed(CacheError),
}

/// Where a tee's thread writes: a [`CacheWriter`] (and, in tests, one that stalls).
pub(crate) trait Sink: Send + 'static {
    fn image_id(&self) -> ImageId;
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    fn is_full(&self) -> bool;
    fn commit(self) -> Result<Entry, CacheError>;
}

impl Sink for CacheWriter {
    fn image_id(&self) -> ImageId {
        CacheWriter::image_id(self)
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        CacheWriter::write(self, chunk)
    }
    fn is_full(&self) -> bool {
        CacheWriter::is_full(self)
    }
    fn commit(self) -> Result<Entry, CacheError> {
        CacheWriter::commit(self)
    }
}

enum Msg {
    /// A chunk and the share of the tee's buffer it holds until written.
    Chunk(Bytes, OwnedSemaphorePermit),
    End,
}

/// Passes `inner` through unchanged while a blocking thread writes every chunk to
/// `writer`. At the end of the stream (or once the record's size is reached) the entry is
/// verified and promoted; if the stream is dropped early or fails, the writer is dropped
/// and nothing is kept. A cache write error only stops caching, never the stream.
///
/// Chunks wait for the writer in a buffer of [`TEE_BUFFER`] bytes, so memory stays bounded;
/// `when_behind` says what happens when it is full.
pub fn tee<S, E>(
    inner: S,
    writer: CacheWriter,
    when_behind: WhenBehind,
) -> (
    impl Stream<Item = Result<Bytes, E>> + 'static,
    oneshot::Receiver<TeeOutcome>,
)
where
    S: Stream<Item = Result<Bytes, E>> + 'static,
    E: 'static,
{
    tee_into(inner, writer, when_behind, TEE_BUFFER)
}

/// The tee's state on the stream's side; `None` once it stopped feeding the writer.
struct Feed {
    tx: mpsc::UnboundedSender<Msg>,
    buffer: Arc<Semaphore>,
    capacity: usize,
    when_behind: WhenBehind,
    id: ImageId,
}

impl Feed {
    /// Hands `chunk` to the writer; `false` once the tee no longer feeds it.
    async fn send(&self, chunk: &Bytes) -> bool {
        // A chunk larger than the whole buffer takes all of it.
        let share = chunk.len().clamp(1, self.capacity) as u32;
        let permit = match self.when_behind {
            WhenBehind::Wait => match self.buffer.clone().acquire_many_owned(share).await {
                Ok(p) => p,
                Err(_) => return false, // the writer stopped (error, or the entry is whole)
            },
            WhenBehind::GiveUp => match self.buffer.clone().try_acquire_many_owned(share) {
                Ok(p) => p,
                Err(TryAcquireError::Closed) => return false,
                Err(TryAcquireError::NoPermits) => {
                    // Closing the buffer tells the writer to drop the entry at once.
                    self.buffer.close();
                    tracing::info!(image_id = %self.id, buffer = self.capacity,
                        "the image cache fell behind the download; this fill is given up");
                    return false;
                }
            },
        };
        self.tx.send(Msg::Chunk(chunk.clone(), permit)).is_ok()
    }
}

pub(crate) fn tee_into<S, E, W>(
    inner: S,
    writer: W,
    when_behind: WhenBehind,
    capacity: usize,
) -> (
    impl Stream<Item = Result<Bytes, E>> + 'static,
    oneshot::Receiver<TeeOutcome>,
)
where
    S: Stream<Item = Result<Bytes, E>> + 'static,
    E: 'static,
    W: Sink,
{
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let buffer = Arc::new(Semaphore::new(capacity));
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let (done_tx, done_rx) = oneshot::channel();
    let feed = Feed {
        tx,
        buffer: buffer.clone(),
        capacity,
        when_behind,
        id: writer.image_id(),
    };
    tokio::task::spawn_blocking(move || {
        let outcome = fill(writer, rx, &buffer);
        if let TeeOutcome::Failed(e) = &outcome {
            tracing::warn!(error = %e, "image not cached");
        }
        let _ = done_tx.send(outcome);
    });
    let stream = futures::stream::unfold(
        (Box::pin(inner), Some(feed)),
        |(mut inner, mut feed)| async move {
            match inner.next().await {
                Some(Ok(chunk)) => {
                    if let Some(f) = &feed {
                        if !f.send(&chunk).await {
                            feed = None;
                        }
                    }
                    Some((Ok(chunk), (inner, feed)))
                }
                // Dropping the feed without `End` abandons the entry.
                Some(Err(e)) => Some((Err(e), (inner, None))),
                None => {
                    if let Some(f) = feed.take() {
                        let _ = f.tx.send(Msg::End);
                    }
                    None
                }
            }
        },
    );
    (stream, done_rx)
}

/// The writer's side: writes what arrives until the end, an error, or the tee closing the
/// buffer. Returning drops `writer` unsettled (its file removed) unless it committed.
fn fill<W: Sink>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    buffer: &Semaphore,
) -> TeeOutcome {
    let settle = |r: Result<Entry, CacheError>| match r {
        Ok(entry) => TeeOutcome::Cached(entry),
        Err(e) => TeeOutcome::Failed(e),
    };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Chunk(chunk, _share) => {
                if buffer.is_closed() {
                    return TeeOutcome::FellBehind;
                }
                if let Err(e) = writer.write(&chunk) {
                    // Closed, so the stream stops feeding (and never waits) from here on.
                    buffer.close();
                    return TeeOutcome::Failed(e.into());
                }
                if writer.is_full() {
                    buffer.close();
                    return settle(writer.commit());
                }
            }
            Msg::End => return settle(writer.commit()),
        }
    }
    if buffer.is_closed() {
        TeeOutcome::FellBehind
    } else {
        TeeOutcome::Abandoned
    }
}
