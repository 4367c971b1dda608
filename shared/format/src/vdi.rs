//! VirtualBox VDI (qemu `block/vdi.c`): a 512-byte little-endian header after a free-form
//! 64-byte banner. We apply the checks qemu applies before it will open one, so that what we
//! accept is what qemu reads, and refuse the parent/link UUIDs of a differencing image.

use crate::capture::{read, Region, Tail};
use crate::error::Problem;
use crate::probe::{Finding, Kind, Probe, Verdict};

const SIGNATURE_OFFSET: usize = 0x40;
const SIGNATURE: u32 = 0xbeda_107f;
/// The v1.1 header through `uuid_parent`.
const HEADER_LEN: usize = 0x1c8;
const VERSION_1_1: u32 = 0x0001_0001;
const TYPE_DYNAMIC: u32 = 1;
const TYPE_STATIC: u32 = 2;
const BLOCK_SIZE: u32 = 1 << 20;

#[derive(Debug)]
pub(crate) struct VdiProbe {
    header: Region,
    verdict: Verdict,
    settled: bool,
}

impl VdiProbe {
    pub(crate) fn new() -> Self {
        Self {
            header: Region::new(0, HEADER_LEN),
            verdict: Verdict::Pending,
            settled: false,
        }
    }

    fn settle(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.settled = true;
        self.header.release();
    }
}

fn check_header(h: &[u8]) -> Result<u64, Problem> {
    let version = read::le32(h, 0x44);
    if version != VERSION_1_1 {
        return Err(Problem::invalid(format!(
            "unsupported version {}.{}",
            version >> 16,
            version & 0xffff
        )));
    }
    let image_type = read::le32(h, 0x4c);
    if image_type != TYPE_DYNAMIC && image_type != TYPE_STATIC {
        return Err(Problem::invalid(format!(
            "unsupported image type {image_type}"
        )));
    }
    let bmap_offset = read::le32(h, 0x154);
    let data_offset = read::le32(h, 0x158);
    if (bmap_offset | data_offset) & 511 != 0 {
        return Err(Problem::invalid(
            "the block map or data offset is not sector aligned",
        ));
    }
    if read::le32(h, 0x168) != 512 {
        return Err(Problem::invalid("the sector size is not 512"));
    }
    if read::le32(h, 0x178) != BLOCK_SIZE {
        return Err(Problem::invalid("the block size is not 1 MiB"));
    }
    let disk_size = read::le64(h, 0x170);
    let blocks = u64::from(read::le32(h, 0x180));
    if disk_size > blocks * u64::from(BLOCK_SIZE) {
        return Err(Problem::invalid(
            "the disk size is larger than its blocks can hold",
        ));
    }
    let uuid_link = &h[0x1a8..0x1b8];
    let uuid_parent = &h[0x1b8..0x1c8];
    if uuid_link.iter().chain(uuid_parent).any(|&b| b != 0) {
        return Err(Problem::unsafe_(
            "refers to a parent image, which is not allowed",
        ));
    }
    Ok(disk_size)
}

impl Probe for VdiProbe {
    fn kind(&self) -> Kind {
        Kind::Vdi
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        self.header.feed(chunk, pos);
        let seen = self.header.data();
        if self.verdict == Verdict::Pending {
            if seen.len() < SIGNATURE_OFFSET + 4 {
                return;
            }
            if read::le32(seen, SIGNATURE_OFFSET) != SIGNATURE {
                self.settle(Verdict::Absent);
                return;
            }
            self.verdict = Verdict::Present(Finding::default());
        }
        if !self.header.is_complete() {
            return;
        }
        let finding = match check_header(self.header.data()) {
            Ok(size) => Finding {
                virtual_size: Some(size),
                ..Finding::default()
            },
            Err(problem) => Finding::problem(problem),
        };
        self.settle(Verdict::Present(finding));
    }

    fn settled(&self) -> bool {
        self.settled
    }

    fn end(&mut self, _total: u64, _tail: &Tail) {
        if self.settled {
            return;
        }
        let verdict = if self.verdict == Verdict::Pending {
            Verdict::Truncated("data ended before the signature")
        } else {
            Verdict::Present(Finding::problem(Problem::invalid(
                "data ended before the header was complete",
            )))
        };
        self.settle(verdict);
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        self.header.held()
    }
}
