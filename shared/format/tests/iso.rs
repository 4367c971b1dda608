//! ISO images built with `genisoimage` at test time, plus the polyglots Glance refuses.

mod common;

use common::*;
use glance_domain::DiskFormat;
use glance_format::FormatError;

/// Builds a small ISO 9660 image holding one file; returns its bytes.
fn build_iso(images: &Images, name: &str) -> Vec<u8> {
    images.raw("payload.bin", 100_000);
    let out = images.path(name);
    run(
        "genisoimage",
        "genisoimage",
        &["-quiet", "-o", out.to_str().unwrap(), "payload.bin"],
        images.dir(),
    );
    images.read(name)
}

/// The size the primary volume descriptor gives, read independently of the inspector.
fn volume_size(iso: &[u8]) -> u64 {
    let pvd = &iso[16 * 2048..17 * 2048];
    assert_eq!(&pvd[..6], b"\x01CD001");
    let blocks = u32::from_le_bytes(pvd[80..84].try_into().unwrap());
    let block_size = u16::from_le_bytes(pvd[128..130].try_into().unwrap());
    u64::from(blocks) * u64::from(block_size)
}

/// Puts an MBR with one bootable partition in the system area, as isohybrid does.
fn make_hybrid(iso: &mut [u8]) {
    let sectors = (iso.len() / 512) as u32;
    let entry = &mut iso[446..462];
    entry[0] = 0x80;
    entry[4] = 0x17;
    entry[8..12].copy_from_slice(&0u32.to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    iso[510] = 0x55;
    iso[511] = 0xaa;
}

#[test]
fn an_iso_is_accepted_with_its_volume_size() {
    let images = Images::new();
    let iso = build_iso(&images, "disk.iso");
    assert_eq!(volume_size(&iso), iso.len() as u64);
    assert_eq!(
        inspect_all(DiskFormat::Iso, &iso),
        accepted(DiskFormat::Iso, volume_size(&iso))
    );
}

#[test]
fn a_hybrid_iso_with_a_partition_table_is_still_an_iso() {
    let images = Images::new();
    let mut iso = build_iso(&images, "disk.iso");
    make_hybrid(&mut iso);
    assert_eq!(
        inspect_all(DiskFormat::Iso, &iso),
        accepted(DiskFormat::Iso, volume_size(&iso))
    );
}

#[test]
fn an_iso_uploaded_as_raw_is_a_mismatch() {
    let images = Images::new();
    let iso = build_iso(&images, "disk.iso");
    assert_eq!(
        inspect_all(DiskFormat::Raw, &iso),
        mismatch(DiskFormat::Raw, DiskFormat::Iso)
    );
}

#[test]
fn an_iso_that_is_also_a_qcow2_is_refused_whatever_it_claims() {
    let images = Images::new();
    let mut iso = build_iso(&images, "disk.iso");
    let qcow2 = images.create("disk.qcow2", "qcow2", &[], "1M");
    // A qcow2 header fits in the ISO's free-form system area.
    iso[..4096].copy_from_slice(&qcow2[..4096]);
    for declared in [DiskFormat::Iso, DiskFormat::Qcow2, DiskFormat::Raw] {
        let result = inspect_all(declared, &iso);
        assert_eq!(
            result,
            Err(FormatError::MultipleFormats {
                formats: vec!["qcow2", "iso"]
            }),
            "declared {declared}"
        );
    }
    assert_eq!(
        inspect_all(DiskFormat::Iso, &iso).unwrap_err().to_string(),
        "Image data matches more than one format (qcow2, iso), which is not allowed"
    );
}

#[test]
fn an_iso_inside_a_fixed_vhd_is_a_vhd() {
    let images = Images::new();
    build_iso(&images, "disk.iso");
    let vhd = images.convert("disk.iso", "disk.vhd", "vpc", &["-o", "subformat=fixed"]);
    assert_eq!(
        inspect_all(DiskFormat::Vhd, &vhd),
        accepted(DiskFormat::Vhd, images.virtual_size("disk.vhd", "vpc"))
    );
    assert_eq!(
        inspect_all(DiskFormat::Iso, &vhd),
        mismatch(DiskFormat::Iso, DiskFormat::Vhd)
    );
}

#[test]
fn a_truncated_iso_is_invalid() {
    let images = Images::new();
    let iso = build_iso(&images, "disk.iso");
    assert_invalid(
        inspect_all(DiskFormat::Iso, &iso[..20_000]),
        DiskFormat::Iso,
    );
    assert_invalid(
        inspect_all(DiskFormat::Iso, &iso[..33_000]),
        DiskFormat::Iso,
    );
}

#[test]
fn raw_data_uploaded_as_iso_is_a_mismatch() {
    let images = Images::new();
    let data = images.raw("disk.raw", 100_000);
    assert_eq!(
        inspect_all(DiskFormat::Iso, &data),
        mismatch(DiskFormat::Iso, DiskFormat::Raw)
    );
}
