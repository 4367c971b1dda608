//! The one way image bytes go from a source into a store: counted against a size cap,
//! inspected for their disk format, hashed as they pass (md5 and the multihash, see
//! [`Hashers`]) and written in 1 MiB batches. An upload, a stage and an import each read
//! their own source (the request body, a download, the staged file) and feed it here
//! chunk by chunk, with what only they do around it (the upload lease, the checks against
//! an image's recorded checksums).

use bytes::{Bytes, BytesMut};
use glance_digest::Algorithm;
use glance_domain::DiskFormat;
use glance_format::{FormatError, Inspector};
use glance_store::{StoreError, StoreWriter};

use super::hashing::{Digests, Hashers};

/// Socket reads and downloads arrive in pieces of a few KiB; handing each to the hash
/// threads and the store costs a wake-up apiece. Gathering them into batches of this size
/// trades one memcpy for ~100x fewer wake-ups, and bounds what is buffered per ingest.
pub(crate) const BATCH: usize = 1 << 20;

/// Why bytes were refused on their way in.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// More than the cap (the cap is given).
    #[error("Image exceeds the size cap of {0} bytes")]
    TooLarge(u64),
    #[error("Image data does not match disk_format: {0}")]
    Format(#[from] FormatError),
    #[error("Storing image data failed: {0}")]
    Store(#[from] StoreError),
}

/// What went in.
#[derive(Debug)]
pub struct Ingested {
    pub size: u64,
    /// From the format inspector, when the format has one.
    pub virtual_size: Option<u64>,
    /// With [`Ingest::hashing`].
    pub digests: Option<Digests>,
}

/// One stream of bytes on its way into a store writer.
pub struct Ingest {
    cap: u64,
    inspector: Option<Inspector>,
    /// Whether data that is not of the declared format is refused (`[image_format]
    /// require_image_format_match`); a file that claims the format but is broken always is.
    strict: bool,
    hashers: Option<Hashers>,
    size: u64,
    batch: BytesMut,
}

impl Ingest {
    /// Bytes counted against `cap` and written as they are.
    pub fn new(cap: u64) -> Self {
        Self {
            cap,
            inspector: None,
            strict: false,
            hashers: None,
            size: 0,
            batch: BytesMut::with_capacity(BATCH),
        }
    }

    /// Inspects the bytes as `format`; a mismatch fails the ingest only if `strict`.
    pub fn inspecting(mut self, format: DiskFormat, strict: bool) -> Self {
        self.inspector = Some(Inspector::new(format));
        self.strict = strict;
        self
    }

    /// Computes md5 and the `multihash` of the bytes as they pass.
    pub fn hashing(mut self, multihash: Algorithm) -> Self {
        self.hashers = Some(Hashers::start(multihash));
        self
    }

    /// Takes the next `chunk`; a full batch goes to the hashers and `writer`.
    pub async fn push(
        &mut self,
        chunk: &[u8],
        writer: &mut Box<dyn StoreWriter>,
    ) -> Result<(), IngestError> {
        self.size += chunk.len() as u64;
        if self.size > self.cap {
            return Err(IngestError::TooLarge(self.cap));
        }
        if let Some(inspector) = self.inspector.as_mut() {
            match inspector.feed(chunk) {
                Ok(()) => {}
                Err(FormatError::Mismatch { .. }) if !self.strict => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.batch.extend_from_slice(chunk);
        if self.batch.len() >= BATCH {
            let full = std::mem::replace(&mut self.batch, BytesMut::with_capacity(BATCH));
            self.write(full.freeze(), writer).await?;
        }
        Ok(())
    }

    async fn write(
        &mut self,
        bytes: Bytes,
        writer: &mut Box<dyn StoreWriter>,
    ) -> Result<(), IngestError> {
        if let Some(hashers) = &self.hashers {
            hashers.update_async(bytes.clone()).await;
        }
        Ok(writer.write(bytes).await?)
    }

    /// Writes what is left, and gives the size, virtual size and digests. The caller
    /// commits the writer (or aborts it on an error, which leaves nothing in the store).
    pub async fn finish(
        mut self,
        writer: &mut Box<dyn StoreWriter>,
    ) -> Result<Ingested, IngestError> {
        if !self.batch.is_empty() {
            let rest = std::mem::take(&mut self.batch).freeze();
            self.write(rest, writer).await?;
        }
        let virtual_size = match self.inspector.take().map(Inspector::finish) {
            None => None,
            Some(Ok(inspection)) => inspection.virtual_size,
            Some(Err(FormatError::Mismatch { .. })) if !self.strict => None,
            Some(Err(e)) => return Err(e.into()),
        };
        let digests = match self.hashers.take() {
            Some(hashers) => Some(hashers.finish().await),
            None => None,
        };
        Ok(Ingested {
            size: self.size,
            virtual_size,
            digests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that keeps what it is given, to see what the store receives.
    #[derive(Default)]
    struct Kept(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

    #[async_trait::async_trait]
    impl StoreWriter for Kept {
        async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(chunk.len());
            Ok(())
        }
        async fn commit(self: Box<Self>) -> Result<String, StoreError> {
            Ok("kept://".into())
        }
    }

    #[tokio::test]
    async fn small_chunks_are_hashed_and_written_in_batches_of_a_mebibyte() {
        let writes = std::sync::Arc::default();
        let mut writer: Box<dyn StoreWriter> = Box::new(Kept(std::sync::Arc::clone(&writes)));
        let mut ingest = Ingest::new(u64::MAX).hashing(Algorithm::Sha512);
        let data = vec![7u8; BATCH + 4096];
        for chunk in data.chunks(4096) {
            ingest.push(chunk, &mut writer).await.unwrap();
        }
        let done = ingest.finish(&mut writer).await.unwrap();
        assert_eq!(done.size, data.len() as u64);
        assert_eq!(*writes.lock().unwrap(), [BATCH, 4096]);
        let digests = done.digests.unwrap();
        let (md5, sha512) = (
            glance_digest::hex_digest(Algorithm::Md5, &data),
            glance_digest::hex_digest(Algorithm::Sha512, &data),
        );
        assert_eq!((digests.md5, digests.multihash), (md5, sha512));
    }

    #[tokio::test]
    async fn a_byte_over_the_cap_is_refused_and_a_broken_format_even_when_not_strict() {
        let mut writer: Box<dyn StoreWriter> = Box::new(Kept::default());
        let mut ingest = Ingest::new(10);
        ingest.push(&[0; 10], &mut writer).await.unwrap();
        let over = ingest.push(&[0; 1], &mut writer).await;
        assert!(matches!(over, Err(IngestError::TooLarge(10))), "{over:?}");

        // A qcow2 header with a version no qcow2 has: it claims the format and is broken.
        let mut header = b"QFI\xfb".to_vec();
        header.extend_from_slice(&99u32.to_be_bytes());
        header.resize(512, 0);
        let mut ingest = Ingest::new(u64::MAX).inspecting(DiskFormat::Qcow2, false);
        let fed = ingest.push(&header, &mut writer).await;
        let done = match fed {
            Err(e) => Err(e),
            Ok(()) => ingest.finish(&mut writer).await.map(|_| ()),
        };
        assert!(matches!(done, Err(IngestError::Format(_))), "{done:?}");

        // Raw bytes declared qcow2: a mismatch, let through when not strict.
        let mut ingest = Ingest::new(u64::MAX).inspecting(DiskFormat::Qcow2, false);
        ingest.push(&[0; 4096], &mut writer).await.unwrap();
        assert_eq!(ingest.finish(&mut writer).await.unwrap().size, 4096);
        let mut ingest = Ingest::new(u64::MAX).inspecting(DiskFormat::Qcow2, true);
        let strict = match ingest.push(&[0; 4096], &mut writer).await {
            Err(e) => Err(e),
            Ok(()) => ingest.finish(&mut writer).await.map(|_| ()),
        };
        assert!(matches!(strict, Err(IngestError::Format(_))), "{strict:?}");
    }
}
