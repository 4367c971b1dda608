//! Microsoft VHDX ([MS-VHDX]; qemu `block/vhdx.c`).
//!
//! The virtual size is three hops from the start: the region table at 192 KiB names the
//! metadata region, whose table names the "Virtual Disk Size" item. Each hop's target is
//! further into the file than the structure pointing at it, so all of it can be captured in
//! one pass as long as we register the next region before the stream reaches it. The
//! metadata region may sit anywhere, so we bound how far into the file we follow it.

use crate::capture::{read, Region, Tail};
use crate::error::Problem;
use crate::probe::{could_be, Finding, Kind, Probe, Verdict};

const SIGNATURE: &[u8] = b"vhdxfile";
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// The two copies of the header; we read as far as the `version` field.
const HEADER_OFFSETS: [u64; 2] = [64 * KIB, 128 * KIB];
const HEADER_LEN: usize = 68;
const REGION_TABLE_OFFSET: u64 = 192 * KIB;
const REGION_TABLE_LEN: usize = 64 * 1024;
const MAX_TABLE_ENTRIES: usize = 2047;
/// How far into the file we follow the metadata region. qemu puts it at 3 MiB, Hyper-V near
/// the start too; this only bounds how long a declared-vhdx upload streams before a verdict.
const MAX_METADATA_OFFSET: u64 = 256 * MIB;
const METADATA_TABLE_HEADER_LEN: usize = 32;
/// The spec caps a VHDX at 64 TiB.
const MAX_VIRTUAL_SIZE: u64 = 64 * 1024 * 1024 * MIB;

/// Builds the on-disk (mixed-endian) bytes of a GUID written in its usual text form.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

const REGION_BAT: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const REGION_METADATA: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const ITEM_FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const ITEM_VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const ITEM_PAGE_83: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const ITEM_LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const ITEM_PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
const ITEM_PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);

const FLAG_REQUIRED_REGION: u32 = 1;
const FLAG_REQUIRED_ITEM: u32 = 1 << 2;
const FILE_PARAMETERS_HAS_PARENT: u32 = 1 << 1;

#[derive(Debug)]
enum Stage {
    /// Waiting for the file identifier.
    Signature(Region),
    /// Both headers and the region table, which sit at fixed offsets.
    Tables {
        headers: [Region; 2],
        region_table: Region,
    },
    /// The metadata table: its 32-byte header first, grown to hold the entries it announces.
    MetadataTable {
        table: Region,
        region_len: u64,
        entries_known: bool,
    },
    /// The two items we need, wherever the table put them.
    Items {
        file_parameters: Region,
        virtual_disk_size: Region,
    },
    Done,
}

#[derive(Debug)]
pub(crate) struct VhdxProbe {
    stage: Stage,
    verdict: Verdict,
}

impl VhdxProbe {
    pub(crate) fn new() -> Self {
        Self {
            stage: Stage::Signature(Region::new(0, SIGNATURE.len())),
            verdict: Verdict::Pending,
        }
    }

    fn fail(&mut self, problem: Problem) {
        self.verdict = Verdict::Present(Finding::problem(problem));
        self.stage = Stage::Done;
    }

