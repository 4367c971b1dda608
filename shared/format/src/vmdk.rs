//! VMware VMDK, in the two shapes qemu will open as `vmdk`: a hosted sparse extent ("KDMV"
//! header with an embedded text descriptor), or a bare text descriptor file.
//!
//! The descriptor lists "extents", the files that hold the data. That is the danger behind
//! OSSA-2024-001: an extent (or a `parentFileNameHint`) can name any file on the host, and
//! qemu reads it. We accept only what a single self-contained file can be, the
//! monolithicSparse and streamOptimized subformats, with exactly one SPARSE extent whose
//! name is a plain file name (qemu ignores it for a sparse file with a real capacity and reads
//! the file itself). A bare descriptor file is refused outright: it has no data of its own,
//! so its extents always point at other files.

use crate::capture::{read, Region, Tail};
use crate::error::Problem;
use crate::probe::{could_be, Finding, Kind, Probe, Verdict};

const SPARSE_MAGIC: &[u8] = b"KDMV";
/// The sparse header as far as we read it (through `gdOffset`).
const SPARSE_HEADER_LEN: usize = 64;
/// qemu expects the embedded descriptor in sector 1 and reads at most 1 MiB - 1 of any
/// descriptor (`vmdk_read_desc`), so that is all we capture, embedded or bare.
const DESCRIPTOR_SECTOR: u64 = 1;
const DESCRIPTOR_MAX: usize = (1 << 20) - 1;
/// `gdOffset` value meaning "the real header is in a footer at the end of the file".
const GD_AT_END: u64 = u64::MAX;
/// Footer marker, footer, end-of-stream marker.
const TRAILER_LEN: usize = 1536;
const MARKER_FOOTER: u32 = 3;

pub(crate) const ALLOWED_CREATE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];

/// The fields of a sparse header we use or compare with the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SparseHeader {
    version: u32,
    capacity: u64,
    descriptor_offset: u64,
    descriptor_size: u64,
    gd_offset: u64,
}

impl SparseHeader {
    fn parse(h: &[u8]) -> Self {
        Self {
            version: read::le32(h, 4),
            capacity: read::le64(h, 12),
            descriptor_offset: read::le64(h, 28),
            descriptor_size: read::le64(h, 36),
            gd_offset: read::le64(h, 56),
        }
    }
}

#[derive(Debug)]
enum Stage {
    /// Fewer than four bytes seen: could still be either shape.
    Start,
    Sparse {
        descriptor: Option<Region>,
        header: Option<SparseHeader>,
        /// How much of the descriptor has been checked for its terminating NUL.
        scanned: usize,
    },
    /// Everything so far is text; capturing up to the first NUL.
    Text {
        scanned: usize,
    },
    Done,
}

#[derive(Debug)]
pub(crate) struct VmdkProbe {
    /// The first bytes: the sparse header, or the whole bare descriptor.
    head: Region,
    stage: Stage,
    /// A stream-optimized footer we must check once the stream is over.
    footer_of: Option<SparseHeader>,
    verdict: Verdict,
}

impl VmdkProbe {
    pub(crate) fn new() -> Self {
        Self {
            head: Region::new(0, SPARSE_HEADER_LEN),
            stage: Stage::Start,
            footer_of: None,
            verdict: Verdict::Pending,
        }
    }

    fn done(&mut self, verdict: Verdict) {
        self.verdict = verdict;
        self.stage = Stage::Done;
        self.head.release();
    }

    fn fail(&mut self, problem: Problem) {
        self.footer_of = None;
        self.done(Verdict::Present(Finding::problem(problem)));
    }

