//! Hand-made and hand-patched images: the hostile and broken cases no tool writes.

mod common;

use common::*;
use glance_domain::DiskFormat;
use glance_format::{FormatError, Inspection, Inspector, MAX_CAPTURE_BYTES};

const MIB: usize = 1 << 20;

fn put_be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_be64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

fn put_le32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_le64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// A minimal qcow2: the header with 64 KiB clusters and nothing else of interest.
fn qcow2(version: u32, incompatible: u64) -> Vec<u8> {
    let mut image = vec![0u8; 3 * 65536];
    image[..4].copy_from_slice(b"QFI\xfb");
    put_be32(&mut image, 4, version);
    put_be32(&mut image, 20, 16);
    put_be64(&mut image, 24, 8 * MIB as u64);
    if version == 3 {
        put_be64(&mut image, 72, incompatible);
        put_be32(&mut image, 96, 4);
        put_be32(&mut image, 100, 104);
    }
    image
}

#[test]
fn a_hand_made_qcow2_header_is_accepted() {
    for version in [2, 3] {
        assert_eq!(
            inspect_all(DiskFormat::Qcow2, &qcow2(version, 0)),
            accepted(DiskFormat::Qcow2, 8 * MIB as u64)
        );
    }
}

#[test]
fn a_qcow2_with_unknown_incompatible_features_is_refused() {
    assert_unsafe(
        inspect_all(DiskFormat::Qcow2, &qcow2(3, 1 << 5)),
        DiskFormat::Qcow2,
        "unknown incompatible features (0x20)",
    );
    assert_unsafe(
        inspect_all(DiskFormat::Qcow2, &qcow2(3, 1 << 63)),
        DiskFormat::Qcow2,
        "unknown incompatible features",
    );
}

#[test]
fn a_qcow2_with_the_data_file_feature_bit_is_refused() {
    assert_unsafe(
        inspect_all(DiskFormat::Qcow2, &qcow2(3, 1 << 2)),
        DiskFormat::Qcow2,
        "external data file",
    );
}

#[test]
fn a_qcow2_naming_a_data_file_without_the_feature_bit_is_refused() {
    let mut image = qcow2(3, 0);
    // A harmless unknown extension first, then the data file name.
    put_be32(&mut image, 104, 0x1234_5678);
    put_be32(&mut image, 108, 3);
    put_be32(&mut image, 120, 0x4441_5441);
    put_be32(&mut image, 124, 10);
    image[128..138].copy_from_slice(b"/etc/hosts");
    assert_unsafe(
        inspect_all(DiskFormat::Qcow2, &image),
        DiskFormat::Qcow2,
        "external data file",
    );
}

#[test]
fn a_qcow_version_1_image_is_refused() {
    assert_unsafe(
        inspect_all(DiskFormat::Qcow2, &qcow2(1, 0)),
        DiskFormat::Qcow2,
        "unsupported version 1",
    );
}

#[test]
fn a_qed_image_is_refused_as_unsupported() {
    let mut image = vec![0u8; 4096];
    image[..4].copy_from_slice(b"QED\0");
    for declared in [DiskFormat::Raw, DiskFormat::Qcow2] {
        let result = inspect_all(declared, &image);
        assert_eq!(result, Err(FormatError::Unsupported { format: "qed" }));
        assert_eq!(
            result.unwrap_err().to_string(),
            "Image format detected as qed, which is not supported"
        );
    }
}

/// A hosted sparse extent header with its descriptor in sector 1.
fn sparse_vmdk(capacity: u64, gd_offset: u64, descriptor: &str) -> Vec<u8> {
    let mut image = vec![0u8; 64 * 1024];
    image[..4].copy_from_slice(b"KDMV");
    put_le32(&mut image, 4, 3);
    put_le64(&mut image, 12, capacity);
    put_le64(&mut image, 20, 128);
    put_le64(&mut image, 28, 1);
    put_le64(&mut image, 36, 20);
    put_le64(&mut image, 56, gd_offset);
    image[512..512 + descriptor.len()].copy_from_slice(descriptor.as_bytes());
    image
}

fn descriptor(create_type: &str, extent: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
         createType=\"{create_type}\"\n\n# Extent description\n{extent}\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n"
    )
}

