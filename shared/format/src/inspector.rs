//! The [`Inspector`]: every format probe looks at the same single pass over the upload, and
//! the inspector turns their opinions into Glance's accept/refuse decision.

use glance_domain::DiskFormat;

use crate::capture::Tail;
use crate::error::FormatError;
use crate::iso::IsoProbe;
use crate::partition::PartitionTableProbe;
use crate::probe::{Finding, Kind, Probe, Verdict};
use crate::qcow2::Qcow2Probe;
use crate::qed::QedProbe;
use crate::vdi::VdiProbe;
use crate::vhd::VhdProbe;
use crate::vhdx::VhdxProbe;
use crate::vmdk::VmdkProbe;

/// An upper bound on the bytes an inspection ever holds, whatever the upload. The largest
/// single capture is a VMDK descriptor (qemu's own 1 MiB - 1 limit); every other region is
/// at most 64 KiB.
pub const MAX_CAPTURE_BYTES: usize = 2 * 1024 * 1024;

/// The outcome of an accepted upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// What the content is: the declared format, or `raw` when nothing was recognised (which
    /// is what `raw` and `ami` uploads must be).
    pub detected: DiskFormat,
    /// The size of the disk the image describes, for the image's `virtual_size`. For raw
    /// content it is the byte count. `None` when the format does not say (a UDF-only ISO) or
    /// the disk_format is one Glance does not inspect.
    pub virtual_size: Option<u64>,
}

/// What `finish` requires the content to be, from the declared disk_format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expectation {
    /// `raw` and `ami`: nothing we recognise.
    Unstructured,
    /// The content must be this format.
    Format(Kind),
    /// `aki`, `ari`, `ploop`: Glance does not inspect these, so neither do we.
    Unchecked,
}

impl Expectation {
    fn of(declared: DiskFormat) -> Self {
        match declared {
            DiskFormat::Raw | DiskFormat::Ami => Expectation::Unstructured,
            DiskFormat::Qcow2 => Expectation::Format(Kind::Qcow2),
            DiskFormat::Vhd => Expectation::Format(Kind::Vhd),
            DiskFormat::Vhdx => Expectation::Format(Kind::Vhdx),
            DiskFormat::Vmdk => Expectation::Format(Kind::Vmdk),
            DiskFormat::Vdi => Expectation::Format(Kind::Vdi),
            DiskFormat::Iso => Expectation::Format(Kind::Iso),
            DiskFormat::Aki | DiskFormat::Ari | DiskFormat::Ploop => Expectation::Unchecked,
        }
    }
}

/// Inspects an upload as it streams past, without a second read and without buffering it.
///
/// Feed every chunk in order, then call [`finish`](Inspector::finish). Each format's probe
/// copies only the header regions it needs, then stops; after the first few hundred KiB
/// (qcow2, VMDK and friends decide within the first sector or so) `feed` is a counter
/// update plus a copy into a 1.5 KiB ring holding the tail, where a fixed VHD keeps its only
/// footer.
///
/// `feed` fails as soon as the bytes seen prove the upload will be refused (a qcow2 header
/// on a `raw` image, a backing file, ...), so the caller can stop streaming; `finish`
/// decides the rest. Once refused, the inspector keeps returning the same error.
#[derive(Debug)]
pub struct Inspector {
    declared: DiskFormat,
    expect: Expectation,
    probes: Vec<Box<dyn Probe>>,
    /// Some probe still wants bytes from the stream.
    probing: bool,
    total: u64,
    tail: Tail,
    failed: Option<FormatError>,
}

impl Inspector {
    pub fn new(declared: DiskFormat) -> Self {
        let expect = Expectation::of(declared);
        let probes: Vec<Box<dyn Probe>> = if expect == Expectation::Unchecked {
            Vec::new()
        } else {
            vec![
                Box::new(Qcow2Probe::new()),
                Box::new(QedProbe::new()),
                Box::new(VhdProbe::new()),
                Box::new(VhdxProbe::new()),
                Box::new(VmdkProbe::new()),
                Box::new(VdiProbe::new()),
                Box::new(IsoProbe::new()),
                Box::new(PartitionTableProbe::new()),
            ]
        };
        Self {
            declared,
            expect,
            probing: !probes.is_empty(),
            probes,
            total: 0,
            tail: Tail::new(),
            failed: None,
        }
    }