    fn advance(&mut self, chunk: &[u8], pos: u64) -> Result<(), Problem> {
        loop {
            match &mut self.stage {
                Stage::Start => {
                    self.head.feed(chunk, pos);
                    let seen = self.head.data();
                    if seen.len() >= SPARSE_MAGIC.len() && seen.starts_with(SPARSE_MAGIC) {
                        self.verdict = Verdict::Present(Finding::default());
                        self.stage = Stage::Sparse {
                            descriptor: None,
                            header: None,
                            scanned: 0,
                        };
                    } else if seen.len() >= SPARSE_MAGIC.len() || !could_be(SPARSE_MAGIC, seen) {
                        self.head.grow(DESCRIPTOR_MAX);
                        self.stage = Stage::Text { scanned: 0 };
                    } else {
                        return Ok(());
                    }
                }
                Stage::Sparse {
                    descriptor,
                    header,
                    scanned,
                } => {
                    if header.is_none() {
                        self.head.feed(chunk, pos);
                        if !self.head.is_complete() {
                            return Ok(());
                        }
                        let parsed = SparseHeader::parse(self.head.data());
                        let virtual_size = check_sparse_header(&parsed)?;
                        self.verdict = Verdict::Present(Finding {
                            virtual_size: Some(virtual_size),
                            ..Finding::default()
                        });
                        // qemu ignores `descriptorSize`: it reads from sector 1 up to the
                        // first NUL, so that is what we must see too.
                        *descriptor = Some(Region::new(DESCRIPTOR_SECTOR * 512, DESCRIPTOR_MAX));
                        *header = Some(parsed);
                    }
                    let region = descriptor.as_mut().expect("set with the header");
                    region.feed(chunk, pos);
                    let terminated = region.data()[*scanned..].contains(&0);
                    *scanned = region.data().len();
                    if !terminated && !region.is_complete() {
                        return Ok(());
                    }
                    let text = until_nul(region.data());
                    let header = header.expect("parsed above");
                    if !text.is_ascii() {
                        return Err(Problem::invalid("the descriptor is not ASCII text"));
                    }
                    let descriptor = Descriptor::parse(&String::from_utf8_lossy(text));
                    if let Some(problem) = descriptor.problem() {
                        return Err(problem);
                    }
                    if header.gd_offset == GD_AT_END {
                        self.footer_of = Some(header);
                    }
                    let verdict = self.verdict.clone();
                    self.done(verdict);
                    return Ok(());
                }
                Stage::Text { scanned } => {
                    self.head.feed(chunk, pos);
                    let data = self.head.data();
                    let stop = data[*scanned..]
                        .iter()
                        .find(|&&b| b == 0 || !is_text(b))
                        .copied();
                    *scanned = data.len();
                    match stop {
                        Some(0) => self.decide_text(),
                        Some(_) => self.done(Verdict::Absent),
                        None if self.head.is_complete() => self.decide_text(),
                        None => {}
                    }
                    return Ok(());
                }
                Stage::Done => return Ok(()),
            }
        }
    }

    /// The text (up to a NUL, the cap, or the end of the stream) is complete.
    fn decide_text(&mut self) {
        let text = String::from_utf8_lossy(until_nul(self.head.data())).into_owned();
        let descriptor = Descriptor::parse(&text);
        if descriptor.create_type.is_none() {
            // qemu refuses a descriptor without one too: this is just text.
            self.done(Verdict::Absent);
            return;
        }
        let problem = descriptor.problem().unwrap_or_else(|| {
            Problem::unsafe_(
                "is a bare descriptor file whose data lives in other files, which is not allowed",
            )
        });
        self.fail(problem);
    }

    fn check_footer(&self, header: &SparseHeader, tail: &Tail) -> Result<u64, Problem> {
        let Some(trailer) = tail.last(TRAILER_LEN) else {
            return Err(Problem::invalid("data ended before the footer"));
        };
        let (marker, rest) = trailer.split_at(512);
        let (footer, eos) = rest.split_at(512);
        let marker_ok = read::le32(marker, 8) == 0
            && read::le32(marker, 12) == MARKER_FOOTER
            && marker[16..].iter().all(|&b| b == 0);
        if !marker_ok {
            return Err(Problem::unsafe_("has an invalid footer marker"));
        }
        if eos.iter().any(|&b| b != 0) {
            return Err(Problem::unsafe_("has an invalid end-of-stream marker"));
        }
        if !footer.starts_with(SPARSE_MAGIC) {
            return Err(Problem::unsafe_("has a footer without a sparse header"));
        }
        let footer = SparseHeader::parse(footer);
        if footer.version != header.version
            || footer.descriptor_offset != header.descriptor_offset
            || footer.descriptor_size != header.descriptor_size
            || footer.gd_offset == GD_AT_END
        {
            return Err(Problem::unsafe_(
                "has a footer that does not match its header",
            ));
        }
        // qemu reads the disk through the footer, so its capacity is the one that counts.
        sectors_to_bytes(footer.capacity)
    }
}

fn sectors_to_bytes(sectors: u64) -> Result<u64, Problem> {
    match sectors.checked_mul(512) {
        Some(bytes) if bytes > 0 => Ok(bytes),
        _ => Err(Problem::invalid(format!(
            "capacity {sectors} is out of range"
        ))),
    }
}

/// Returns the virtual size.
fn check_sparse_header(h: &SparseHeader) -> Result<u64, Problem> {
    if !(1..=3).contains(&h.version) {
        return Err(Problem::invalid(format!(
            "unsupported sparse header version {}",
            h.version
        )));
    }
    if h.descriptor_offset != DESCRIPTOR_SECTOR || h.descriptor_size == 0 {
        return Err(Problem::invalid(
            "the embedded descriptor is not in sector 1",
        ));
    }
    if h.capacity == 0 {
        // qemu then opens the descriptor's extents instead of this file.
        return Err(Problem::unsafe_(
            "has a zero capacity, which makes qemu follow its descriptor's extents; not allowed",
        ));
    }
    sectors_to_bytes(h.capacity)
}

