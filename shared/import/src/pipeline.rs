//! Moving an import's bytes from a source stream into a store through the ingest
//! ([`crate::ingest`]: the size cap, the hashes, the format inspector when the data is
//! new), verified against checksums the image already has.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use glance_digest::Algorithm;
use glance_domain::{DiskFormat, Image};
use glance_format::FormatError;
use glance_store::{Store, StoreError};

use crate::ingest::{Ingest, IngestError, Ingested, BATCH};

/// What landed in the store.
#[derive(Debug, Clone)]
pub struct Stored {
    pub location: String,
    pub size: u64,
    pub md5: String,
    pub os_hash_algo: String,
    pub multihash: String,
    pub virtual_size: Option<u64>,
}

/// Why bytes could not be stored. Every variant is final for this attempt.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("Image exceeds the size cap of {0} bytes")]
    TooLarge(u64),
    #[error("Error reading image data: {0}")]
    Source(String),
    #[error("Image data does not match disk_format: {0}")]
    Format(#[from] FormatError),
    #[error("Checksum verification failed: {0}")]
    Mismatch(String),
    #[error("Storing image data failed: {0}")]
    Store(#[from] StoreError),
}

impl From<IngestError> for PipelineError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge(cap) => PipelineError::TooLarge(cap),
            IngestError::Format(e) => PipelineError::Format(e),
            IngestError::Store(e) => PipelineError::Store(e),
        }
    }
}

/// How to check the bytes on their way.
pub struct Checks<'a> {
    pub cap: u64,
    /// Inspect for this disk format (new data, not copies of already checked data).
    pub inspect: Option<DiskFormat>,
    pub strict_format: bool,
    /// The image whose existing checksum, multihash and size must match, if set.
    pub expect: &'a Image,
    /// Algorithm for a new multihash (an image keeps the one it has).
    pub hashing_algorithm: &'a str,
}

/// Streams `source` into a new write of `image_id` in `store` and commits it only if every
/// check passes; on any failure nothing is left in the store.
pub async fn store_stream<S>(
    source: S,
    store: &dyn Store,
    checks: Checks<'_>,
) -> Result<Stored, PipelineError>
where
    S: Stream<Item = Result<Bytes, PipelineError>> + Send,
{
    let image = checks.expect;
    let algo = image
        .os_hash_algo
        .clone()
        .unwrap_or_else(|| checks.hashing_algorithm.to_owned());
    let multihash: Algorithm = algo.parse().map_err(|_| {
        PipelineError::Mismatch(format!(
            "the image's os_hash_algo {algo} is not one this service computes"
        ))
    })?;
    let mut writer = store.writer(image.id).await?;
    // Everything up to the commit; on a failure what was written is removed before the
    // caller hears of it (so a full disk has its room back when the image is restored).
    let checked = async {
        let mut ingest = Ingest::new(checks.cap).hashing(multihash);
        if let Some(format) = checks.inspect {
            ingest = ingest.inspecting(format, checks.strict_format);
        }
        futures::pin_mut!(source);
        while let Some(chunk) = source.next().await {
            ingest.push(&chunk?, &mut writer).await?;
        }
        let Ingested {
            size,
            virtual_size,
            digests,
        } = ingest.finish(&mut writer).await?;
        let digests = digests.expect("hashed");
        if let Some(expected) = &image.checksum {
            if *expected != digests.md5 {
                return Err(PipelineError::Mismatch(format!(
                    "checksum is {}, the image says {expected}",
                    digests.md5
                )));
            }
        }
        if let Some(expected) = &image.os_hash_value {
            if *expected != digests.multihash {
                return Err(PipelineError::Mismatch(format!(
                    "{algo} is {}, the image says {expected}",
                    digests.multihash
                )));
            }
        }
        if let Some(expected) = image.size.filter(|_| image.checksum.is_some()) {
            if expected as u64 != size {
                return Err(PipelineError::Mismatch(format!(
                    "size is {size}, the image says {expected}"
                )));
            }
        }
        Ok::<_, PipelineError>((size, virtual_size, digests))
    }
    .await;
    let (size, virtual_size, digests) = match checked {
        Ok(done) => done,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    let location = writer.commit().await?;
    Ok(Stored {
        location,
        size,
        md5: digests.md5,
        os_hash_algo: algo,
        multihash: digests.multihash,
        virtual_size,
    })
}

/// A store read as a pipeline source.
pub async fn read_store(
    store: &dyn Store,
    location: &str,
) -> Result<impl Stream<Item = Result<Bytes, PipelineError>> + Send, PipelineError> {
    let stream = store
        .read(location, None)
        .await
        .map_err(|e| PipelineError::Source(e.to_string()))?;
    Ok(stream.map(|r| r.map_err(|e| PipelineError::Source(e.to_string()))))
}

/// A local file (an import plugin's output) read as a pipeline source, 1 MiB at a time.
pub async fn read_file(
    path: &std::path::Path,
) -> Result<impl Stream<Item = Result<Bytes, PipelineError>> + Send, PipelineError> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| PipelineError::Source(format!("{}: {e}", path.display())))?;
    Ok(futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = BytesMut::with_capacity(BATCH);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(file))),
            Err(e) => Some((Err(PipelineError::Source(e.to_string())), None)),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_domain::ImageId;
    use glance_store::FilesystemStore;

    fn source(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, PipelineError>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    fn checks(image: &Image, cap: u64) -> Checks<'_> {
        Checks {
            cap,
            inspect: None,
            strict_format: true,
            expect: image,
            hashing_algorithm: "sha512",
        }
    }

    #[tokio::test]
    async fn a_copy_whose_checksum_differs_from_the_image_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let mut image = Image::new(ImageId::new(), None, chrono::Utc::now());
        let first = store_stream(source(&[b"abc"]), &store, checks(&image, 10))
            .await
            .unwrap();
        assert_eq!(first.md5, "900150983cd24fb0d6963f7d28e17f72");
        image.checksum = Some(first.md5);
        let err = store_stream(source(&[b"abd"]), &store, checks(&image, 10))
            .await
            .unwrap_err();
        assert!(matches!(err, PipelineError::Mismatch(_)), "{err}");
        // Only the first (committed) file and the temp directory remain.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn data_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path()).unwrap();
        let image = Image::new(ImageId::new(), None, chrono::Utc::now());
        let err = store_stream(source(&[b"abc", b"def"]), &store, checks(&image, 4))
            .await
            .unwrap_err();
        assert!(matches!(err, PipelineError::TooLarge(4)));
    }
}
