//! The one file of a ZIP archive, as Glance's `image_decompression` takes it (Python's
//! `zipfile`: exactly one entry, stored or deflated, ZIP64 sizes, CRC checked). The entry's
//! name is never used as a path: the data goes to the file the caller names.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use flate2::read::DeflateDecoder;

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;

#[derive(Debug, thiserror::Error)]
pub(super) enum ZipError {
    #[error("Archive contains more than one file.")]
    NotOneFile,
    #[error("File is not a zip file: {0}")]
    Malformed(&'static str),
    #[error("the archive's file is encrypted")]
    Encrypted,
    #[error("compression method {0} is not supported")]
    Method(u16),
    #[error("Bad CRC-32 for the archive's file")]
    Crc,
    #[error("the archive's file is larger than the size cap of {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn read_at(file: &mut File, at: u64, len: usize) -> Result<Vec<u8>, ZipError> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut buf)
        .map_err(|_| ZipError::Malformed("truncated"))?;
    Ok(buf)
}

/// The entry's compression method, flags, sizes, CRC and local header offset.
struct Entry {
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local: u64,
}

/// Writes the archive's only file to `out`, at most `cap` bytes; returns its size.
pub(super) fn extract_single(src: &mut File, out: &mut File, cap: u64) -> Result<u64, ZipError> {
    let entry = central_entry(src)?;
    if entry.flags & 1 != 0 {
        return Err(ZipError::Encrypted);
    }
    if entry.size > cap {
        return Err(ZipError::TooLarge(cap));
    }
    let local = read_at(src, entry.local, 30)?;
    if u32_at(&local, 0) != LOCAL {
        return Err(ZipError::Malformed("bad local header"));
    }
    let start = entry.local + 30 + u16_at(&local, 26) as u64 + u16_at(&local, 28) as u64;
    src.seek(SeekFrom::Start(start))?;
    let raw = Read::by_ref(src).take(entry.compressed);
    let mut data: Box<dyn Read + '_> = match entry.method {
        0 => Box::new(raw),
        8 => Box::new(DeflateDecoder::new(raw)),
        other => return Err(ZipError::Method(other)),
    };
    // Never more than the cap, whatever the header claims: a bomb stops here.
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > cap.min(entry.size) {
            return Err(if written > cap {
                ZipError::TooLarge(cap)
            } else {
                ZipError::Malformed("the file is longer than its header says")
            });
        }
        crc.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    if written != entry.size {
        return Err(ZipError::Malformed(
            "the file is shorter than its header says",
        ));
    }
    if crc.sum() != entry.crc {
        return Err(ZipError::Crc);
    }
    Ok(written)
}

/// Finds the end of central directory record and reads the single entry it lists.
fn central_entry(file: &mut File) -> Result<Entry, ZipError> {
    let len = file.metadata()?.len();
    if len < 22 {
        return Err(ZipError::Malformed("too short"));
    }
    let tail_len = len.min(22 + 0xffff);
    let tail = read_at(file, len - tail_len, tail_len as usize)?;
    let at = (0..=tail.len() - 22)
        .rev()
        .find(|&i| u32_at(&tail, i) == EOCD)
        .ok_or(ZipError::Malformed("no end of central directory"))?;
    let eocd_pos = len - tail_len + at as u64;
    let mut entries = u16_at(&tail, at + 10) as u64;
    let mut cd_offset = u32_at(&tail, at + 16) as u64;
    if entries == 0xffff || cd_offset == 0xffff_ffff {
        if eocd_pos < 20 {
            return Err(ZipError::Malformed("no ZIP64 locator"));
        }
        let locator = read_at(file, eocd_pos - 20, 20)?;
        if u32_at(&locator, 0) != ZIP64_LOCATOR {
            return Err(ZipError::Malformed("no ZIP64 locator"));
        }
        let record = read_at(file, u64_at(&locator, 8), 56)?;
        if u32_at(&record, 0) != ZIP64_EOCD {
            return Err(ZipError::Malformed("bad ZIP64 end of central directory"));
        }
        entries = u64_at(&record, 32);
        cd_offset = u64_at(&record, 48);
    }
    if entries != 1 {
        return Err(ZipError::NotOneFile);
    }
    let header = read_at(file, cd_offset, 46)?;
    if u32_at(&header, 0) != CENTRAL {
        return Err(ZipError::Malformed("bad central directory"));
    }
    let name_len = u16_at(&header, 28) as u64;
    let extra_len = u16_at(&header, 30) as usize;
    let mut entry = Entry {
        flags: u16_at(&header, 8),
        method: u16_at(&header, 10),
        crc: u32_at(&header, 16),
        compressed: u32_at(&header, 20) as u64,
        size: u32_at(&header, 24) as u64,
        local: u32_at(&header, 42) as u64,
    };
    let extra = read_at(file, cd_offset + 46 + name_len, extra_len)?;
    zip64_sizes(&extra, &mut entry)?;
    Ok(entry)
}

