//! The node-local image cache, laid out as Glance lays it out so an operator finds what
//! they expect:
//!
//! ```text
//! <image_cache_dir>/
//!   <image_id>                 complete, checksum-verified entries (served on hits)
//!   incomplete/<image_id>.<w>  being written (one file per writer, so a writer killed
//!                              mid-way never collides with the one that redoes its work)
//!   invalid/<image_id>         failed verification, kept for debugging until cleaned
//!   queue/<image_id>           zero-byte prefetch request, FIFO by mtime
//!   index/<image_id>.json      per-entry size, hits, last accessed/modified, checksum
//! ```
//!
//! The index is a file per entry (written to a temporary name and renamed), so the API
//! and any number of worker processes on the host share it without a database: every
//! state change is one rename. A hit is a read-modify-write of one small file; two hits on
//! the same image at the same instant in two processes may count once (Glance's xattr
//! driver has the same property).
//!
//! Everything here is blocking file I/O; async callers go through [`blocking`].

mod settings;
mod stream;
mod writer;

pub use settings::{default_node_id, CacheSettings, DEFAULT_MAX_SIZE};
pub use stream::{read_file, tee, ByteStream, TeeOutcome, WhenBehind, TEE_BUFFER};
pub use writer::{CacheWriter, Expected};

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use glance_domain::ImageId;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("image {id} data does not match its record ({what}); moved to invalid/")]
    Mismatch { id: ImageId, what: String },
    #[error("image {0} has no checksum to verify its data against; not cached")]
    Unverifiable(ImageId),
}

/// What the index keeps about one complete entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub image_id: String,
    pub hits: u64,
    /// Seconds since the epoch, as Glance's drivers report them.
    pub last_accessed: f64,
    pub last_modified: f64,
    pub size: u64,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
}

/// What [`ImageCache::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    pub total_files_pruned: u64,
    pub total_bytes_pruned: u64,
}

/// What [`ImageCache::clean`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanReport {
    pub invalid_removed: u64,
    pub incomplete_removed: u64,
}

/// A handle on one cache directory. Cheap to clone.
#[derive(Clone)]
pub struct ImageCache {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// Serialises this process's index read-modify-writes (hits).
    index_lock: Mutex<()>,
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn parse_id(name: &str) -> Option<ImageId> {
    name.parse().ok()
}

fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs cache I/O on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("cache task panicked")
}

impl ImageCache {
    /// Opens (creating if need be) the cache at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        for sub in ["", "incomplete", "invalid", "queue", "index"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                index_lock: Mutex::new(()),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Where the complete entry of `id` lives (whether or not it exists).
    pub fn path(&self, id: ImageId) -> PathBuf {
        self.inner.dir.join(id.to_string())
    }

    fn sub(&self, sub: &str, name: impl AsRef<Path>) -> PathBuf {
        self.inner.dir.join(sub).join(name)
    }

    fn index_path(&self, id: ImageId) -> PathBuf {
        self.sub("index", format!("{id}.json"))
    }

    pub fn is_cached(&self, id: ImageId) -> bool {
        self.path(id).is_file()
    }

    pub fn is_queued(&self, id: ImageId) -> bool {
        self.sub("queue", id.to_string()).exists()
    }

