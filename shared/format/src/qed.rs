//! QEMU Enhanced Disk. Glance has no `disk_format` for it and oslo.utils bans it outright, but
//! it must still be recognised: qemu would happily open a "raw" upload that is really a QED
//! with a backing file.

use crate::capture::{Region, Tail};
use crate::probe::{could_be, Finding, Kind, Probe, Verdict};

const MAGIC: &[u8] = b"QED\0";

#[derive(Debug)]
pub(crate) struct QedProbe {
    magic: Region,
    verdict: Verdict,
}

impl QedProbe {
    pub(crate) fn new() -> Self {
        Self {
            magic: Region::new(0, MAGIC.len()),
            verdict: Verdict::Pending,
        }
    }
}

impl Probe for QedProbe {
    fn kind(&self) -> Kind {
        Kind::Qed
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        self.magic.feed(chunk, pos);
        if !could_be(MAGIC, self.magic.data()) {
            self.verdict = Verdict::Absent;
        } else if self.magic.is_complete() {
            self.verdict = Verdict::Present(Finding::default());
        }
    }

    fn settled(&self) -> bool {
        self.verdict != Verdict::Pending
    }

    fn end(&mut self, _total: u64, _tail: &Tail) {
        if self.verdict == Verdict::Pending {
            self.verdict = Verdict::Truncated("data ended inside the signature");
        }
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        self.magic.held()
    }
}