/// The ZIP64 extra field holds, in this order, each of the sizes and the offset whose
/// 32-bit field is saturated.
fn zip64_sizes(mut extra: &[u8], entry: &mut Entry) -> Result<(), ZipError> {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
        let body = extra
            .get(4..4 + len)
            .ok_or(ZipError::Malformed("bad extra field"))?;
        if id == 1 {
            let mut values = body.chunks_exact(8).map(|c| u64_at(c, 0));
            for field in [&mut entry.size, &mut entry.compressed, &mut entry.local] {
                if *field == 0xffff_ffff {
                    *field = values
                        .next()
                        .ok_or(ZipError::Malformed("short ZIP64 field"))?;
                }
            }
        }
        extra = &extra[4 + len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ZIP of stored files, as `zip -0` writes it.
    fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let (mut out, mut central) = (Vec::new(), Vec::new());
        for (name, data) in files {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let offset = out.len() as u32;
            let sizes = [crc.sum(), data.len() as u32, data.len() as u32];
            out.extend_from_slice(&LOCAL.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            sizes
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&CENTRAL.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            sizes
                .iter()
                .for_each(|v| central.extend_from_slice(&v.to_le_bytes()));
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        let n = (files.len() as u16).to_le_bytes();
        out.extend_from_slice(&[n[0], n[1], n[0], n[1]]);
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
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
    fn a_stored_file_is_extracted_and_its_crc_checked() {
        let zip = stored_zip(&[("../../etc/passwd", b"disk bytes")]);
        assert_eq!(extract(&zip, 100).unwrap(), b"disk bytes");
        assert!(matches!(extract(&zip, 5), Err(ZipError::TooLarge(5))));
        let mut bad = zip.clone();
        let at = 30 + "../../etc/passwd".len();
        bad[at] ^= 1;
        assert!(matches!(extract(&bad, 100), Err(ZipError::Crc)));
        let two = stored_zip(&[("a", b"1"), ("b", b"2")]);
        assert!(matches!(extract(&two, 100), Err(ZipError::NotOneFile)));
    }

    #[test]
    fn a_cut_or_garbled_archive_is_an_error_never_a_panic() {
        let zip = stored_zip(&[("disk", &[9u8; 300])]);
        for len in 0..zip.len() {
            assert!(extract(&zip[..len], 1000).is_err(), "{len} bytes");
        }
        for at in 0..zip.len() {
            let mut garbled = zip.clone();
            garbled[at] = garbled[at].wrapping_add(0x80);
            let _ = extract(&garbled, 1000);
        }
    }

    #[test]
    fn zip64_fields_replace_saturated_ones_in_order() {
        let mut entry = Entry {
            flags: 0,
            method: 8,
            crc: 0,
            compressed: 0xffff_ffff,
            size: 0xffff_ffff,
            local: 12,
        };
        let mut extra = vec![0x99, 0x99, 0, 0]; // another extra field, empty
        extra.extend_from_slice(&[1, 0, 16, 0]);
        extra.extend_from_slice(&(5u64 << 32).to_le_bytes());
        extra.extend_from_slice(&(3u64 << 32).to_le_bytes());
        zip64_sizes(&extra, &mut entry).unwrap();
        assert_eq!(
            (entry.size, entry.compressed, entry.local),
            (5 << 32, 3 << 32, 12)
        );
        let mut short = Entry {
            size: 0xffff_ffff,
            ..entry
        };
        short.compressed = 0xffff_ffff;
        assert!(zip64_sizes(&[1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0], &mut short).is_err());
    }
}
