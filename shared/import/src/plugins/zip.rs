//! The one file of a ZIP archive, as Glance's `image_decompression` takes it (Python's
//! `zipfile`: exactly one entry, its CRC checked), read with the `zip` crate. The entry's
//! name is never used as a path: the data goes to the file the caller names.

use std::fs::File;

use zip::result::ZipError as Malformed;
use zip::ZipArchive;

use super::decompression::{copy_capped, Capped};

#[derive(Debug, thiserror::Error)]
pub(super) enum ZipError {
    #[error("Archive contains more than one file.")]
    NotOneFile,
    #[error("File is not a zip file: {0}")]
    Malformed(String),
    #[error("the archive's file is larger than the size cap of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<Malformed> for ZipError {
    fn from(e: Malformed) -> Self {
        match e {
            Malformed::Io(e) => ZipError::Io(e),
            other => ZipError::Malformed(other.to_string()),
        }
    }
}

/// Writes the archive's only file to `out`, at most `cap` bytes of it; returns its size.
/// A cut or garbled archive, an encrypted or unsupported entry and a bad CRC are errors.
pub(super) fn extract_single(src: &mut File, out: &mut File, cap: u64) -> Result<u64, ZipError> {
    let mut archive = ZipArchive::new(src)?;
    if archive.len() != 1 {
        return Err(ZipError::NotOneFile);
    }
    let mut entry = archive.by_index(0)?;
    copy_capped(&mut entry, out, cap).map_err(|e| match e {
        // The crate checks the CRC when the entry's last byte is read, and reports a bad
        // one (or a cut deflate stream) as an I/O error of kind InvalidData.
        Capped::Read(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            ZipError::Malformed(e.to_string())
        }
        Capped::Read(e) | Capped::Write(e) => ZipError::Io(e),
        Capped::TooLarge => ZipError::TooLarge(cap),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    fn zip_of(files: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
        let mut w = ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in files {
            let options = SimpleFileOptions::default().compression_method(method);
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn extract(archive: &[u8], cap: u64) -> Result<Vec<u8>, ZipError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.zip"), archive).unwrap();
        let mut src = File::open(dir.path().join("a.zip")).unwrap();
        let mut out = File::create(dir.path().join("out")).unwrap();
        extract_single(&mut src, &mut out, cap)?;
        Ok(std::fs::read(dir.path().join("out")).unwrap())
    }

    #[test]
    fn the_one_file_is_extracted_under_the_cap_and_its_crc_checked() {
        let data = [7u8; 5000];
        for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
            let zip = zip_of(&[("../../etc/passwd", &data)], method);
            assert_eq!(extract(&zip, 5000).unwrap(), data);
            assert!(matches!(extract(&zip, 4999), Err(ZipError::TooLarge(4999))));
        }
        let mut bad = zip_of(&[("d", &data)], CompressionMethod::Stored);
        let at = 30 + 1 + 100; // in the stored data, after the local header and name
        bad[at] ^= 1;
        assert!(matches!(extract(&bad, 10_000), Err(ZipError::Malformed(_))));
        let two = zip_of(&[("a", b"1"), ("b", b"2")], CompressionMethod::Stored);
        assert!(matches!(extract(&two, 100), Err(ZipError::NotOneFile)));
    }

    #[test]
    fn a_cut_or_garbled_archive_is_an_error_never_a_panic() {
        let zip = zip_of(&[("disk", &[9u8; 300])], CompressionMethod::Deflated);
        for len in 0..zip.len() {
            assert!(extract(&zip[..len], 1000).is_err(), "{len} bytes");
        }
        for at in 0..zip.len() {
            let mut garbled = zip.clone();
            garbled[at] = garbled[at].wrapping_add(0x80);
            let _ = extract(&garbled, 1000);
        }
    }
}