#[test]
fn a_sparse_vmdk_with_zero_capacity_is_refused() {
    // qemu would follow the descriptor's extents instead of reading this file.
    let image = sparse_vmdk(
        0,
        21,
        &descriptor("monolithicSparse", "RW 2048 SPARSE \"disk.vmdk\""),
    );
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, &image),
        DiskFormat::Vmdk,
        "zero capacity",
    );
}

#[test]
fn a_sparse_vmdk_whose_embedded_extent_is_flat_is_refused() {
    let image = sparse_vmdk(
        2048,
        21,
        &descriptor("monolithicSparse", "RW 2048 FLAT \"/etc/passwd\" 0"),
    );
    let result = inspect_all(DiskFormat::Vmdk, &image);
    assert_unsafe(result.clone(), DiskFormat::Vmdk, "FLAT extent");
    assert_eq!(
        result.unwrap_err().to_string(),
        "VMDK image has a FLAT extent; only a single embedded SPARSE extent is allowed"
    );
    assert_eq!(refused_after(DiskFormat::Vmdk, &image), Some(65536));
}

#[test]
fn a_vmdk_descriptor_running_past_its_declared_size_is_read_to_the_end() {
    // qemu ignores descriptorSize and reads to the first NUL, so must we.
    let padding = "# padding padding padding padding padding\n".repeat(20);
    let text = format!(
        "{}{padding}RW 2048 FLAT \"/etc/passwd\" 0\n",
        descriptor("monolithicSparse", "RW 2048 SPARSE \"disk.vmdk\"")
    );
    assert!(text.len() > 1024);
    let mut image = sparse_vmdk(2048, 21, &text);
    put_le64(&mut image, 36, 1);
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, &image),
        DiskFormat::Vmdk,
        "FLAT extent",
    );
}

#[test]
fn a_sparse_vmdk_whose_extent_is_a_protocol_url_is_refused() {
    let image = sparse_vmdk(
        2048,
        21,
        &descriptor(
            "monolithicSparse",
            "RW 2048 SPARSE \"nbd:evil.example:10809\"",
        ),
    );
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, &image),
        DiskFormat::Vmdk,
        "points at another file",
    );
}

/// A stream-optimized VMDK whose real header is the footer at the end of the stream.
fn stream_optimized_with_footer(footer_capacity: u64, footer_gd: u64) -> Vec<u8> {
    let mut image = sparse_vmdk(
        2048,
        u64::MAX,
        &descriptor("streamOptimized", "RW 2048 SPARSE \"disk.vmdk\""),
    );
    let mut marker = vec![0u8; 512];
    put_le32(&mut marker, 12, 3);
    let mut footer = image[..512].to_vec();
    put_le64(&mut footer, 12, footer_capacity);
    put_le64(&mut footer, 56, footer_gd);
    image.extend_from_slice(&marker);
    image.extend_from_slice(&footer);
    image.extend_from_slice(&[0u8; 512]);
    image
}

#[test]
fn a_stream_optimized_vmdk_is_sized_by_its_footer() {
    assert_eq!(
        inspect_all(DiskFormat::Vmdk, &stream_optimized_with_footer(4096, 150)),
        accepted(DiskFormat::Vmdk, 4096 * 512)
    );
}

#[test]
fn a_stream_optimized_vmdk_whose_footer_defers_again_is_refused() {
    assert_unsafe(
        inspect_all(
            DiskFormat::Vmdk,
            &stream_optimized_with_footer(4096, u64::MAX),
        ),
        DiskFormat::Vmdk,
        "footer",
    );
}

#[test]
fn a_stream_optimized_vmdk_without_its_footer_is_refused() {
    let mut image = stream_optimized_with_footer(4096, 150);
    image.truncate(image.len() - 1536);
    image.extend_from_slice(&[0u8; 1536]);
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, &image),
        DiskFormat::Vmdk,
        "footer marker",
    );
}

#[test]
fn a_bare_vmdk_descriptor_is_refused_even_with_a_sparse_extent() {
    let text = descriptor("monolithicSparse", "RW 2048 SPARSE \"other.vmdk\"");
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, text.as_bytes()),
        DiskFormat::Vmdk,
        "bare descriptor file",
    );
}

