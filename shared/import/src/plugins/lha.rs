//! The one file of an LHA archive, as Glance's `image_decompression` takes it with the
//! optional `lhafile` module: exactly one entry (counted before anything is extracted), its
//! CRC checked. The `-lh0-` and `-lh4-` to `-lh7-` methods are read, what `lhafile` reads.
//! The entry's name is never used as a path.

use std::fs::File;
use std::path::Path;

use super::decompression::{copy_capped, Capped};

#[derive(Debug, thiserror::Error)]
pub(super) enum LhaError {
    #[error("Archive contains more than one file.")]
    NotOneFile,
    #[error("Bad LHA archive: {0}")]
    Malformed(String),
    #[error("LHA compression method {0} is not supported")]
    Method(String),
    #[error("Bad CRC for the archive's file")]
    Crc,
    #[error("the archive's file is larger than the size cap of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn malformed(e: impl std::fmt::Display) -> LhaError {
    LhaError::Malformed(e.to_string())
}

/// Writes the archive's only file to `out`, at most `cap` bytes; returns its size.
pub(super) fn extract_single(src: &Path, out: &mut File, cap: u64) -> Result<u64, LhaError> {
    let mut entries = 1;
    let mut scan = delharc::parse_file(src).map_err(malformed)?;
    while scan.seek_next_file().map_err(malformed)? {
        entries += 1;
    }
    if entries != 1 {
        return Err(LhaError::NotOneFile);
    }
    let mut lha = delharc::parse_file(src).map_err(malformed)?;
    let header = lha.header();
    if !lha.is_decoder_supported() || header.is_directory() {
        return Err(LhaError::Method(
            String::from_utf8_lossy(&header.compression).into_owned(),
        ));
    }
    if header.original_size > cap {
        return Err(LhaError::TooLarge(cap));
    }
    // The decoder stops at the header's original size, which is within the cap.
    let written = copy_capped(&mut lha, out, cap).map_err(|e| match e {
        Capped::Read(e) | Capped::Write(e) => LhaError::Io(e),
        Capped::TooLarge => LhaError::TooLarge(cap),
    })?;
    lha.crc_check().map_err(|_| LhaError::Crc)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-16/ARC, LHA's checksum.
    fn crc16(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= b as u16;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xa001
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    /// An archive of stored (`-lh0-`) files with level-0 headers, as LHarc writes them.
    fn lh0_archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut h = Vec::new();
            h.extend_from_slice(b"-lh0-");
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&[0, 0, 0x21, 0x5a]); // DOS time
            h.extend_from_slice(&[0x20, 0]); // attribute, header level 0
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.extend_from_slice(&crc16(data).to_le_bytes());
            let sum = h.iter().fold(0u8, |s, b| s.wrapping_add(*b));
            out.push(h.len() as u8);
            out.push(sum);
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
        }
        out.push(0);
        out
    }

    fn extract(archive: &[u8], cap: u64) -> Result<Vec<u8>, LhaError> {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.lzh");
        std::fs::write(&src, archive).unwrap();
        let dest = dir.path().join("out");
        let mut out = File::create(&dest).unwrap();
        extract_single(&src, &mut out, cap)?;
        Ok(std::fs::read(dest).unwrap())
    }

    #[test]
    fn the_one_file_of_an_archive_is_extracted() {
        let archive = lh0_archive(&[("disk.img", b"disk bytes")]);
        assert_eq!(&archive[2..5], b"-lh", "Glance's magic number");
        assert_eq!(extract(&archive, 100).unwrap(), b"disk bytes");
    }

    #[test]
    fn two_files_a_bad_crc_or_too_much_data_are_refused() {
        let two = lh0_archive(&[("a", b"one"), ("b", b"two")]);
        assert!(matches!(extract(&two, 100), Err(LhaError::NotOneFile)));
        let mut bad = lh0_archive(&[("a", b"one")]);
        let at = bad.len() - 2;
        bad[at] ^= 0xff;
        assert!(matches!(extract(&bad, 100), Err(LhaError::Crc)));
        let big = lh0_archive(&[("a", &[7u8; 64])]);
        assert!(matches!(extract(&big, 10), Err(LhaError::TooLarge(10))));
    }
}
