use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use glance_domain::ImageId;
use tokio::sync::mpsc;

use crate::{ByteStream, Partial, Store, StoreError, StoreWriter};

/// Image data as files named by image id under one directory.
///
/// Writes go to `<dir>/.incoming/<id>.<random>` and are renamed into place after fsync, so a
/// reader never sees a partial image and a crash leaves only a temp file. Locations are
/// `file://<dir>/<uuid>`; a location whose path is not exactly that shape is refused, so no
/// path ever comes from user input.
#[derive(Debug, Clone)]
pub struct FilesystemStore {
    dir: PathBuf,
}

/// Bytes per read when streaming a file out: large enough that thread wake-ups are rare
/// at loopback line rate, small enough that many concurrent downloads stay within memory
/// (at most 5 MiB in flight each: this chunk and 4 queued).
const READ_CHUNK: usize = 1024 * 1024;

impl FilesystemStore {
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join(".incoming"))?;
        let dir = dir.canonicalize()?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The location the data of `id` has (or will have) in this store.
    pub fn location_of(&self, id: ImageId) -> String {
        format!("file://{}", self.dir.join(id.to_string()).display())
    }

    /// The file behind `location`, if the location is one this store made.
    pub fn path_of(&self, location: &str) -> Result<PathBuf, StoreError> {
        let foreign = || StoreError::ForeignLocation(location.to_owned());
        let path = Path::new(location.strip_prefix("file://").ok_or_else(foreign)?);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(foreign)?;
        let id: ImageId = name.parse().map_err(|_| foreign())?;
        if path.parent() != Some(self.dir.as_path()) {
            return Err(foreign());
        }
        Ok(self.dir.join(id.to_string()))
    }
}

#[async_trait]
impl Store for FilesystemStore {
    fn scheme(&self) -> &'static str {
        "file"
    }

    async fn writer(&self, id: ImageId) -> Result<Box<dyn StoreWriter>, StoreError> {
        let temp = self
            .dir
            .join(".incoming")
            .join(format!("{id}.{}", uuid::Uuid::new_v4().simple()));
        let final_path = self.dir.join(id.to_string());
        let location = self.location_of(id);
        let file = tokio::task::spawn_blocking({
            let temp = temp.clone();
            move || std::fs::File::create(temp)
        })
        .await
        .expect("blocking task panicked")
        .map_err(|e| StoreError::from_io(e, &temp))?;
        Ok(Box::new(FileWriter::start(
            file, temp, final_path, location,
        )))
    }

    async fn size(&self, location: &str) -> Result<u64, StoreError> {
        let path = self.path_of(location)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(location.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn read(
        &self,
        location: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        let path = self.path_of(location)?;
        // Opened off the async worker: a slow disk must not stall other requests.
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f.into_std().await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(location.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        let len = tokio::fs::metadata(&path).await?.len();
        let range = range.unwrap_or(0..len);
        // A dedicated blocking reader keeps the async workers free and reads ahead a few
        // chunks; the bounded channel caps memory per download.
        let (tx, rx) = mpsc::channel::<Result<Bytes, StoreError>>(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
            let mut remaining = range.end.saturating_sub(range.start);
            while remaining > 0 {
                let want = remaining.min(READ_CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        remaining -= n as u64;
                        if tx.blocking_send(Ok(buf.freeze())).is_err() {
                            return; // the client went away
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e.into()));
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn delete(&self, location: &str) -> Result<(), StoreError> {
        let path = self.path_of(location)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn partials(&self) -> Result<Vec<Partial>, StoreError> {
        let incoming = self.dir.join(".incoming");
        tokio::task::spawn_blocking(move || {
            // `<id>.<nonce>`: the id is what the name starts with.
            list_files(&incoming, incoming_id)
        })
        .await
        .expect("listing task panicked")
    }

    async fn remove_partial(&self, partial: &Partial) -> Result<(), StoreError> {
        // Only files of this store's own incoming area.
        if partial.path.parent() != Some(self.dir.join(".incoming").as_path()) {
            return Ok(());
        }
        remove_if_there(&partial.path).await
    }
}

impl FilesystemStore {
    /// Committed data in this store, as [`Partial`]s (for the staging area, whose files
    /// are only kept while their image waits for an import).
    pub async fn committed(&self) -> Result<Vec<Partial>, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || list_files(&dir, committed_id))
            .await
            .expect("listing task panicked")
    }

    /// Removes committed data this store listed with [`FilesystemStore::committed`].
    pub async fn remove_committed(&self, data: &Partial) -> Result<(), StoreError> {
        if data.path.parent() != Some(self.dir.as_path()) {
            return Ok(());
        }
        remove_if_there(&data.path).await
    }
}

/// The image id of a committed file's name: the name itself.
fn committed_id(name: &str) -> Option<&str> {
    Some(name)
}

/// The image id of an incoming file's name, `<id>.<nonce>`.
fn incoming_id(name: &str) -> Option<&str> {
    name.split_once('.').map(|(id, _)| id)
}

async fn remove_if_there(path: &Path) -> Result<(), StoreError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The regular files of `dir` whose name yields an image id through `id_of`. A file's
/// `changed` is the later of its content's and its inode's change (a rename counts).
fn list_files(dir: &Path, id_of: fn(&str) -> Option<&str>) -> Result<Vec<Partial>, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(image_id) = name
            .to_str()
            .and_then(id_of)
            .and_then(|id| id.parse::<ImageId>().ok())
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue; // gone meanwhile
        };
        if !meta.is_file() {
            continue;
        }
        let ctime = std::time::UNIX_EPOCH
            + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
        let changed = meta.modified().map_or(ctime, |m| m.max(ctime));
        found.push(Partial {
            image_id,
            path: entry.path(),
            changed,
        });
    }
    Ok(found)
}

enum WriteCmd {
    Data(Bytes),
    Commit,
}

/// Writes on a blocking thread fed by a bounded channel, so the HTTP worker never blocks
/// on disk and a slow disk pushes back on the upload.
struct FileWriter {
    tx: Option<mpsc::Sender<WriteCmd>>,
    done: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
    temp: PathBuf,
    location: String,
}

impl FileWriter {
    fn start(file: std::fs::File, temp: PathBuf, final_path: PathBuf, location: String) -> Self {
        let (tx, mut rx) = mpsc::channel::<WriteCmd>(4);
        let temp_for_thread = temp.clone();
        let done = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let written = write_all(file, &mut rx, &temp_for_thread, &final_path);
            if let Err(e) = &written {
                // Whatever went wrong (a full disk most of all), nothing may remain: the
                // file is closed by now, so removing it frees its space before the caller
                // hears of the error.
                let _ = std::fs::remove_file(&temp_for_thread);
                if let StoreError::Full { path } = e {
                    tracing::error!(path = %path.display(), "image store full: removed the partial data");
                }
            }
            written
        });
        Self {
            tx: Some(tx),
            done: Some(done),
            temp,
            location,
        }
    }

    async fn finish_with_error(&mut self) -> StoreError {
        self.tx.take();
        match self.done.take() {
            Some(done) => match done.await.expect("writer thread panicked") {
                Err(e) => e,
                Ok(()) => StoreError::Io(std::io::Error::other("writer stopped")),
            },
            None => StoreError::Io(std::io::Error::other("writer already finished")),
        }
    }
}