#[test]
fn a_truncated_sparse_vmdk_header_is_invalid_as_vmdk_and_a_mismatch_as_raw() {
    let image = sparse_vmdk(
        2048,
        21,
        &descriptor("monolithicSparse", "RW 2048 SPARSE \"d.vmdk\""),
    );
    assert_invalid(
        inspect_all(DiskFormat::Vmdk, &image[..40]),
        DiskFormat::Vmdk,
    );
    assert_invalid(
        inspect_all(DiskFormat::Vmdk, &image[..600]),
        DiskFormat::Vmdk,
    );
    assert_eq!(
        inspect_all(DiskFormat::Raw, &image[..40]),
        mismatch(DiskFormat::Raw, DiskFormat::Vmdk)
    );
}

#[test]
fn plain_text_is_raw_and_its_capture_stays_bounded() {
    let line = "just some text, no descriptor here = not one\n";
    let text = line.repeat(3 * MIB / line.len());
    assert_eq!(
        inspect_all(DiskFormat::Raw, text.as_bytes()),
        accepted(DiskFormat::Raw, text.len() as u64)
    );
    let mut inspector = Inspector::new(DiskFormat::Raw);
    for piece in text.as_bytes().chunks(4096) {
        inspector.feed(piece).unwrap();
        assert!(inspector.captured_bytes() <= MAX_CAPTURE_BYTES);
    }
}

/// Recomputes a VHD footer's checksum after it was patched.
fn fix_vhd_checksum(footer: &mut [u8]) {
    put_be32(footer, 64, 0);
    let sum = footer
        .iter()
        .fold(0u32, |a, &b| a.wrapping_add(u32::from(b)));
    put_be32(footer, 64, !sum);
}

#[test]
fn a_differencing_vhd_is_refused() {
    let images = Images::new();
    let mut image = images.create("disk.vhd", "vpc", &[], "1M");
    put_be32(&mut image, 60, 4);
    fix_vhd_checksum(&mut image[..512]);
    assert_unsafe(
        inspect_all(DiskFormat::Vhd, &image),
        DiskFormat::Vhd,
        "differencing disk",
    );
}

#[test]
fn a_vhd_footer_with_a_bad_checksum_is_invalid() {
    let images = Images::new();
    let mut image = images.create("disk.vhd", "vpc", &[], "1M");
    image[100] ^= 0xff;
    assert_invalid(inspect_all(DiskFormat::Vhd, &image), DiskFormat::Vhd);
}

#[test]
fn a_trailing_footer_on_a_qcow2_makes_two_formats() {
    let images = Images::new();
    let mut image = images.create("disk.qcow2", "qcow2", &[], "1M");
    let vhd = images.create("disk.vhd", "vpc", &["-o", "subformat=fixed"], "1M");
    image.extend_from_slice(&vhd[vhd.len() - 512..]);
    assert_eq!(
        inspect_all(DiskFormat::Qcow2, &image),
        Err(FormatError::MultipleFormats {
            formats: vec!["qcow2", "vhd"]
        })
    );
    // Declared as a VHD, the qcow2 header refuses it before the footer ever arrives.
    assert_eq!(
        inspect_all(DiskFormat::Vhd, &image),
        mismatch(DiskFormat::Vhd, DiskFormat::Qcow2)
    );
}

#[test]
fn a_vdi_with_a_parent_is_refused() {
    let images = Images::new();
    let mut image = images.create("disk.vdi", "vdi", &[], "1M");
    image[0x1b8..0x1c8].copy_from_slice(&[0x42; 16]);
    assert_unsafe(
        inspect_all(DiskFormat::Vdi, &image),
        DiskFormat::Vdi,
        "parent image",
    );
}

#[test]
fn a_vdi_with_a_foreign_sector_size_is_invalid() {
    let images = Images::new();
    let mut image = images.create("disk.vdi", "vdi", &[], "1M");
    put_le32(&mut image, 0x168, 4096);
    assert_invalid(inspect_all(DiskFormat::Vdi, &image), DiskFormat::Vdi);
}

/// The metadata region's file offset and the offset within it of an item, in a VHDX.
fn vhdx_item(image: &[u8], item: [u8; 16]) -> (usize, usize) {
    let table = &image[192 * 1024..256 * 1024];
    let metadata_guid = [
        0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88,
        0x6e,
    ];
    let count = le32(table, 8) as usize;
    let entry = (0..count)
        .map(|i| &table[16 + i * 32..48 + i * 32])
        .find(|e| e[..16] == metadata_guid)
        .expect("metadata region entry");
    let metadata = le64(entry, 16) as usize;
    let entries = &image[metadata..metadata + 64 * 1024];
    let count = u16::from_le_bytes([entries[10], entries[11]]) as usize;
    let found = (0..count)
        .map(|i| &entries[32 + i * 32..64 + i * 32])
        .find(|e| e[..16] == item)
        .expect("metadata item");
    (metadata, le32(found, 16) as usize)
}

