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