#[async_trait]
impl StoreWriter for FileWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().expect("write after commit");
        if tx.send(WriteCmd::Data(chunk)).await.is_err() {
            return Err(self.finish_with_error().await);
        }
        Ok(())
    }

    async fn abort(mut self: Box<Self>) {
        self.tx.take();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        let _ = tokio::fs::remove_file(&self.temp).await;
    }

    async fn commit(mut self: Box<Self>) -> Result<String, StoreError> {
        let tx = self.tx.take().expect("commit twice");
        if tx.send(WriteCmd::Commit).await.is_err() {
            let err = self.finish_with_error().await;
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(err);
        }
        drop(tx);
        let done = self.done.take().expect("commit twice");
        match done.await.expect("writer thread panicked") {
            Ok(()) => Ok(self.location.clone()),
            Err(e) => {
                let _ = tokio::fs::remove_file(&self.temp).await;
                Err(e)
            }
        }
    }
}

/// The writer thread's work: data until `Commit` (then fsync and rename into place) or the
/// channel closing (then the temp file is removed).
fn write_all(
    file: std::fs::File,
    rx: &mut mpsc::Receiver<WriteCmd>,
    temp: &Path,
    final_path: &Path,
) -> Result<(), StoreError> {
    let full = |e: std::io::Error| StoreError::from_io(e, temp);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut writeback = Writeback::default();
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            WriteCmd::Data(chunk) => {
                out.write_all(&chunk).map_err(full)?;
                writeback.wrote(out.get_ref(), chunk.len());
            }
            WriteCmd::Commit => {
                let file = out.into_inner().map_err(|e| full(e.into_error()))?;
                file.sync_all().map_err(full)?;
                drop(file);
                std::fs::rename(temp, final_path)?;
                if let Some(dir) = final_path.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                return Ok(());
            }
        }
    }
    // The writer was dropped without commit: nothing may remain. `out` is dropped
    // unflushed: its buffer is of no use.
    let (file, _) = out.into_parts();
    drop(file);
    let _ = std::fs::remove_file(temp);
    Ok(())
}

/// Bytes written between two writeback starts.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts the disk writing what an upload has written so far, every [`WRITEBACK_STEP`],
/// without waiting for it.
///
/// Left to itself the kernel begins writing back only once a tenth or so of the machine's
/// memory is dirty, so a 1 GiB upload sat in the page cache until the commit's fsync, and
/// the client then waited for the whole file to reach the disk: receiving and writing ran
/// one after the other. Started as the bytes arrive, the disk works while the upload goes
/// on, and the fsync (still what makes the data durable) finds little left to do.
#[derive(Default)]
struct Writeback {
    /// Bytes handed to the file (or its buffer) so far.
    written: u64,
    /// Where the next writeback starts.
    started: u64,
}

