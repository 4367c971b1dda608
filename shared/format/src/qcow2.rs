//! QEMU copy-on-write v2/v3 (`docs/interop/qcow2.txt` in qemu).
//!
//! Everything we need lives in the first cluster: the fixed header (72 bytes in v2, 104+ in
//! v3) and the header extensions right after it. The 2024 advisories (OSSA-2024-001,
//! CVE-2024-32498) are about a qcow2 making qemu open some other file: a backing file, or an
//! external data file. Both are refused, and so is any incompatible feature bit we do not
//! know, since by definition it changes how the image must be read.

use crate::capture::{read, Region, Tail};
use crate::error::Problem;
use crate::probe::{could_be, Finding, Kind, Probe, Verdict};

const MAGIC: &[u8] = b"QFI\xfb";
/// The v3 header up to and including `header_length`; v2 files are far longer than this too.
const FIXED_HEADER_LEN: usize = 104;
const V2_HEADER_LEN: usize = 72;
/// How much of the first cluster we are willing to hold to walk the header extensions.
/// qemu-written extensions end within the first 512 bytes; only a crafted file goes further.
const EXTENSIONS_CAP: usize = 64 * 1024;

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION_TYPE: u64 = 1 << 3;
const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;
/// Bits qemu defines. Glance's mask stops at bit 3; extended L2 (bit 4) only changes the L2
/// table layout, not which files are read, so we accept it as qemu does.
const INCOMPAT_KNOWN: u64 = INCOMPAT_DIRTY
    | INCOMPAT_CORRUPT
    | INCOMPAT_DATA_FILE
    | INCOMPAT_COMPRESSION_TYPE
    | INCOMPAT_EXTENDED_L2;

const EXT_END: u32 = 0;
/// "External data file name" header extension.
const EXT_DATA_FILE: u32 = 0x4441_5441;

#[derive(Debug)]
pub(crate) struct Qcow2Probe {
    /// The header, grown to cover the extensions once the header says where they are.
    header: Region,
    /// Where the extensions start, once the header has been parsed.
    extensions_at: Option<usize>,
    /// The first cluster is larger than [`EXTENSIONS_CAP`], so we do not see all of it.
    capped: bool,
    verdict: Verdict,
    settled: bool,
}

impl Qcow2Probe {
    pub(crate) fn new() -> Self {
        Self {
            header: Region::new(0, FIXED_HEADER_LEN),
            extensions_at: None,
            capped: false,
            verdict: Verdict::Pending,
            settled: false,
        }
    }

    fn settle(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.settled = true;
        self.header.release();
    }

    fn fail(&mut self, problem: Problem) {
        let virtual_size = match &self.verdict {
            Verdict::Present(found) => found.virtual_size,
            _ => None,
        };
        self.settle(Verdict::Present(Finding {
            virtual_size,
            ..Finding::problem(problem)
        }));
    }

    /// Checks the fixed header; on success grows the capture to the extensions.
    fn parse_header(&mut self) -> Result<(), Problem> {
        let h = self.header.data();
        let version = read::be32(h, 4);
        if version != 2 && version != 3 {
            return Err(Problem::unsafe_(format!(
                "uses unsupported version {version}, which is not allowed"
            )));
        }
        if read::be64(h, 8) != 0 {
            return Err(Problem::unsafe_("has a backing file, which is not allowed"));
        }
        let cluster_bits = read::be32(h, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(Problem::invalid(format!(
                "cluster_bits {cluster_bits} is out of range"
            )));
        }
        let cluster_size = 1usize << cluster_bits;
        let size = read::be64(h, 24);

        let header_len = if version == 3 {
            let incompatible = read::be64(h, 72);
            if incompatible & INCOMPAT_DATA_FILE != 0 {
                return Err(Problem::unsafe_(
                    "has an external data file, which is not allowed",
                ));
            }
            let unknown = incompatible & !INCOMPAT_KNOWN;
            if unknown != 0 {
                return Err(Problem::unsafe_(format!(
                    "uses unknown incompatible features (0x{unknown:x}), which are not allowed"
                )));
            }
            let header_len = read::be32(h, 100) as usize;
            if header_len < FIXED_HEADER_LEN || header_len & 7 != 0 || header_len > cluster_size {
                return Err(Problem::invalid(format!(
                    "header_length {header_len} is out of range"
                )));
            }
            header_len
        } else {
            V2_HEADER_LEN
        };

        if let Verdict::Present(found) = &mut self.verdict {
            found.virtual_size = Some(size);
        }
        let extensions_end = cluster_size.min(EXTENSIONS_CAP);
        if header_len >= extensions_end {
            return Err(Problem::invalid(
                "the header leaves no room for the extension area",
            ));
        }
        self.capped = cluster_size > EXTENSIONS_CAP;
        self.header.grow(extensions_end);
        self.extensions_at = Some(header_len);
        Ok(())
    }

    /// Walks the extensions captured so far. `Ok(true)` once the walk is finished.
    fn walk_extensions(&self, start: usize) -> Result<bool, Problem> {
        let data = self.header.data();
        let mut off = start;
        loop {
            if off + 8 > data.len() {
                if !self.header.is_complete() {
                    return Ok(false);
                }
                // No end marker before the end of the area. qemu stops at the end of the
                // cluster too; but past our cap we can no longer see what it would read.
                return if !self.capped {
                    Ok(true)
                } else {
                    Err(Problem::invalid(
                        "header extensions extend beyond the first 64 KiB",
                    ))
                };
            }
            let kind = read::be32(data, off);
            let len = read::be32(data, off + 4) as usize;
            match kind {
                EXT_END => return Ok(true),
                EXT_DATA_FILE => {
                    return Err(Problem::unsafe_(
                        "names an external data file, which is not allowed",
                    ))
                }
                _ => {}
            }
            off += 8 + len.div_ceil(8) * 8;
        }
    }
}

impl Probe for Qcow2Probe {
    fn kind(&self) -> Kind {
        Kind::Qcow2
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        self.header.feed(chunk, pos);
        if self.verdict == Verdict::Pending {
            if !could_be(MAGIC, self.header.data()) {
                self.settle(Verdict::Absent);
                return;
            }
            if self.header.data().len() < MAGIC.len() {
                return;
            }
            self.verdict = Verdict::Present(Finding::default());
        }
        if self.extensions_at.is_none() {
            if !self.header.is_complete() {
                return;
            }
            if let Err(problem) = self.parse_header() {
                self.fail(problem);
                return;
            }
            self.header.feed(chunk, pos);
        }
        let start = self.extensions_at.expect("set once the header parsed");
        match self.walk_extensions(start) {
            Ok(true) => self.settled = true,
            Ok(false) => {}
            Err(problem) => self.fail(problem),
        }
        if self.settled {
            self.header.release();
        }
    }

    fn settled(&self) -> bool {
        self.settled
    }

    fn end(&mut self, _total: u64, _tail: &Tail) {
        if self.settled {
            return;
        }
        match self.verdict {
            Verdict::Pending => self.settle(Verdict::Truncated(
                "data ended before the header was complete",
            )),
            _ if self.extensions_at.is_none() => self.fail(Problem::invalid(
                "data ended before the header was complete",
            )),
            _ => self.fail(Problem::invalid("data ended inside the header extensions")),
        }
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        self.header.held()
    }
}