fn until_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    &data[..end]
}

fn is_text(byte: u8) -> bool {
    matches!(byte, b'\t'..=b'\r' | b' '..=b'~')
}

/// What a descriptor says, parsed as cautiously as Glance does: any line that is not a
/// comment, a `ddb` entry, a `key=value` field or an extent is a reason to refuse.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub(crate) create_type: Option<String>,
    pub(crate) duplicate_create_type: bool,
    pub(crate) parent_hint: bool,
    pub(crate) unknown_line: bool,
    pub(crate) extents: Vec<Extent>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    pub(crate) kind: String,
    pub(crate) file: Option<String>,
}

impl Descriptor {
    pub(crate) fn parse(text: &str) -> Self {
        // qemu finds both of these with a plain substring search, comments included, and
        // takes the first: a second copy anywhere could make it see something we did not.
        let lower = text.to_ascii_lowercase();
        let mut out = Descriptor {
            parent_hint: lower.contains("parentfilenamehint"),
            duplicate_create_type: lower.matches("createtype").count() > 1,
            ..Descriptor::default()
        };
        // qemu also stops a line at '\r'; splitting on both can only show us more lines.
        for line in text.split(['\n', '\r']).map(str::trim) {
            if line.is_empty() || line.starts_with('#') || starts_with_ignore_case(line, "ddb") {
                continue;
            }
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            if ["rw", "rdonly", "noaccess"]
                .iter()
                .any(|mode| first.eq_ignore_ascii_case(mode))
            {
                let _sectors = words.next();
                let kind = words.next().unwrap_or_default().to_ascii_uppercase();
                let file = line.split('"').nth(1).map(str::to_owned);
                out.extents.push(Extent { kind, file });
                continue;
            }
            match line.split_once('=') {
                Some((key, value)) if !key.trim().contains(char::is_whitespace) => {
                    if key.trim().eq_ignore_ascii_case("createType") {
                        out.create_type = Some(value.trim().trim_matches('"').to_owned());
                    }
                }
                _ => out.unknown_line = true,
            }
        }
        out
    }

    /// The first reason to refuse this descriptor, if any.
    pub(crate) fn problem(&self) -> Option<Problem> {
        if self.unknown_line {
            return Some(Problem::unsafe_(
                "has a descriptor line we do not understand, which is not allowed",
            ));
        }
        if self.duplicate_create_type {
            return Some(Problem::unsafe_(
                "has more than one createType, which is not allowed",
            ));
        }
        if self.parent_hint {
            return Some(Problem::unsafe_(
                "names a parent image (parentFileNameHint), which is not allowed",
            ));
        }
        for extent in &self.extents {
            if extent.kind != "SPARSE" {
                return Some(Problem::unsafe_(format!(
                    "has a {} extent; only a single embedded SPARSE extent is allowed",
                    printable(&extent.kind)
                )));
            }
            match &extent.file {
                Some(file) if is_plain_file_name(file) => {}
                Some(file) => {
                    return Some(Problem::unsafe_(format!(
                        "has an extent that points at another file ({}), which is not allowed",
                        printable(file)
                    )))
                }
                None => {
                    return Some(Problem::unsafe_(
                        "has an extent without a file name, which is not allowed",
                    ))
                }
            }
        }
        match self.extents.len() {
            0 => return Some(Problem::unsafe_("has a descriptor with no extents")),
            1 => {}
            n => {
                return Some(Problem::unsafe_(format!(
                    "has {n} extents; only a single embedded extent is allowed"
                )))
            }
        }
        match &self.create_type {
            None => Some(Problem::unsafe_("has a descriptor without a createType")),
            Some(ct)
                if ALLOWED_CREATE_TYPES
                    .iter()
                    .any(|allowed| ct.eq_ignore_ascii_case(allowed)) =>
            {
                None
            }
            Some(ct) => Some(Problem::unsafe_(format!(
                "has createType \"{}\"; only {} are allowed",
                printable(ct),
                ALLOWED_CREATE_TYPES.join(" and ")
            ))),
        }
    }
}

/// A name qemu would resolve next to the image, not a path or a protocol URL.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', ':'])
}

/// Attacker-controlled text going into an error message: short and escaped.
fn printable(text: &str) -> String {
    let short: String = text.chars().take(64).collect();
    short.escape_debug().to_string()
}

