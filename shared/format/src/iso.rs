//! ISO 9660 and UDF optical images (ECMA-119, ECMA-167).
//!
//! The first 16 sectors (32 KiB) are a "system area" anything may use (hybrid ISOs put an
//! MBR/GPT there), so recognition starts at the volume descriptors in sector 16. We look at
//! sectors 16-18: ISO 9660 puts its primary volume descriptor first, and UDF's recognition
//! sequence ("BEA01", then "NSR02"/"NSR03") starts there too. The virtual size is the primary
//! volume descriptor's block count times its block size, as Glance computes it.

use crate::capture::{read, Region, Tail};
use crate::error::Problem;
use crate::probe::{Finding, Kind, Probe, Verdict};

const SECTOR: usize = 2048;
const DESCRIPTORS_OFFSET: u64 = 16 * SECTOR as u64;
const DESCRIPTORS_LEN: usize = 3 * SECTOR;
/// Standard identifiers that open a volume recognition sequence.
const IDENTIFIERS: [&[u8; 5]; 4] = [b"CD001", b"BEA01", b"NSR02", b"NSR03"];
const TYPE_PRIMARY: u8 = 1;

#[derive(Debug)]
pub(crate) struct IsoProbe {
    descriptors: Region,
    verdict: Verdict,
    settled: bool,
}

impl IsoProbe {
    pub(crate) fn new() -> Self {
        Self {
            descriptors: Region::new(DESCRIPTORS_OFFSET, DESCRIPTORS_LEN),
            verdict: Verdict::Pending,
            settled: false,
        }
    }

    fn settle(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.settled = true;
        self.descriptors.release();
    }

    /// Called once all three descriptors are in, or the stream ended after at least one.
    fn size_from_primary(&self) -> Result<Option<u64>, Problem> {
        let data = self.descriptors.data();
        let primary = data
            .chunks_exact(SECTOR)
            .find(|d| d[0] == TYPE_PRIMARY && &d[1..6] == b"CD001");
        let Some(primary) = primary else {
            // UDF without an ISO 9660 bridge: nothing we can size from here.
            return Ok(None);
        };
        let blocks = u64::from(read::le32(primary, 80));
        let block_size = read::le16(primary, 128);
        if !block_size.is_power_of_two() || !(512..=2048).contains(&block_size) {
            return Err(Problem::invalid(format!(
                "logical block size {block_size} is out of range"
            )));
        }
        Ok(Some(blocks * u64::from(block_size)))
    }

    fn finish_present(&mut self) {
        let finding = match self.size_from_primary() {
            Ok(virtual_size) => Finding {
                virtual_size,
                ..Finding::default()
            },
            Err(problem) => Finding::problem(problem),
        };
        self.settle(Verdict::Present(finding));
    }
}

impl Probe for IsoProbe {
    fn kind(&self) -> Kind {
        Kind::Iso
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        self.descriptors.feed(chunk, pos);
        if self.verdict == Verdict::Pending {
            let seen = self.descriptors.data();
            if seen.len() < 6 {
                return;
            }
            if !IDENTIFIERS.iter().any(|id| &seen[1..6] == *id) {
                self.settle(Verdict::Absent);
                return;
            }
            self.verdict = Verdict::Present(Finding::default());
        }
        if self.descriptors.is_complete() {
            self.finish_present();
        }
    }

    fn settled(&self) -> bool {
        self.settled
    }

    fn end(&mut self, _total: u64, _tail: &Tail) {
        if self.settled {
            return;
        }
        if self.verdict == Verdict::Pending {
            self.settle(Verdict::Truncated(
                "data ended before the volume descriptors",
            ));
        } else if self.descriptors.data().len() < SECTOR {
            self.settle(Verdict::Present(Finding::problem(Problem::invalid(
                "data ended inside the first volume descriptor",
            ))));
        } else {
            // A tiny image can end right after its first descriptors; size from those.
            self.finish_present();
        }
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        self.descriptors.held()
    }
}
