//! Microsoft Virtual Hard Disk, qemu's `vpc` (the VHD specification; qemu `block/vpc.c`).
//!
//! The 512-byte "footer" is at the very end of every VHD. Dynamic disks also keep a copy at
//! offset 0, which is all Glance looks at; a fixed disk is a raw disk with the footer
//! appended, so it can only be recognised from the tail, once the stream is over.

use crate::capture::{read, Region, Tail};
use crate::error::Problem;
use crate::probe::{could_be, Finding, Kind, Probe, Verdict};

const COOKIE: &[u8] = b"conectix";
const FOOTER_LEN: usize = 512;
const VERSION_1_0: u32 = 0x0001_0000;
const TYPE_FIXED: u32 = 2;
const TYPE_DYNAMIC: u32 = 3;
const TYPE_DIFFERENCING: u32 = 4;
/// The largest CHS geometry; a disk this size is probably bigger and qemu trusts the
/// footer's size field instead.
const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;
const DYNAMIC_HEADER_MAGIC: &[u8] = b"cxsparse";
/// qemu and Hyper-V put the dynamic disk header right after the leading footer; we accept it
/// anywhere in the first MiB so the check stays cheap.
const DYNAMIC_HEADER_LIMIT: u64 = 1 << 20;

#[derive(Debug)]
pub(crate) struct VhdProbe {
    head: Region,
    /// The dynamic disk header's magic, once the leading footer says where it is.
    dynamic_header: Option<Region>,
    /// The leading footer has been ruled out: only the tail can still make this a VHD.
    head_absent: bool,
    verdict: Verdict,
    settled: bool,
}

impl VhdProbe {
    pub(crate) fn new() -> Self {
        Self {
            head: Region::new(0, FOOTER_LEN),
            dynamic_header: None,
            head_absent: false,
            verdict: Verdict::Pending,
            settled: false,
        }
    }

    fn fail(&mut self, problem: Problem, wraps_raw_disk: bool) {
        self.verdict = Verdict::Present(Finding {
            wraps_raw_disk,
            ..Finding::problem(problem)
        });
        self.settled = true;
    }

    fn feed_dynamic_header(&mut self, chunk: &[u8], pos: u64) {
        let Some(region) = &mut self.dynamic_header else {
            return;
        };
        region.feed(chunk, pos);
        if !region.is_complete() {
            return;
        }
        if region.data() != DYNAMIC_HEADER_MAGIC {
            self.fail(
                Problem::invalid("the dynamic disk header signature is missing"),
                false,
            );
        }
        self.settled = true;
    }

    fn accept(&mut self, virtual_size: u64, wraps_raw_disk: bool) {
        self.verdict = Verdict::Present(Finding {
            virtual_size: Some(virtual_size),
            problem: None,
            wraps_raw_disk,
        });
    }
}

/// Parses a footer that starts with the cookie; returns the virtual size as qemu computes it.
fn parse_footer(f: &[u8], trailing: bool) -> Result<u64, Problem> {
    let stored = read::be32(f, 64);
    let sum = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |acc, (_, &b)| acc.wrapping_add(u32::from(b)));
    if !sum != stored {
        return Err(Problem::invalid("the footer checksum does not match"));
    }
    let version = read::be32(f, 12);
    if version != VERSION_1_0 {
        return Err(Problem::invalid(format!(
            "unsupported footer version 0x{version:08x}"
        )));
    }
    match read::be32(f, 60) {
        TYPE_FIXED => {}
        TYPE_DYNAMIC if trailing => {
            return Err(Problem::invalid(
                "a dynamic disk is missing the copy of its footer at the start",
            ))
        }
        TYPE_DYNAMIC => {}
        TYPE_DIFFERENCING => {
            return Err(Problem::unsafe_(
                "is a differencing disk that reads from a parent image, which is not allowed",
            ))
        }
        other => return Err(Problem::invalid(format!("unknown disk type {other}"))),
    }

    // qemu (since 10.0) sizes only Virtual PC's and old qemu's images by their CHS geometry,
    // which may round the disk down; everyone else's by `current_size`.
    let chs_sectors = u64::from(read::be16(f, 56)) * u64::from(f[58]) * u64::from(f[59]);
    let creator = &f[28..32];
    if (creator == b"vpc " || creator == b"qemu") && chs_sectors != MAX_CHS_SECTORS {
        Ok(chs_sectors * 512)
    } else {
        Ok(read::be64(f, 48))
    }
}

impl Probe for VhdProbe {
    fn kind(&self) -> Kind {
        Kind::Vhd
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        if self.dynamic_header.is_some() {
            self.feed_dynamic_header(chunk, pos);
            return;
        }

        self.head.feed(chunk, pos);
        if !could_be(COOKIE, self.head.data()) {
            self.head_absent = true;
            self.settled = true;
            self.head.release();
            return;
        }
        if self.head.data().len() >= COOKIE.len() && self.verdict == Verdict::Pending {
            self.verdict = Verdict::Present(Finding::default());
        }
        if !self.head.is_complete() {
            return;
        }
        let footer = self.head.data();
        let data_offset = read::be64(footer, 16);
        let dynamic = read::be32(footer, 60) == TYPE_DYNAMIC;
        let parsed = parse_footer(footer, false);
        self.head.release();
        match parsed {
            Err(problem) => self.fail(problem, false),
            Ok(_)
                if dynamic && !(FOOTER_LEN as u64..DYNAMIC_HEADER_LIMIT).contains(&data_offset) =>
            {
                self.fail(
                    Problem::invalid(format!(
                        "the dynamic disk header offset {data_offset} is out of range"
                    )),
                    false,
                )
            }
            Ok(size) => {
                self.accept(size, false);
                if dynamic {
                    // The header may start in this very chunk.
                    self.dynamic_header =
                        Some(Region::new(data_offset, DYNAMIC_HEADER_MAGIC.len()));
                    self.feed_dynamic_header(chunk, pos);
                } else {
                    self.settled = true;
                }
            }
        }
    }

    fn settled(&self) -> bool {
        self.settled
    }

    fn end(&mut self, total: u64, tail: &Tail) {
        if self.settled && !self.head_absent {
            return;
        }
        if !self.head_absent {
            match self.verdict {
                Verdict::Pending => {
                    self.verdict = Verdict::Truncated("data ended inside the footer signature")
                }
                _ if self.dynamic_header.is_some() => self.fail(
                    Problem::invalid("data ended before the dynamic disk header"),
                    false,
                ),
                _ => self.fail(
                    Problem::invalid("data ended before the footer was complete"),
                    false,
                ),
            }
            return;
        }
        // A fixed disk: the only footer is the last sector.
        let footer = match tail.last(FOOTER_LEN) {
            Some(footer) if total >= FOOTER_LEN as u64 && footer.starts_with(COOKIE) => footer,
            _ => {
                self.verdict = Verdict::Absent;
                return;
            }
        };
        match parse_footer(&footer, true) {
            Ok(size) => self.accept(size, true),
            Err(problem) => self.fail(problem, true),
        }
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        self.head.held() + self.dynamic_header.as_ref().map_or(0, Region::held)
    }
}