fn starts_with_ignore_case(line: &str, prefix: &str) -> bool {
    line.len() >= prefix.len()
        && line.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

impl Probe for VmdkProbe {
    fn kind(&self) -> Kind {
        Kind::Vmdk
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        if let Err(problem) = self.advance(chunk, pos) {
            self.fail(problem);
        }
    }

    fn settled(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    fn end(&mut self, _total: u64, tail: &Tail) {
        match &self.stage {
            Stage::Done => {}
            Stage::Start => {
                self.done(if self.head.data().is_empty() {
                    Verdict::Truncated("the stream is empty")
                } else {
                    Verdict::Truncated("data ended inside the sparse header signature")
                });
            }
            Stage::Text { .. } => self.decide_text(),
            Stage::Sparse { header: None, .. } => self.fail(Problem::invalid(
                "data ended before the sparse header was complete",
            )),
            Stage::Sparse { .. } => self.fail(Problem::invalid(
                "data ended before the descriptor was complete",
            )),
        }
        if let Some(header) = self.footer_of.take() {
            match self.check_footer(&header, tail) {
                Ok(size) => {
                    self.verdict = Verdict::Present(Finding {
                        virtual_size: Some(size),
                        ..Finding::default()
                    })
                }
                Err(problem) => self.fail(problem),
            }
        }
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        let descriptor = match &self.stage {
            Stage::Sparse {
                descriptor: Some(region),
                ..
            } => region.held(),
            _ => 0,
        };
        self.head.held() + descriptor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_SPARSE: &str = "# Disk DescriptorFile\nversion=1\nCID=9bdc96\nparentCID=ffffffff\n\
        createType=\"monolithicSparse\"\n\n# Extent description\nRW 20480 SPARSE \"s.vmdk\"\n\n\
        # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";

    #[test]
    fn a_qemu_monolithic_sparse_descriptor_is_accepted() {
        let descriptor = Descriptor::parse(QEMU_SPARSE);
        assert_eq!(descriptor.create_type.as_deref(), Some("monolithicSparse"));
        assert_eq!(descriptor.problem(), None);
    }

    #[test]
    fn a_flat_extent_naming_a_host_file_is_refused() {
        let text = QEMU_SPARSE.replace(
            "RW 20480 SPARSE \"s.vmdk\"",
            "RW 20480 FLAT \"/etc/passwd\" 0",
        );
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(
            matches!(problem, Problem::Unsafe(ref r) if r.contains("FLAT extent")),
            "{problem:?}"
        );
    }

    #[test]
    fn a_sparse_extent_with_a_path_is_refused() {
        let text = QEMU_SPARSE.replace("\"s.vmdk\"", "\"../../etc/shadow\"");
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("points at another file")));
    }

    #[test]
    fn a_second_extent_is_refused() {
        let text = QEMU_SPARSE.replace(
            "RW 20480 SPARSE \"s.vmdk\"",
            "RW 20480 SPARSE \"s.vmdk\"\nRW 20480 SPARSE \"t.vmdk\"",
        );
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("2 extents")));
    }

    #[test]
    fn a_parent_file_name_hint_is_refused() {
        let text =
            QEMU_SPARSE.replace("createType", "parentFileNameHint=\"base.vmdk\"\ncreateType");
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("parent")));
    }

    #[test]
    fn a_parent_file_name_hint_hidden_in_a_comment_is_refused() {
        // qemu's strstr() finds it there all the same.
        let text = format!("{QEMU_SPARSE}# parentFileNameHint=\"/etc/shadow\"\n");
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("parent")));
    }

    #[test]
    fn a_second_create_type_is_refused() {
        let text = format!("# createType=\"monolithicSparse\"\n{QEMU_SPARSE}createType=\"vmfs\"\n");
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("more than one")));
    }

    #[test]
    fn carriage_returns_separate_descriptor_lines() {
        let text = QEMU_SPARSE.replace(
            "RW 20480 SPARSE \"s.vmdk\"\n",
            "RW 20480 SPARSE \"s.vmdk\"\rRW 1 FLAT \"/etc/passwd\" 0\n",
        );
        assert!(Descriptor::parse(&text).problem().is_some());
    }

    #[test]
    fn an_unlisted_create_type_is_refused() {
        let text = QEMU_SPARSE.replace("monolithicSparse", "twoGbMaxExtentSparse");
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("twoGbMaxExtentSparse")));
    }

    #[test]
    fn a_line_that_is_not_descriptor_syntax_is_refused() {
        let text = format!("{QEMU_SPARSE}something odd here\n");
        let problem = Descriptor::parse(&text).problem().unwrap();
        assert!(matches!(problem, Problem::Unsafe(ref r) if r.contains("do not understand")));
    }

    #[test]
    fn create_type_and_access_modes_are_case_insensitive() {
        let text = QEMU_SPARSE
            .replace(
                "createType=\"monolithicSparse\"",
                "CREATETYPE = \"STREAMOPTIMIZED\"",
            )
            .replace("RW 20480 SPARSE", "rw 20480 sparse");
        assert_eq!(Descriptor::parse(&text).problem(), None);
    }
}
