//! Writing one entry: bytes go to a private file under `incomplete/` while md5 and the
//! image's multihash are computed; only data that matches the image record is renamed into
//! place. A writer dropped before `commit` (a client gone, a worker stopped) removes its
//! file; a process killed outright leaves it for the cleaner.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use glance_digest::{Algorithm, Hasher};
use glance_domain::{Image, ImageId};

use crate::{now, CacheError, Entry, ImageCache};

/// What the data must match: the image record's checksums and size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub md5: Option<String>,
    pub hash_algo: Option<String>,
    pub hash_value: Option<String>,
    pub size: Option<u64>,
}

impl Expected {
    pub fn of(image: &Image) -> Self {
        Self {
            md5: image.checksum.clone(),
            hash_algo: image.os_hash_algo.clone(),
            hash_value: image.os_hash_value.clone(),
            size: image.size.and_then(|s| u64::try_from(s).ok()),
        }
    }

    /// Whether there is anything to verify against (Glance caches unverified data with
    /// only a log line; we do not cache it at all).
    pub fn verifiable(&self) -> bool {
        self.md5.is_some() || (self.hash_algo.is_some() && self.hash_value.is_some())
    }
}

pub struct CacheWriter {
    cache: ImageCache,
    id: ImageId,
    temp: PathBuf,
    file: File,
    written: u64,
    expected: Expected,
    settled: bool,
}

impl CacheWriter {
    pub(crate) fn create(
        cache: ImageCache,
        id: ImageId,
        temp: PathBuf,
        expected: Expected,
    ) -> io::Result<Self> {
        let file = File::create(&temp)?;
        Ok(Self {
            cache,
            id,
            temp,
            file,
            written: 0,
            expected,
            settled: false,
        })
    }

    pub fn image_id(&self) -> ImageId {
        self.id
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether everything the record promises has been written.
    pub fn is_full(&self) -> bool {
        self.expected.size.is_some_and(|s| self.written >= s)
    }

    /// Appends `chunk`. Hashing waits for `commit`, so a download that tees into the cache
    /// runs at the speed of the store and the disk, not of the hashes.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(chunk) {
            if e.kind() == io::ErrorKind::StorageFull {
                // Dropping the writer (the caller does, on this error) removes the file.
                tracing::error!(path = %self.temp.display(), image_id = %self.id,
                    "image cache full: the incomplete entry is dropped");
            }
            return Err(e);
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Verifies the data against the record and renames it into place. Data that does not
    /// match goes to `invalid/`. If another writer completed the entry first, its entry
    /// stands and this one is dropped (the data is the same, verified both times).
    pub fn commit(mut self) -> Result<Entry, CacheError> {
        let id = self.id;
        self.file.flush()?;
        // An error before this point drops the writer unsettled, which removes the file.
        let mismatch = self.mismatch()?;
        self.settled = true;
        if let Some(what) = mismatch {
            let _ = std::fs::rename(&self.temp, self.cache.invalid_path(id));
            return Err(CacheError::Mismatch { id, what });
        }
        if !self.expected.verifiable() {
            let _ = std::fs::remove_file(&self.temp);
            return Err(CacheError::Unverifiable(id));
        }
        if let Some(existing) = self.cache.entry(id) {
            let _ = std::fs::remove_file(&self.temp);
            let _ = self.cache.delete_queued(id);
            return Ok(existing);
        }
        // The file first, then its record: a record never names a missing file for long,
        // and a file without a record still lists (from its metadata).
        std::fs::rename(&self.temp, self.cache.path(id))?;
        let t = now();
        let entry = Entry {
            image_id: id.to_string(),
            hits: 0,
            last_accessed: t,
            last_modified: t,
            size: self.written,
            checksum: self.expected.md5.clone(),
            os_hash_value: self.expected.hash_value.clone(),
        };
        self.cache.write_entry(&entry)?;
        let _ = self.cache.delete_queued(id);
        tracing::info!(image_id = %id, size = self.written, "image cached");
        Ok(entry)
    }

    /// Reads the written file back (from the page cache, just written) through md5 and the
    /// record's multihash, each on its own thread, and compares with the record.
    fn mismatch(&self) -> io::Result<Option<String>> {
        if let Some(size) = self.expected.size {
            if size != self.written {
                return Ok(Some(format!("size {} != {size}", self.written)));
            }
        }
        let md5 = self
            .expected
            .md5
            .as_ref()
            .map(|want| (Hasher::md5(), want, "md5"));
        // A multihash we do not compute is not checked (md5 still is).
        let multihash = match (&self.expected.hash_algo, &self.expected.hash_value) {
            (Some(algo), Some(want)) => algo
                .parse::<Algorithm>()
                .ok()
                .map(|a| (Hasher::new(a), want, "os_hash_value")),
            _ => None,
        };
        let temp = &self.temp;
        std::thread::scope(|scope| {
            let jobs: Vec<_> = [md5, multihash]
                .into_iter()
                .flatten()
                .map(|(digest, want, what)| {
                    scope.spawn(move || -> io::Result<Option<String>> {
                        let got = hash_file(temp, digest)?;
                        Ok((!got.eq_ignore_ascii_case(want)).then(|| format!("{what} differs")))
                    })
                })
                .collect();
            let mut found = None;
            for job in jobs {
                if let Some(what) = job.join().expect("hash thread panicked")? {
                    found.get_or_insert(what);
                }
            }
            Ok(found)
        })
    }
}

fn hash_file(path: &std::path::Path, mut digest: Hasher) -> io::Result<String> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(digest.finish_hex());
        }
        digest.update(&buf[..n]);
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        if !self.settled {
            tracing::debug!(image_id = %self.id, written = self.written, "incomplete cache write dropped");
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
