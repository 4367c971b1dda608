//! The MBR boot signature, which raw disks, GPT disks (behind their protective MBR) and
//! hybrid ISOs carry.
//!
//! Glance detects this as "gpt" and refuses it alongside any other format except an ISO.
//! Here it is never a `disk_format` of its own: raw content with a partition table is raw.
//! It matters only as a second signature in front of a qcow2, VMDK, VDI, VHDX or dynamic
//! VHD, which no tool writes and which would let the same bytes be read two ways.

use crate::capture::{Region, Tail};
use crate::probe::{Finding, Kind, Probe, Verdict};

const SECTOR: usize = 512;
/// A FAT boot sector ends in the same signature; its BIOS parameter block tells it apart.
const FAT_COUNT_OFFSET: usize = 0x10;
const FAT_MEDIA_OFFSET: usize = 0x15;
const MEDIA_FIXED_DISK: u8 = 0xf8;

#[derive(Debug)]
pub(crate) struct PartitionTableProbe {
    sector: Region,
    verdict: Verdict,
}

impl PartitionTableProbe {
    pub(crate) fn new() -> Self {
        Self {
            sector: Region::new(0, SECTOR),
            verdict: Verdict::Pending,
        }
    }
}

impl Probe for PartitionTableProbe {
    fn kind(&self) -> Kind {
        Kind::PartitionTable
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        self.sector.feed(chunk, pos);
        if !self.sector.is_complete() {
            return;
        }
        let s = self.sector.data();
        let signed = s[510] == 0x55 && s[511] == 0xaa;
        let fat = s[FAT_COUNT_OFFSET] == 2 && s[FAT_MEDIA_OFFSET] == MEDIA_FIXED_DISK;
        self.verdict = if signed && !fat {
            Verdict::Present(Finding::default())
        } else {
            Verdict::Absent
        };
        self.sector.release();
    }

    fn settled(&self) -> bool {
        self.verdict != Verdict::Pending
    }

    fn end(&mut self, _total: u64, _tail: &Tail) {
        if self.verdict == Verdict::Pending {
            self.verdict = Verdict::Absent;
        }
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        self.sector.held()
    }
}