const FILE_PARAMETERS: [u8; 16] = [
    0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b,
];

#[test]
fn a_vhdx_with_a_parent_is_refused() {
    let images = Images::new();
    let mut image = images.create("disk.vhdx", "vhdx", &[], "1M");
    let (metadata, item) = vhdx_item(&image, FILE_PARAMETERS);
    image[metadata + item + 4] |= 2;
    assert_unsafe(
        inspect_all(DiskFormat::Vhdx, &image),
        DiskFormat::Vhdx,
        "differencing disk",
    );
}

#[test]
fn a_vhdx_whose_metadata_is_too_far_into_the_file_is_invalid() {
    let images = Images::new();
    let mut image = images.create("disk.vhdx", "vhdx", &[], "1M");
    let table = 192 * 1024;
    let count = le32(&image, table + 8) as usize;
    for i in 0..count {
        let entry = table + 16 + i * 32;
        if image[entry] == 0x06 {
            put_le64(&mut image, entry + 16, 512 * MIB as u64);
        }
    }
    assert_invalid(inspect_all(DiskFormat::Vhdx, &image), DiskFormat::Vhdx);
    // Declared as something else it is still recognisably a VHDX.
    assert_eq!(
        inspect_all(DiskFormat::Raw, &image),
        mismatch(DiskFormat::Raw, DiskFormat::Vhdx)
    );
}

#[test]
fn a_truncated_vhdx_is_invalid() {
    let images = Images::new();
    let image = images.create("disk.vhdx", "vhdx", &[], "1M");
    for len in [4, 100_000, 300_000, 3 * MIB + 100] {
        assert_invalid(
            inspect(DiskFormat::Vhdx, &image[..len], 65536),
            DiskFormat::Vhdx,
        );
    }
}

/// A raw disk with a classic MBR partition table.
fn mbr_disk() -> Vec<u8> {
    let mut disk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 | 1).collect();
    disk[..446].fill(0x90);
    disk[446..512].fill(0);
    disk[446] = 0x80;
    disk[450] = 0x83;
    put_le32(&mut disk, 454, 2048);
    put_le32(&mut disk, 458, 4096);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    disk
}

#[test]
fn a_raw_disk_with_a_partition_table_is_raw() {
    let disk = mbr_disk();
    assert_eq!(
        inspect_all(DiskFormat::Raw, &disk),
        accepted(DiskFormat::Raw, disk.len() as u64)
    );
}

#[test]
fn a_raw_gpt_disk_is_raw() {
    let mut disk = mbr_disk();
    disk[450] = 0xee;
    disk[512..520].copy_from_slice(b"EFI PART");
    assert_eq!(
        inspect_all(DiskFormat::Raw, &disk),
        accepted(DiskFormat::Raw, disk.len() as u64)
    );
    assert_eq!(
        inspect_all(DiskFormat::Qcow2, &disk),
        mismatch(DiskFormat::Qcow2, DiskFormat::Raw)
    );
}

#[test]
fn a_qcow2_carrying_a_partition_table_signature_is_refused() {
    let mut image = qcow2(3, 0);
    image[510] = 0x55;
    image[511] = 0xaa;
    assert_eq!(
        inspect_all(DiskFormat::Qcow2, &image),
        Err(FormatError::MultipleFormats {
            formats: vec!["qcow2", "gpt/mbr"]
        })
    );
}

#[test]
fn a_refused_upload_stays_refused() {
    let image = qcow2(3, 1 << 2);
    let mut inspector = Inspector::new(DiskFormat::Qcow2);
    let first = inspector.feed(&image).unwrap_err();
    assert_eq!(inspector.feed(b"more").unwrap_err(), first);
    assert_eq!(inspector.finish(), Err(first));
}

#[test]
fn unchecked_formats_accept_anything() {
    let image = qcow2(3, 1 << 2);
    for declared in [DiskFormat::Aki, DiskFormat::Ari, DiskFormat::Ploop] {
        assert_eq!(
            inspect_all(declared, &image),
            Ok(Inspection {
                detected: DiskFormat::Raw,
                virtual_size: None
            })
        );
    }
}