    /// Whether a writer has touched an incomplete file of `id` within `fresh`: a live tee
    /// or fetch (a stalled one stops counting once `fresh` has passed).
    pub fn is_being_cached(&self, id: ImageId, fresh: Duration) -> bool {
        let prefix = format!("{id}.");
        let Ok(dir) = std::fs::read_dir(self.inner.dir.join("incomplete")) else {
            return false;
        };
        dir.flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(&prefix)
                && e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < fresh)
        })
    }

    /// The index record of a complete entry; a file without a record (copied in by hand)
    /// is reported from its metadata.
    pub fn entry(&self, id: ImageId) -> Option<Entry> {
        let meta = std::fs::metadata(self.path(id))
            .ok()
            .filter(|m| m.is_file())?;
        let recorded = std::fs::read(self.index_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        Some(recorded.unwrap_or_else(|| {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            Entry {
                image_id: id.to_string(),
                hits: 0,
                last_accessed: mtime,
                last_modified: mtime,
                size: meta.len(),
                checksum: None,
                os_hash_value: None,
            }
        }))
    }

    pub(crate) fn write_entry(&self, entry: &Entry) -> io::Result<()> {
        let id: ImageId = entry
            .image_id
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "entry id"))?;
        let tmp = self.sub(
            "index",
            format!(".{id}.{}.tmp", uuid::Uuid::new_v4().simple()),
        );
        std::fs::write(&tmp, serde_json::to_vec(entry).expect("entry serializes"))?;
        std::fs::rename(&tmp, self.index_path(id))
    }

    /// Every complete entry, ordered by image id (as Glance lists them).
    pub fn list_cached(&self) -> io::Result<Vec<Entry>> {
        let mut entries: Vec<Entry> = std::fs::read_dir(&self.inner.dir)?
            .flatten()
            .filter_map(|e| parse_id(&e.file_name().to_string_lossy()))
            .filter_map(|id| self.entry(id))
            .collect();
        entries.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        Ok(entries)
    }

    /// Bytes held by complete entries.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.list_cached()?.iter().map(|e| e.size).sum())
    }

    /// Counts a hit on `id`: `hits + 1`, `last_accessed = now`.
    pub fn record_hit(&self, id: ImageId) -> io::Result<()> {
        let _guard = self.inner.index_lock.lock().expect("index lock");
        if let Some(mut entry) = self.entry(id) {
            entry.hits += 1;
            entry.last_accessed = now();
            self.write_entry(&entry)?;
        }
        Ok(())
    }

    /// Removes the complete entry of `id` and its record; `true` if there was one.
    pub fn delete_cached(&self, id: ImageId) -> io::Result<bool> {
        let removed = remove_if_exists(&self.path(id))?;
        remove_if_exists(&self.index_path(id))?;
        Ok(removed)
    }

    pub fn delete_all_cached(&self) -> io::Result<u64> {
        let mut n = 0;
        for entry in self.list_cached()? {
            if let Some(id) = parse_id(&entry.image_id) {
                n += u64::from(self.delete_cached(id)?);
            }
        }
        Ok(n)
    }

    /// Forgets everything about `id` on this node: entry and queue marker.
    pub fn evict(&self, id: ImageId) -> io::Result<bool> {
        let cached = self.delete_cached(id)?;
        let queued = self.delete_queued(id)?;
        Ok(cached || queued)
    }

    /// Records a prefetch request. `false` (nothing changed) if `id` is already cached or
    /// queued, as Glance's `queue_image`.
    pub fn queue(&self, id: ImageId) -> io::Result<bool> {
        if self.is_cached(id) || self.is_queued(id) {
            return Ok(false);
        }
        std::fs::File::create(self.sub("queue", id.to_string()))?;
        Ok(true)
    }

    /// Queued ids, oldest request first.
    pub fn list_queued(&self) -> io::Result<Vec<ImageId>> {
        let mut queued: Vec<(SystemTime, ImageId)> =
            std::fs::read_dir(self.inner.dir.join("queue"))?
                .flatten()
                .filter_map(|e| {
                    let id = parse_id(&e.file_name().to_string_lossy())?;
                    let mtime = e.metadata().and_then(|m| m.modified()).ok()?;
                    Some((mtime, id))
                })
                .collect();
        queued.sort();
        Ok(queued.into_iter().map(|(_, id)| id).collect())
    }

    pub fn delete_queued(&self, id: ImageId) -> io::Result<bool> {
        remove_if_exists(&self.sub("queue", id.to_string()))
    }

    pub fn delete_all_queued(&self) -> io::Result<u64> {
        let mut n = 0;
        for id in self.list_queued()? {
            n += u64::from(self.delete_queued(id)?);
        }
        Ok(n)
    }

    /// Starts writing the entry of `id`; nothing is visible until [`CacheWriter::commit`].
    pub fn writer(&self, id: ImageId, expected: Expected) -> io::Result<CacheWriter> {
        let temp = self.sub(
            "incomplete",
            format!(
                "{id}.{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
        );
        CacheWriter::create(self.clone(), id, temp, expected)
    }

    pub(crate) fn invalid_path(&self, id: ImageId) -> PathBuf {
        self.sub("invalid", id.to_string())
    }

    /// Evicts least recently accessed entries until the cache holds at most `max_size`
    /// bytes. A threshold, not a hard cap: the cache grows past it between runs.
    pub fn prune(&self, max_size: u64) -> io::Result<PruneReport> {
        let mut entries = self.list_cached()?;
        let mut current: u64 = entries.iter().map(|e| e.size).sum();
        let mut report = PruneReport::default();
        if current <= max_size {
            return Ok(report);
        }
        entries.sort_by(|a, b| a.last_accessed.total_cmp(&b.last_accessed));
        for entry in entries {
            if current <= max_size {
                break;
            }
            let Some(id) = parse_id(&entry.image_id) else {
                continue;
            };
            if self.delete_cached(id)? {
                tracing::info!(image_id = %id, size = entry.size, "pruned from the image cache");
                current = current.saturating_sub(entry.size);
                report.total_files_pruned += 1;
                report.total_bytes_pruned += entry.size;
            }
        }
        Ok(report)
    }

    /// Removes incomplete files nobody has written to for `stall_time`: left by a writer
    /// that died (its process killed mid-fill). Returns how many.
    pub fn remove_stalled_incomplete(&self, stall_time: Duration) -> io::Result<u64> {
        let mut removed = 0;
        for e in std::fs::read_dir(self.inner.dir.join("incomplete"))?.flatten() {
            let stalled = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= stall_time);
            if stalled && remove_if_exists(&e.path())? {
                tracing::info!(path = %e.path().display(), "removed an abandoned incomplete cache file");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes every invalid file, incomplete files not written to for `stall_time`, and
    /// index records whose entry is gone.
    pub fn clean(&self, stall_time: Duration) -> io::Result<CleanReport> {
        let mut report = CleanReport::default();
        for e in std::fs::read_dir(self.inner.dir.join("invalid"))?.flatten() {
            if remove_if_exists(&e.path())? {
                report.invalid_removed += 1;
            }
        }
        for e in std::fs::read_dir(self.inner.dir.join("incomplete"))?.flatten() {
            let stalled = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= stall_time);
            if stalled && remove_if_exists(&e.path())? {
                report.incomplete_removed += 1;
            }
        }
        for e in std::fs::read_dir(self.inner.dir.join("index"))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let orphan = name
                .strip_suffix(".json")
                .and_then(parse_id)
                .is_some_and(|id| !self.is_cached(id));
            if orphan {
                remove_if_exists(&e.path())?;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