    /// The disk_format the inspector was created with.
    pub fn declared(&self) -> DiskFormat {
        self.declared
    }

    /// Bytes fed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.total
    }

    /// Bytes currently held by the inspection; never more than [`MAX_CAPTURE_BYTES`].
    pub fn captured_bytes(&self) -> usize {
        self.tail.held() + self.probes.iter().map(|p| p.held()).sum::<usize>()
    }

    /// Offers the next chunk of the upload. An error means the upload will be refused
    /// whatever follows; stop streaming and report it.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), FormatError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let pos = self.total;
        self.total += chunk.len() as u64;
        if self.expect == Expectation::Unchecked {
            return Ok(());
        }
        self.tail.push(chunk);
        if !self.probing || chunk.is_empty() {
            return Ok(());
        }
        // Deciding is only worth it when some probe changed its mind; with one-byte chunks
        // most calls change nothing.
        let mut changed = false;
        for probe in self.probes.iter_mut().filter(|p| !p.settled()) {
            let before = probe.verdict().clone();
            probe.feed(chunk, pos);
            changed |= probe.settled() || *probe.verdict() != before;
        }
        if !changed {
            return Ok(());
        }
        self.probing = self.probes.iter().any(|p| !p.settled());
        match self.early_verdict() {
            Some(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// Decides, once the last chunk has been fed.
    pub fn finish(mut self) -> Result<Inspection, FormatError> {
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if self.expect == Expectation::Unchecked {
            return Ok(Inspection {
                detected: DiskFormat::Raw,
                virtual_size: None,
            });
        }
        for probe in &mut self.probes {
            probe.end(self.total, &self.tail);
        }
        let detected = self.detected()?;
        match (self.expect, detected) {
            (Expectation::Unstructured, None) => Ok(Inspection {
                detected: DiskFormat::Raw,
                virtual_size: Some(self.total),
            }),
            (Expectation::Format(expected), Some((kind, finding))) if kind == expected => {
                match &finding.problem {
                    Some(problem) => Err(problem.clone().into_error(self.declared)),
                    None => Ok(Inspection {
                        detected: self.declared,
                        virtual_size: finding.virtual_size,
                    }),
                }
            }
            (_, Some((kind, _))) => Err(self.wrong_format(kind)),
            (Expectation::Format(expected), None) => match self.probe(expected).verdict() {
                Verdict::Truncated(reason) => Err(FormatError::Invalid {
                    format: self.declared,
                    reason: (*reason).to_owned(),
                }),
                _ => Err(self.wrong_format_raw()),
            },
            (Expectation::Unchecked, None) => unreachable!("returned above"),
        }
    }

    /// A refusal that the bytes seen so far already guarantee, if any.
    ///
    /// It waits until no probe is still looking for its signature (at most the first 38 KiB,
    /// where an ISO's descriptors end), so a second format at the head, which would turn a
    /// mismatch into a polyglot refusal, cannot show up later: the verdict is the same
    /// however the upload is chunked.
    fn early_verdict(&self) -> Option<FormatError> {
        let undecided = self
            .probes
            .iter()
            .any(|p| !p.settled() && !matches!(p.verdict(), Verdict::Present(_)));
        if undecided {
            return None;
        }
        let detected = match self.detected() {
            Ok(detected) => detected,
            Err(error) => return Some(error),
        };
        match (self.expect, detected) {
            (Expectation::Format(expected), Some((kind, finding))) if kind == expected => finding
                .problem
                .clone()
                .map(|problem| problem.into_error(self.declared)),
            // A fixed VHD may wrap an ISO; its footer only shows at the end of the stream.
            (Expectation::Format(Kind::Vhd), Some((Kind::Iso, _))) => None,
            (_, Some((kind, _))) => Some(self.wrong_format(kind)),
            // The declared format is ruled out and nothing else is left to find at the head;
            // only a trailing VHD footer could still turn up, which would not help.
            (Expectation::Format(expected), None)
                if !self.probing && *self.probe(expected).verdict() == Verdict::Absent =>
            {
                Some(self.wrong_format_raw())
            }
            _ => None,
        }
    }

    /// The one format the content is, `None` for unrecognised (raw) content, or an error if
    /// several formats' signatures are present in a way no real image has.
    fn detected(&self) -> Result<Option<(Kind, &Finding)>, FormatError> {
        let present: Vec<(Kind, &Finding)> = self
            .probes
            .iter()
            .filter_map(|probe| match probe.verdict() {
                Verdict::Present(finding) => Some((probe.kind(), finding)),
                _ => None,
            })
            .collect();
        let multiple = || FormatError::MultipleFormats {
            formats: present.iter().map(|(kind, _)| kind.name()).collect(),
        };

        let partitioned = present.iter().any(|(k, _)| *k == Kind::PartitionTable);
        let wrapper = present.iter().any(|(_, f)| f.wraps_raw_disk);
        let mut formats: Vec<(Kind, &Finding)> = present
            .iter()
            .copied()
            .filter(|(k, _)| *k != Kind::PartitionTable)
            .collect();
        // Raw disks and hybrid ISOs have partition tables (so may what a fixed VHD wraps);
        // container formats start with their own header instead.
        if partitioned
            && formats
                .iter()
                .any(|(k, f)| *k != Kind::Iso && !f.wraps_raw_disk)
        {
            return Err(multiple());
        }
        if wrapper {
            formats.retain(|(k, _)| *k != Kind::Iso);
        }
        match formats.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(multiple()),
        }
    }

    fn probe(&self, kind: Kind) -> &dyn Probe {
        self.probes
            .iter()
            .find(|p| p.kind() == kind)
            .map(|p| p.as_ref())
            .expect("every inspectable kind has a probe")
    }

    fn wrong_format(&self, kind: Kind) -> FormatError {
        match kind.disk_format() {
            Some(detected) => FormatError::Mismatch {
                declared: self.declared,
                detected,
            },
            None => FormatError::Unsupported {
                format: kind.name(),
            },
        }
    }

    fn wrong_format_raw(&self) -> FormatError {
        FormatError::Mismatch {
            declared: self.declared,
            detected: DiskFormat::Raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_mib_of_zeros_is_raw_and_settles_early() {
        let chunk = vec![0u8; 64 * 1024];
        let mut inspector = Inspector::new(DiskFormat::Raw);
        for i in 0..1024 {
            inspector.feed(&chunk).expect("zeros are raw");
            if i == 1 {
                assert!(
                    !inspector.probing,
                    "every probe should be settled after 128 KiB of zeros"
                );
            }
        }
        assert_eq!(inspector.bytes_seen(), 64 << 20);
        assert!(inspector.captured_bytes() <= MAX_CAPTURE_BYTES);
        assert_eq!(
            inspector.finish(),
            Ok(Inspection {
                detected: DiskFormat::Raw,
                virtual_size: Some(64 << 20),
            })
        );
    }

    #[test]
    fn an_empty_upload_is_an_empty_raw_image() {
        let inspector = Inspector::new(DiskFormat::Raw);
        assert_eq!(
            inspector.finish(),
            Ok(Inspection {
                detected: DiskFormat::Raw,
                virtual_size: Some(0),
            })
        );
    }

    #[test]
    fn an_empty_upload_is_not_a_qcow2() {
        let error = Inspector::new(DiskFormat::Qcow2).finish().unwrap_err();
        assert_eq!(error.code(), "format_invalid", "{error}");
    }

    #[test]
    fn kernels_ramdisks_and_ploop_are_not_inspected() {
        for declared in [DiskFormat::Aki, DiskFormat::Ari, DiskFormat::Ploop] {
            let mut inspector = Inspector::new(declared);
            inspector.feed(b"QFI\xfb\0\0\0\x03").unwrap();
            assert_eq!(inspector.bytes_seen(), 8);
            assert_eq!(
                inspector.finish(),
                Ok(Inspection {
                    detected: DiskFormat::Raw,
                    virtual_size: None,
                })
            );
        }
    }

    #[test]
    fn the_inspector_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Inspector>();
    }
}
