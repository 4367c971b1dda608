//! `image_decompression`: data that starts like a ZIP, LHA or gzip archive (Glance's magic
//! numbers, checked in Glance's order) is replaced by what it holds, unless the image's
//! container_format is `compressed` (then the archive is the image). Only one layer is
//! undone, as in Glance; the disk_format is left as it was.
//!
//! Unlike Glance, the output is bounded: no more than `image_size_cap` bytes are ever
//! written, so a decompression bomb fails the task instead of filling the staging disk.
//! LHA is read as Glance reads it with its optional `lhafile` module installed.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use glance_domain::ContainerFormat;

use super::lha::{self, LhaError};
use super::zip::{self, ZipError};
use super::{Plugin, PluginError, Step};

/// An archive kind, by its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    Zip,
    Lha,
    Gzip,
}

/// Glance's `MAGIC_NUMBERS`: (offset, bytes), in the order it tries them.
const MAGIC: [(Archive, usize, &[u8]); 3] = [
    (Archive::Zip, 0, &[0x50, 0x4b, 0x03, 0x04]),
    (Archive::Lha, 2, &[0x2d, 0x6c, 0x68]),
    (Archive::Gzip, 0, &[0x1f, 0x8b, 0x08]),
];

fn refused(reason: impl Into<String>) -> PluginError {
    PluginError::refused(Plugin::Decompression, reason)
}

fn detect(head: &[u8]) -> Option<Archive> {
    MAGIC
        .iter()
        .find(|(_, at, magic)| head.get(*at..*at + magic.len()) == Some(*magic))
        .map(|(kind, _, _)| *kind)
}

pub(super) async fn run(step: &mut Step<'_>) -> Result<Option<PathBuf>, PluginError> {
    if step.image.container_format == Some(ContainerFormat::Compressed) {
        return Ok(None);
    }
    let src = step.data.clone();
    let dest = step.work_file(Plugin::Decompression);
    let cap = step.cap;
    let id = step.image.id;
    let done = tokio::task::spawn_blocking({
        let dest = dest.clone();
        move || decompress(&src, &dest, cap)
    })
    .await
    .expect("decompression thread panicked");
    match done {
        Ok(Some((kind, size))) => {
            tracing::info!(image_id = %id, archive = ?kind, size, "image decompressed");
            Ok(Some(dest))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            let _ = tokio::fs::remove_file(&dest).await;
            tracing::debug!(image_id = %id, error = %e, "error decompressing image");
            Err(e)
        }
    }
}

/// The archive kind and the size of what it held, or `None` if `src` is no archive.
fn decompress(src: &Path, dest: &Path, cap: u64) -> Result<Option<(Archive, u64)>, PluginError> {
    let io = PluginError::io(Plugin::Decompression);
    let mut file = File::open(src).map_err(PluginError::io(Plugin::Decompression))?;
    let mut head = Vec::with_capacity(5);
    Read::by_ref(&mut file)
        .take(5)
        .read_to_end(&mut head)
        .map_err(PluginError::io(Plugin::Decompression))?;
    let Some(kind) = detect(&head) else {
        return Ok(None);
    };
    let mut out = File::create(dest).map_err(PluginError::io(Plugin::Decompression))?;
    let size = match kind {
        Archive::Zip => zip::extract_single(&mut file, &mut out, cap).map_err(|e| match e {
            ZipError::Io(e) => PluginError::io(Plugin::Decompression)(e),
            other => refused(other.to_string()),
        })?,
        Archive::Lha => lha::extract_single(src, &mut out, cap).map_err(|e| match e {
            LhaError::Io(e) => PluginError::io(Plugin::Decompression)(e),
            other => refused(other.to_string()),
        })?,
        Archive::Gzip => {
            let file = File::open(src).map_err(PluginError::io(Plugin::Decompression))?;
            gunzip(file, &mut out, cap)?
        }
    };
    out.sync_all().map_err(io)?;
    Ok(Some((kind, size)))
}

/// Why [`copy_capped`] stopped.
pub(super) enum Capped {
    /// Reading the archive failed (for a decoder: the data is not what it claims).
    Read(std::io::Error),
    Write(std::io::Error),
    /// More than the cap came out.
    TooLarge,
}

/// Copies what `data` yields to `out` in 1 MiB reads, failing as soon as more than `cap`
/// bytes came out, so a decompression bomb never fills the disk; returns the byte count.
pub(super) fn copy_capped(
    data: &mut impl Read,
    out: &mut impl Write,
    cap: u64,
) -> Result<u64, Capped> {
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let n = data.read(&mut buf).map_err(Capped::Read)?;
        if n == 0 {
            return Ok(written);
        }
        written += n as u64;
        if written > cap {
            return Err(Capped::TooLarge);
        }
        out.write_all(&buf[..n]).map_err(Capped::Write)?;
    }
}

/// Every member of a gzip stream (as Python's `gzip` reads them), at most `cap` bytes.
fn gunzip(src: File, out: &mut File, cap: u64) -> Result<u64, PluginError> {
    let mut data = MultiGzDecoder::new(BufReader::with_capacity(1 << 20, src));
    copy_capped(&mut data, out, cap).map_err(|e| match e {
        Capped::Read(e) => refused(format!("Bad GZip file: {e}")),
        Capped::Write(e) => PluginError::io(Plugin::Decompression)(e),
        Capped::TooLarge => too_large(cap),
    })
}

fn too_large(cap: u64) -> PluginError {
    refused(format!(
        "the archive's file is larger than the size cap of {cap} bytes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    #[test]
    fn archives_are_told_by_glances_magic_numbers() {
        assert_eq!(detect(b"PK\x03\x04rest"), Some(Archive::Zip));
        assert_eq!(detect(b"\x1f\x8b\x08\0\0"), Some(Archive::Gzip));
        assert_eq!(detect(b"!\x00-lh5-"), Some(Archive::Lha));
        assert_eq!(detect(b"QFI\xfb\0"), None);
        assert_eq!(detect(b""), None);
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn concatenated_gzip_members_are_all_read_and_a_bomb_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let mut both = gz(b"hello ");
        both.extend(gz(b"world"));
        std::fs::write(&src, &both).unwrap();
        let dest = dir.path().join("dest");
        let done = decompress(&src, &dest, 100).unwrap();
        assert_eq!(done, Some((Archive::Gzip, 11)));
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello world");

        std::fs::write(&src, gz(&vec![0u8; 10 << 20])).unwrap();
        let err = decompress(&src, &dest, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("size cap"), "{err}");
        assert!(std::fs::metadata(&dest).unwrap().len() <= 1 << 20);
    }

    #[test]
    fn data_that_is_no_archive_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"plain raw bytes").unwrap();
        let dest = dir.path().join("dest");
        assert_eq!(decompress(&src, &dest, 100).unwrap(), None);
        assert!(!dest.exists());
    }
}