impl Writeback {
    fn wrote(&mut self, file: &std::fs::File, n: usize) {
        use std::os::fd::AsRawFd;
        self.written += n as u64;
        if self.written - self.started < WRITEBACK_STEP {
            return;
        }
        // Bytes still in the BufWriter are not in the file yet; the next range covers them.
        let (offset, len) = (self.started as i64, (self.written - self.started) as i64);
        // SAFETY: sync_file_range reads no memory of ours; the descriptor is open (owned
        // by `file`). A failure (a file system without it) only loses the head start.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
        self.started = self.written;
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Closing the channel without Commit makes the thread delete the temp file.
        self.tx.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn collect(s: ByteStream) -> Vec<u8> {
        s.try_fold(Vec::new(), |mut acc, b| async move {
            acc.extend_from_slice(&b);
            Ok(acc)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn committed_data_reads_back_whole_and_in_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let id = ImageId::new();
        let mut w = store.writer(id).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        let loc = w.commit().await.unwrap();
        assert_eq!(store.size(&loc).await.unwrap(), 11);
        assert_eq!(
            collect(store.read(&loc, None).await.unwrap()).await,
            b"hello world"
        );
        assert_eq!(
            collect(store.read(&loc, Some(6..9)).await.unwrap()).await,
            b"wor"
        );
    }

    #[tokio::test]
    async fn data_written_back_while_the_upload_goes_on_reads_back_whole() {
        // Several writeback steps, in chunks that straddle them and the write buffer.
        let data: Vec<u8> = (0..3 * WRITEBACK_STEP as usize + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let mut w = store.writer(ImageId::new()).await.unwrap();
        let mut sizes = [64 << 10, 3 << 20, 1, 1 << 20, 5 << 20].into_iter().cycle();
        let mut at = 0;
        while at < data.len() {
            let end = (at + sizes.next().unwrap()).min(data.len());
            w.write(Bytes::copy_from_slice(&data[at..end]))
                .await
                .unwrap();
            at = end;
        }
        let loc = w.commit().await.unwrap();
        assert_eq!(store.size(&loc).await.unwrap(), data.len() as u64);
        assert!(collect(store.read(&loc, None).await.unwrap()).await == data);
    }

    #[tokio::test]
    async fn an_abandoned_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let id = ImageId::new();
        let mut w = store.writer(id).await.unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        drop(w);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!store.dir().join(id.to_string()).exists());
        let leftovers = std::fs::read_dir(store.dir().join(".incoming"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn a_full_disk_is_reported_as_full_with_the_partial_file_already_gone() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join("partial");
        std::fs::write(&temp, b"what was written so far").unwrap();
        // /dev/full refuses every write with ENOSPC, as a full file system does.
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("SKIPPED: no /dev/full here");
            return;
        };
        let mut writer: Box<dyn StoreWriter> = Box::new(FileWriter::start(
            full,
            temp.clone(),
            dir.path().join("final"),
            "file:///final".into(),
        ));
        let mut result = Ok(());
        for _ in 0..16 {
            result = writer.write(Bytes::from(vec![0u8; 1 << 20])).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = writer.commit().await.map(|_| ());
        }
        match result {
            Err(StoreError::Full { path }) => assert_eq!(path, temp),
            other => panic!("expected Full, got {other:?}"),
        }
        assert!(!temp.exists(), "the partial file was left behind");
    }

    #[tokio::test]
    async fn partials_name_their_image_and_only_the_stores_own_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let id = ImageId::new();
        let mut w = store.writer(id).await.unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        let found = store.partials().await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].image_id, id);
        let foreign = Partial {
            path: dir.path().join("elsewhere"),
            ..found[0].clone()
        };
        std::fs::write(&foreign.path, b"x").unwrap();
        store.remove_partial(&foreign).await.unwrap();
        assert!(
            foreign.path.exists(),
            "a file outside .incoming was removed"
        );
        store.remove_partial(&found[0]).await.unwrap();
        assert!(store.partials().await.unwrap().is_empty());
        drop(w);
    }

    #[tokio::test]
    async fn locations_outside_the_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        for loc in [
            "file:///etc/passwd",
            &format!("file://{}/../{}", store.dir().display(), ImageId::new()),
            &format!("file://{}/not-a-uuid", store.dir().display()),
            "http://example.com/x",
        ] {
            assert!(
                matches!(store.path_of(loc), Err(StoreError::ForeignLocation(_))),
                "{loc}"
            );
        }
    }

    #[tokio::test]
    async fn deleting_twice_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let mut w = store.writer(ImageId::new()).await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        let loc = w.commit().await.unwrap();
        store.delete(&loc).await.unwrap();
        store.delete(&loc).await.unwrap();
        assert!(matches!(
            store.size(&loc).await,
            Err(StoreError::NotFound(_))
        ));
    }
}
