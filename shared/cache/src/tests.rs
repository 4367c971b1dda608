use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use glance_domain::ImageId;
use md5::Digest;

use super::stream::{tee_into, Sink};
use super::*;

fn expected_for(data: &[u8]) -> Expected {
    Expected {
        md5: Some(hex::encode(md5::Md5::digest(data))),
        hash_algo: Some("sha512".into()),
        hash_value: Some(hex::encode(sha2::Sha512::digest(data))),
        size: Some(data.len() as u64),
    }
}

fn put(cache: &ImageCache, data: &[u8]) -> ImageId {
    let id = ImageId::new();
    let mut w = cache.writer(id, expected_for(data)).unwrap();
    w.write(data).unwrap();
    w.commit().unwrap();
    id
}

fn incomplete_files(cache: &ImageCache) -> usize {
    std::fs::read_dir(cache.dir().join("incomplete"))
        .unwrap()
        .count()
}

#[test]
fn a_verified_write_becomes_an_entry_with_no_hits() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = put(&cache, b"hello world");
    assert!(cache.is_cached(id));
    let e = cache.entry(id).unwrap();
    assert_eq!((e.size, e.hits), (11, 0));
    assert_eq!(std::fs::read(cache.path(id)).unwrap(), b"hello world");
    assert_eq!(incomplete_files(&cache), 0);
}

#[test]
fn data_that_does_not_match_its_record_goes_to_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = ImageId::new();
    let mut w = cache.writer(id, expected_for(b"the real data")).unwrap();
    w.write(b"the fake data").unwrap();
    assert!(matches!(w.commit(), Err(CacheError::Mismatch { .. })));
    assert!(!cache.is_cached(id));
    assert!(dir.path().join("invalid").join(id.to_string()).exists());
    assert_eq!(
        cache
            .clean(Duration::from_secs(3600))
            .unwrap()
            .invalid_removed,
        1
    );
}

#[test]
fn a_dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = ImageId::new();
    let mut w = cache.writer(id, expected_for(b"abc")).unwrap();
    w.write(b"a").unwrap();
    assert!(cache.is_being_cached(id, Duration::from_secs(60)));
    drop(w);
    assert!(!cache.is_cached(id));
    assert!(!cache.is_being_cached(id, Duration::from_secs(60)));
    assert_eq!(incomplete_files(&cache), 0);
}

#[test]
fn an_image_without_checksums_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = ImageId::new();
    let mut w = cache.writer(id, Expected::default()).unwrap();
    w.write(b"abc").unwrap();
    assert!(matches!(w.commit(), Err(CacheError::Unverifiable(_))));
    assert!(!cache.is_cached(id));
}

#[test]
fn hits_count_and_touch_last_accessed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = put(&cache, b"x");
    let before = cache.entry(id).unwrap().last_accessed;
    cache.record_hit(id).unwrap();
    cache.record_hit(id).unwrap();
    let e = cache.entry(id).unwrap();
    assert_eq!(e.hits, 2);
    assert!(e.last_accessed >= before);
}

#[test]
fn pruning_evicts_the_least_recently_accessed_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let a = put(&cache, &[1; 100]);
    let b = put(&cache, &[2; 100]);
    let c = put(&cache, &[3; 100]);
    // Access order: b, then a, then c; b is the least recently accessed.
    for (id, t) in [(b, 1000.0), (a, 2000.0), (c, 3000.0)] {
        let mut e = cache.entry(id).unwrap();
        e.last_accessed = t;
        cache.write_entry(&e).unwrap();
    }
    assert_eq!(cache.prune(300).unwrap(), PruneReport::default());
    let report = cache.prune(150).unwrap();
    assert_eq!(report.total_files_pruned, 2);
    assert_eq!(report.total_bytes_pruned, 200);
    assert!(!cache.is_cached(b) && !cache.is_cached(a) && cache.is_cached(c));
}

#[test]
fn the_queue_is_fifo_and_refuses_cached_images() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let cached = put(&cache, b"x");
    assert!(!cache.queue(cached).unwrap());
    let first = ImageId::new();
    let second = ImageId::new();
    assert!(cache.queue(first).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    assert!(cache.queue(second).unwrap());
    assert!(!cache.queue(first).unwrap());
    assert_eq!(cache.list_queued().unwrap(), vec![first, second]);
    assert_eq!(cache.delete_all_queued().unwrap(), 2);
    assert!(cache.list_queued().unwrap().is_empty());
}

#[test]
fn committing_removes_the_queue_marker() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = ImageId::new();
    cache.queue(id).unwrap();
    let mut w = cache.writer(id, expected_for(b"abc")).unwrap();
    w.write(b"abc").unwrap();
    w.commit().unwrap();
    assert!(!cache.is_queued(id));
}

#[test]
fn the_cleaner_keeps_fresh_incomplete_files_and_removes_stalled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = ImageId::new();
    let mut w = cache.writer(id, expected_for(b"abc")).unwrap();
    w.write(b"a").unwrap();
    assert_eq!(
        cache
            .clean(Duration::from_secs(3600))
            .unwrap()
            .incomplete_removed,
        0
    );
    assert_eq!(incomplete_files(&cache), 1);
    assert_eq!(cache.clean(Duration::ZERO).unwrap().incomplete_removed, 1);
    assert_eq!(incomplete_files(&cache), 0);
    std::mem::forget(w);
}

#[tokio::test]
async fn a_prefetch_tee_passes_every_byte_and_promotes_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let id = ImageId::new();
    let writer = cache.writer(id, expected_for(&data)).unwrap();
    let chunks: Vec<Result<Bytes, ()>> = data
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (stream, done) = tee(futures::stream::iter(chunks), writer, WhenBehind::Wait);
    let got: Vec<u8> = stream.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(got, data);
    assert!(matches!(done.await.unwrap(), TeeOutcome::Cached(_)));
    assert_eq!(std::fs::read(cache.path(id)).unwrap(), data);
}