    /// Runs the stages as far as the captured bytes allow; a stage that completes may hand
    /// the same chunk to the next one, whose region can start inside it.
    fn advance(&mut self, chunk: &[u8], pos: u64) -> Result<(), Problem> {
        loop {
            let next = match &mut self.stage {
                Stage::Signature(ident) => {
                    ident.feed(chunk, pos);
                    if !could_be(SIGNATURE, ident.data()) {
                        self.verdict = Verdict::Absent;
                        self.stage = Stage::Done;
                        return Ok(());
                    }
                    if !ident.is_complete() {
                        return Ok(());
                    }
                    self.verdict = Verdict::Present(Finding::default());
                    Stage::Tables {
                        headers: HEADER_OFFSETS.map(|offset| Region::new(offset, HEADER_LEN)),
                        region_table: Region::new(REGION_TABLE_OFFSET, REGION_TABLE_LEN),
                    }
                }
                Stage::Tables {
                    headers,
                    region_table,
                } => {
                    for header in headers.iter_mut() {
                        header.feed(chunk, pos);
                    }
                    region_table.feed(chunk, pos);
                    if !region_table.is_complete() || !headers.iter().all(Region::is_complete) {
                        return Ok(());
                    }
                    if !headers.iter().any(|h| valid_header(h.data())) {
                        return Err(Problem::invalid("neither header copy is valid"));
                    }
                    let (offset, len) = find_metadata_region(region_table.data())?;
                    Stage::MetadataTable {
                        table: Region::new(offset, METADATA_TABLE_HEADER_LEN),
                        region_len: len,
                        entries_known: false,
                    }
                }
                Stage::MetadataTable {
                    table,
                    region_len,
                    entries_known,
                } => {
                    table.feed(chunk, pos);
                    if !table.is_complete() {
                        return Ok(());
                    }
                    if !*entries_known {
                        let count = metadata_entry_count(table.data())?;
                        table.grow(METADATA_TABLE_HEADER_LEN + count * 32);
                        *entries_known = true;
                        continue;
                    }
                    let base = table.offset();
                    let items = find_items(table.data(), *region_len)?;
                    Stage::Items {
                        file_parameters: Region::new(base + items.file_parameters, 8),
                        virtual_disk_size: Region::new(base + items.virtual_disk_size, 8),
                    }
                }
                Stage::Items {
                    file_parameters,
                    virtual_disk_size,
                } => {
                    file_parameters.feed(chunk, pos);
                    virtual_disk_size.feed(chunk, pos);
                    if !file_parameters.is_complete() || !virtual_disk_size.is_complete() {
                        return Ok(());
                    }
                    let size = check_items(file_parameters.data(), virtual_disk_size.data())?;
                    self.verdict = Verdict::Present(Finding {
                        virtual_size: Some(size),
                        ..Finding::default()
                    });
                    Stage::Done
                }
                Stage::Done => return Ok(()),
            };
            self.stage = next;
        }
    }
}

fn valid_header(h: &[u8]) -> bool {
    &h[..4] == b"head" && read::le16(h, 66) == 1
}

