//! What every per-format probe tells the [`Inspector`](crate::Inspector).

use glance_domain::DiskFormat;

use crate::capture::Tail;
use crate::error::Problem;

/// Every structure the inspector can recognise. Most are a `disk_format`; two are not, but
/// still matter when deciding whether an upload is one thing or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Qcow2,
    Vhd,
    Vhdx,
    Vmdk,
    Vdi,
    Iso,
    /// qemu's QED format: recognised only so that it can be refused.
    Qed,
    /// An MBR (or the protective MBR in front of a GPT). Raw disks and hybrid ISOs carry one;
    /// the container formats never do, so one in front of them means two formats at once.
    PartitionTable,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Qcow2 => "qcow2",
            Kind::Vhd => "vhd",
            Kind::Vhdx => "vhdx",
            Kind::Vmdk => "vmdk",
            Kind::Vdi => "vdi",
            Kind::Iso => "iso",
            Kind::Qed => "qed",
            Kind::PartitionTable => "gpt/mbr",
        }
    }

    pub(crate) fn disk_format(self) -> Option<DiskFormat> {
        match self {
            Kind::Qcow2 => Some(DiskFormat::Qcow2),
            Kind::Vhd => Some(DiskFormat::Vhd),
            Kind::Vhdx => Some(DiskFormat::Vhdx),
            Kind::Vmdk => Some(DiskFormat::Vmdk),
            Kind::Vdi => Some(DiskFormat::Vdi),
            Kind::Iso => Some(DiskFormat::Iso),
            Kind::Qed | Kind::PartitionTable => None,
        }
    }
}

/// A probe's current opinion of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not enough bytes yet to tell.
    Pending,
    /// Definitely not this format.
    Absent,
    /// The stream ended before the signature could be checked (a few bytes of a header).
    Truncated(&'static str),
    /// The signature is there. The finding fills in as more of the header arrives.
    Present(Finding),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) virtual_size: Option<u64>,
    /// The first thing found wrong; a probe stops looking once it has one.
    pub(crate) problem: Option<Problem>,
    /// The format is an unstructured disk plus a trailer (a fixed VHD), so its contents may
    /// legitimately carry another format's marks (an ISO, a partition table).
    pub(crate) wraps_raw_disk: bool,
}

impl Finding {
    pub(crate) fn problem(problem: Problem) -> Self {
        Self {
            problem: Some(problem),
            ..Self::default()
        }
    }
}

/// One format's view of the stream. The inspector offers every chunk until the probe is
/// [`settled`](Probe::settled), then the tail once the stream ends.
pub(crate) trait Probe: Send + std::fmt::Debug {
    fn kind(&self) -> Kind;

    /// `chunk` starts at stream offset `pos`.
    fn feed(&mut self, chunk: &[u8], pos: u64);

    /// True once the probe needs no more of the stream (it may still look at the tail).
    fn settled(&self) -> bool;

    /// The stream is over: `total` bytes, ending with `tail`. Must leave the verdict
    /// anything but [`Verdict::Pending`].
    fn end(&mut self, total: u64, tail: &Tail);

    fn verdict(&self) -> &Verdict;

    /// Bytes currently held, for the capture budget.
    fn held(&self) -> usize;
}

/// Whether `seen` could still be the start of `magic`: the cheapest way to rule a format out
/// on the first byte instead of waiting for a whole header.
pub(crate) fn could_be(magic: &[u8], seen: &[u8]) -> bool {
    let n = magic.len().min(seen.len());
    magic[..n] == seen[..n]
}