#[tokio::test]
async fn a_prefetch_abandoned_half_way_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let data = vec![7u8; 1000];
    let id = ImageId::new();
    let writer = cache.writer(id, expected_for(&data)).unwrap();
    let chunks: Vec<Result<Bytes, ()>> = data
        .chunks(100)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let (stream, done) = tee(futures::stream::iter(chunks), writer, WhenBehind::Wait);
    let mut stream = Box::pin(stream);
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert!(matches!(done.await.unwrap(), TeeOutcome::Abandoned));
    assert!(!cache.is_cached(id));
    assert_eq!(incomplete_files(&cache), 0);
}

#[tokio::test]
async fn a_range_of_an_entry_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let id = put(&cache, b"0123456789");
    let file = std::fs::File::open(cache.path(id)).unwrap();
    let got: Vec<u8> = read_file(file, 2..5)
        .map(|c| c.unwrap().to_vec())
        .concat()
        .await;
    assert_eq!(got, b"234");
}

/// A sink whose writes wait until the test opens its gate (sends or hangs up): a cache disk
/// that has stopped answering. Behind it a real writer, whose file shows what is kept.
struct Stalled {
    inner: CacheWriter,
    gate: std::sync::mpsc::Receiver<()>,
}

impl Sink for Stalled {
    fn image_id(&self) -> ImageId {
        self.inner.image_id()
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let _ = self.gate.recv();
        self.inner.write(chunk)
    }
    fn is_full(&self) -> bool {
        self.inner.is_full()
    }
    fn commit(self) -> Result<Entry, CacheError> {
        self.inner.commit()
    }
}

fn stalled(cache: &ImageCache, data: &[u8]) -> (Stalled, std::sync::mpsc::Sender<()>, ImageId) {
    let id = ImageId::new();
    let (open, gate) = std::sync::mpsc::channel();
    let inner = cache.writer(id, expected_for(data)).unwrap();
    (Stalled { inner, gate }, open, id)
}

fn chunks_of(data: &[u8], size: usize) -> Vec<Result<Bytes, ()>> {
    data.chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect()
}

#[tokio::test]
async fn a_download_outruns_a_stalled_cache_writer_and_leaves_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let (sink, open, id) = stalled(&cache, &data);
    let (stream, done) = tee_into(
        futures::stream::iter(chunks_of(&data, 10_000)),
        sink,
        WhenBehind::GiveUp,
        100_000,
    );
    // The writer is stuck until after the last byte: a tee that waited for it would never
    // finish this (the guard turns that hang into a failure).
    let got = tokio::time::timeout(
        Duration::from_secs(60),
        stream.map(|c| c.unwrap().to_vec()).concat(),
    )
    .await
    .expect("the download waited for the stalled cache writer");
    assert_eq!(got, data);
    drop(open);
    assert!(matches!(done.await.unwrap(), TeeOutcome::FellBehind));
    assert!(!cache.is_cached(id));
    assert_eq!(incomplete_files(&cache), 0);
}

#[tokio::test]
async fn a_prefetch_waits_for_its_stalled_writer_and_then_keeps_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let (sink, open, id) = stalled(&cache, &data);
    let (stream, done) = tee_into(
        futures::stream::iter(chunks_of(&data, 10_000)),
        sink,
        WhenBehind::Wait,
        20_000,
    );
    let mut stream = Box::pin(stream);
    // Two chunks fill the buffer (the writer is stuck on the first); the third waits.
    for _ in 0..2 {
        stream.next().await.unwrap().unwrap();
    }
    assert!(
        stream.next().now_or_never().is_none(),
        "the tee did not wait"
    );
    drop(open);
    let mut n = 2;
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
        n += 1;
    }
    assert_eq!(n, 10);
    assert!(matches!(done.await.unwrap(), TeeOutcome::Cached(_)));
    assert_eq!(std::fs::read(cache.path(id)).unwrap(), data);
}

#[tokio::test]
async fn a_download_the_writer_keeps_up_with_promotes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    // Less than the tee's buffer in all, so the writer cannot fall behind whatever the
    // scheduling: the fill must complete.
    let data: Vec<u8> = (0..(TEE_BUFFER as u32 / 2))
        .map(|i| (i % 239) as u8)
        .collect();
    let id = ImageId::new();
    let writer = cache.writer(id, expected_for(&data)).unwrap();
    let (stream, done) = tee(
        futures::stream::iter(chunks_of(&data, 65_536)),
        writer,
        WhenBehind::GiveUp,
    );
    let got: Vec<u8> = stream.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(got, data);
    let TeeOutcome::Cached(entry) = done.await.unwrap() else {
        panic!("not cached");
    };
    assert_eq!(entry.size, data.len() as u64);
    assert_eq!(std::fs::read(cache.path(id)).unwrap(), data);
    assert_eq!(incomplete_files(&cache), 0);
}

#[tokio::test]
async fn a_download_abandoned_half_way_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ImageCache::open(dir.path()).unwrap();
    let data = vec![9u8; 1000];
    let id = ImageId::new();
    let writer = cache.writer(id, expected_for(&data)).unwrap();
    let (stream, done) = tee(
        futures::stream::iter(chunks_of(&data, 100)),
        writer,
        WhenBehind::GiveUp,
    );
    let mut stream = Box::pin(stream);
    for _ in 0..9 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    assert!(matches!(done.await.unwrap(), TeeOutcome::Abandoned));
    assert!(!cache.is_cached(id));
    assert_eq!(incomplete_files(&cache), 0);
}