/// Returns the metadata region's file offset and length.
fn find_metadata_region(table: &[u8]) -> Result<(u64, u64), Problem> {
    if &table[..4] != b"regi" {
        return Err(Problem::invalid("the region table signature is missing"));
    }
    let count = read::le32(table, 8) as usize;
    if count > MAX_TABLE_ENTRIES {
        return Err(Problem::invalid(format!(
            "the region table has {count} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    let mut metadata = None;
    let mut bat = false;
    for entry in table[16..16 + count * 32].chunks_exact(32) {
        let id = &entry[..16];
        if id == REGION_METADATA {
            metadata = Some((read::le64(entry, 16), u64::from(read::le32(entry, 24))));
        } else if id == REGION_BAT {
            bat = true;
        } else if read::le32(entry, 28) & FLAG_REQUIRED_REGION != 0 {
            return Err(Problem::invalid(
                "the region table lists an unknown required region",
            ));
        }
    }
    let Some((offset, len)) = metadata else {
        return Err(Problem::invalid("the metadata region is missing"));
    };
    if !bat {
        return Err(Problem::invalid(
            "the block allocation table region is missing",
        ));
    }
    if offset < MIB || offset % MIB != 0 || len < REGION_TABLE_LEN as u64 {
        return Err(Problem::invalid(format!(
            "the metadata region at offset {offset} (length {len}) is misplaced"
        )));
    }
    if offset > MAX_METADATA_OFFSET {
        return Err(Problem::invalid(format!(
            "the metadata region at offset {offset} is beyond the first {} MiB, which is all \
             we inspect",
            MAX_METADATA_OFFSET / MIB
        )));
    }
    Ok((offset, len))
}

fn metadata_entry_count(header: &[u8]) -> Result<usize, Problem> {
    if &header[..8] != b"metadata" {
        return Err(Problem::invalid("the metadata table signature is missing"));
    }
    let count = read::le16(header, 10) as usize;
    if count > MAX_TABLE_ENTRIES {
        return Err(Problem::invalid(format!(
            "the metadata table has {count} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    Ok(count)
}

/// Offsets, relative to the metadata region, of the two items we read.
struct Items {
    file_parameters: u64,
    virtual_disk_size: u64,
}

fn find_items(table: &[u8], region_len: u64) -> Result<Items, Problem> {
    let mut file_parameters = None;
    let mut virtual_disk_size = None;
    for entry in table[METADATA_TABLE_HEADER_LEN..].chunks_exact(32) {
        let id = &entry[..16];
        let offset = u64::from(read::le32(entry, 16));
        let len = u64::from(read::le32(entry, 20));
        let flags = read::le32(entry, 24);
        if id == ITEM_PARENT_LOCATOR {
            return Err(Problem::unsafe_(
                "has a parent locator (a differencing disk), which is not allowed",
            ));
        }
        let slot = if id == ITEM_FILE_PARAMETERS {
            &mut file_parameters
        } else if id == ITEM_VIRTUAL_DISK_SIZE {
            &mut virtual_disk_size
        } else if id == ITEM_PAGE_83
            || id == ITEM_LOGICAL_SECTOR_SIZE
            || id == ITEM_PHYSICAL_SECTOR_SIZE
        {
            continue;
        } else if flags & FLAG_REQUIRED_ITEM != 0 {
            return Err(Problem::invalid(
                "the metadata lists an unknown required item",
            ));
        } else {
            continue;
        };
        // Items live after the table, inside the region; this also keeps them ahead of the
        // stream position, so they can still be captured.
        if offset < table.len() as u64 || len != 8 || offset + len > region_len {
            return Err(Problem::invalid("a metadata item is misplaced"));
        }
        *slot = Some(offset);
    }
    match (file_parameters, virtual_disk_size) {
        (Some(file_parameters), Some(virtual_disk_size)) => Ok(Items {
            file_parameters,
            virtual_disk_size,
        }),
        _ => Err(Problem::invalid(
            "the file parameters or virtual disk size item is missing",
        )),
    }
}

fn check_items(file_parameters: &[u8], virtual_disk_size: &[u8]) -> Result<u64, Problem> {
    let block_size = read::le32(file_parameters, 0);
    let flags = read::le32(file_parameters, 4);
    if flags & FILE_PARAMETERS_HAS_PARENT != 0 {
        return Err(Problem::unsafe_(
            "is a differencing disk that reads from a parent image, which is not allowed",
        ));
    }
    if !block_size.is_power_of_two() || !(MIB..=256 * MIB).contains(&u64::from(block_size)) {
        return Err(Problem::invalid(format!(
            "block size {block_size} is out of range"
        )));
    }
    let size = read::le64(virtual_disk_size, 0);
    if size == 0 || size > MAX_VIRTUAL_SIZE {
        return Err(Problem::invalid(format!(
            "virtual disk size {size} is out of range"
        )));
    }
    Ok(size)
}

impl Probe for VhdxProbe {
    fn kind(&self) -> Kind {
        Kind::Vhdx
    }

    fn feed(&mut self, chunk: &[u8], pos: u64) {
        if let Err(problem) = self.advance(chunk, pos) {
            self.fail(problem);
        }
    }

    fn settled(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    fn end(&mut self, _total: u64, _tail: &Tail) {
        let what = match self.stage {
            Stage::Done => return,
            Stage::Signature(_) => {
                self.verdict = Verdict::Truncated("data ended inside the file signature");
                self.stage = Stage::Done;
                return;
            }
            Stage::Tables { .. } => "data ended before the headers and region table",
            Stage::MetadataTable { .. } => "data ended before the metadata table",
            Stage::Items { .. } => "data ended before the virtual disk size",
        };
        self.fail(Problem::invalid(what));
    }

    fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    fn held(&self) -> usize {
        match &self.stage {
            Stage::Signature(r) => r.held(),
            Stage::Tables {
                headers,
                region_table,
            } => headers.iter().map(Region::held).sum::<usize>() + region_table.held(),
            Stage::MetadataTable { table, .. } => table.held(),
            Stage::Items {
                file_parameters,
                virtual_disk_size,
            } => file_parameters.held() + virtual_disk_size.held(),
            Stage::Done => 0,
        }
    }
}
