//! Real images built by `qemu-img` at test time, fed in many chunkings, compared with what
//! `qemu-img info` says about them.

mod common;

use common::*;
use glance_domain::DiskFormat;
use glance_format::FormatError;

#[test]
fn qcow2_images_from_qemu_img_are_accepted_with_their_virtual_size() {
    let images = Images::new();
    for (name, options) in [
        ("v3.qcow2", &[][..]),
        ("v2.qcow2", &["-o", "compat=0.10"][..]),
        ("big-clusters.qcow2", &["-o", "cluster_size=2M"][..]),
        ("small-clusters.qcow2", &["-o", "cluster_size=512"][..]),
        ("extended-l2.qcow2", &["-o", "extended_l2=on"][..]),
        ("zstd.qcow2", &["-o", "compression_type=zstd"][..]),
        ("lazy.qcow2", &["-o", "lazy_refcounts=on"][..]),
    ] {
        let data = images.create(name, "qcow2", options, "3M");
        let size = images.virtual_size(name, "qcow2");
        assert_eq!(size, 3 << 20);
        assert_eq!(
            inspect_all(DiskFormat::Qcow2, &data),
            accepted(DiskFormat::Qcow2, size),
            "{name}"
        );
    }
}

#[test]
fn a_qcow2_with_data_is_accepted_with_its_virtual_size() {
    let images = Images::new();
    images.raw("disk.raw", 1 << 20);
    let data = images.convert("disk.raw", "disk.qcow2", "qcow2", &[]);
    assert_eq!(
        inspect_all(DiskFormat::Qcow2, &data),
        accepted(
            DiskFormat::Qcow2,
            images.virtual_size("disk.qcow2", "qcow2")
        )
    );
}

#[test]
fn a_qcow2_with_a_backing_file_is_refused() {
    let images = Images::new();
    images.create("base.qcow2", "qcow2", &[], "1M");
    let data = images.create(
        "child.qcow2",
        "qcow2",
        &["-b", "base.qcow2", "-F", "qcow2"],
        "1M",
    );
    let result = inspect_all(DiskFormat::Qcow2, &data);
    assert_unsafe(result.clone(), DiskFormat::Qcow2, "backing file");
    assert_eq!(
        result.unwrap_err().to_string(),
        "QCOW2 image has a backing file, which is not allowed"
    );
    // The header alone decides it: the upload stops at the first chunk.
    assert_eq!(refused_after(DiskFormat::Qcow2, &data), Some(65536));
}

#[test]
fn a_qcow2_with_an_external_data_file_is_refused() {
    let images = Images::new();
    let data = images.create("meta.qcow2", "qcow2", &["-o", "data_file=meta.data"], "1M");
    assert_unsafe(
        inspect_all(DiskFormat::Qcow2, &data),
        DiskFormat::Qcow2,
        "external data file",
    );
}

#[test]
fn a_qcow2_uploaded_as_raw_is_a_mismatch_caught_at_the_first_chunk() {
    let images = Images::new();
    let data = images.create("disk.qcow2", "qcow2", &[], "1M");
    assert_eq!(
        inspect_all(DiskFormat::Raw, &data),
        mismatch(DiskFormat::Raw, DiskFormat::Qcow2)
    );
    assert_eq!(
        inspect_all(DiskFormat::Raw, &data).unwrap_err().to_string(),
        "Image format detected as qcow2 but disk_format is raw"
    );
    assert_eq!(refused_after(DiskFormat::Raw, &data), Some(65536));
    // ami follows the raw rule.
    assert_eq!(
        inspect_all(DiskFormat::Ami, &data),
        mismatch(DiskFormat::Ami, DiskFormat::Qcow2)
    );
}

#[test]
fn raw_data_uploaded_as_qcow2_is_a_mismatch_decided_before_the_end() {
    let images = Images::new();
    let data = images.raw("disk.raw", 4 << 20);
    assert_eq!(
        inspect_all(DiskFormat::Qcow2, &data),
        mismatch(DiskFormat::Qcow2, DiskFormat::Raw)
    );
    let refused = refused_after(DiskFormat::Qcow2, &data).expect("refused while streaming");
    assert!(refused <= 128 * 1024, "refused only after {refused} bytes");
}

#[test]
fn raw_data_uploaded_as_raw_is_accepted_with_its_length() {
    let images = Images::new();
    let data = images.raw("disk.raw", 300_000);
    assert_eq!(
        inspect_all(DiskFormat::Raw, &data),
        accepted(DiskFormat::Raw, 300_000)
    );
    assert_eq!(
        inspect_all(DiskFormat::Ami, &data),
        accepted(DiskFormat::Raw, 300_000)
    );
}

#[test]
fn a_truncated_qcow2_header_is_invalid() {
    let images = Images::new();
    let data = images.create("disk.qcow2", "qcow2", &[], "1M");
    for len in [2, 50, 103] {
        assert_invalid(
            inspect_all(DiskFormat::Qcow2, &data[..len]),
            DiskFormat::Qcow2,
        );
    }
}

#[test]
fn monolithic_sparse_and_stream_optimized_vmdks_are_accepted() {
    let images = Images::new();
    images.raw("disk.raw", 3 << 20);
    let created = [
        (
            "sparse.vmdk",
            images.create("sparse.vmdk", "vmdk", &[], "5M"),
        ),
        (
            "stream.vmdk",
            images.create(
                "stream.vmdk",
                "vmdk",
                &["-o", "subformat=streamOptimized"],
                "5M",
            ),
        ),
        (
            "stream-data.vmdk",
            images.convert(
                "disk.raw",
                "stream-data.vmdk",
                "vmdk",
                &["-o", "subformat=streamOptimized"],
            ),
        ),
        (
            "sparse-data.vmdk",
            images.convert("disk.raw", "sparse-data.vmdk", "vmdk", &[]),
        ),
    ];
    for (name, data) in created {
        assert_eq!(
            inspect_all(DiskFormat::Vmdk, &data),
            accepted(DiskFormat::Vmdk, images.virtual_size(name, "vmdk")),
            "{name}"
        );
    }
}

#[test]
fn a_monolithic_flat_vmdk_descriptor_is_refused() {
    let images = Images::new();
    let descriptor = images.create(
        "flat.vmdk",
        "vmdk",
        &["-o", "subformat=monolithicFlat"],
        "1M",
    );
    assert!(descriptor.starts_with(b"# Disk DescriptorFile"));
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, &descriptor),
        DiskFormat::Vmdk,
        "FLAT extent",
    );
    // As "raw" it is still recognisably a VMDK descriptor, not raw data.
    assert_eq!(
        inspect_all(DiskFormat::Raw, &descriptor),
        mismatch(DiskFormat::Raw, DiskFormat::Vmdk)
    );
}

#[test]
fn a_vmdk_descriptor_whose_extent_is_a_host_file_is_refused() {
    let images = Images::new();
    let descriptor = images.create(
        "flat.vmdk",
        "vmdk",
        &["-o", "subformat=monolithicFlat"],
        "1M",
    );
    let text = String::from_utf8(descriptor).unwrap();
    let evil = text.replace("\"flat-flat.vmdk\"", "\"/etc/passwd\"");
    assert_ne!(text, evil);
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, evil.as_bytes()),
        DiskFormat::Vmdk,
        "FLAT extent",
    );
}

#[test]
fn a_sparse_vmdk_with_a_parent_is_refused() {
    let images = Images::new();
    images.create("base.vmdk", "vmdk", &[], "1M");
    let data = images.create(
        "child.vmdk",
        "vmdk",
        &["-b", "base.vmdk", "-F", "vmdk"],
        "1M",
    );
    assert_unsafe(
        inspect_all(DiskFormat::Vmdk, &data),
        DiskFormat::Vmdk,
        "parent image",
    );
}

#[test]
fn split_and_flat_vmdk_subformats_are_refused() {
    let images = Images::new();
    for subformat in ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"] {
        let name = format!("{subformat}.vmdk");
        let data = images.create(
            &name,
            "vmdk",
            &["-o", &format!("subformat={subformat}")],
            "1M",
        );
        let result = inspect_all(DiskFormat::Vmdk, &data);
        assert!(
            matches!(
                result,
                Err(FormatError::Unsafe {
                    format: DiskFormat::Vmdk,
                    ..
                })
            ),
            "{subformat}: {result:?}"
        );
    }
}

#[test]
fn vhdx_images_are_accepted_with_their_virtual_size() {
    let images = Images::new();
    images.raw("disk.raw", 3 << 20);
    let created = [
        (
            "empty.vhdx",
            images.create("empty.vhdx", "vhdx", &[], "10M"),
        ),
        (
            "data.vhdx",
            images.convert("disk.raw", "data.vhdx", "vhdx", &[]),
        ),
        (
            "blocks.vhdx",
            images.create("blocks.vhdx", "vhdx", &["-o", "block_size=1M"], "7M"),
        ),
    ];
    for (name, data) in created {
        assert_eq!(
            inspect_all(DiskFormat::Vhdx, &data),
            accepted(DiskFormat::Vhdx, images.virtual_size(name, "vhdx")),
            "{name}"
        );
    }
}

#[test]
fn vdi_images_are_accepted_with_their_virtual_size() {
    let images = Images::new();
    for (name, options) in [
        ("dynamic.vdi", &[][..]),
        ("static.vdi", &["-o", "static=on"][..]),
    ] {
        let data = images.create(name, "vdi", options, "3M");
        assert_eq!(
            inspect_all(DiskFormat::Vdi, &data),
            accepted(DiskFormat::Vdi, images.virtual_size(name, "vdi")),
            "{name}"
        );
    }
}

#[test]
fn dynamic_and_fixed_vhds_are_accepted_with_qemus_virtual_size() {
    let images = Images::new();
    images.raw("disk.raw", 1 << 20);
    let created = [
        (
            "dynamic.vhd",
            images.create("dynamic.vhd", "vpc", &[], "5M"),
        ),
        (
            "fixed.vhd",
            images.create("fixed.vhd", "vpc", &["-o", "subformat=fixed"], "5M"),
        ),
        (
            "sized.vhd",
            images.create("sized.vhd", "vpc", &["-o", "force_size=on"], "5M"),
        ),
        (
            "fixed-data.vhd",
            images.convert(
                "disk.raw",
                "fixed-data.vhd",
                "vpc",
                &["-o", "subformat=fixed"],
            ),
        ),
    ];
    for (name, data) in created {
        assert_eq!(
            inspect_all(DiskFormat::Vhd, &data),
            accepted(DiskFormat::Vhd, images.virtual_size(name, "vpc")),
            "{name}"
        );
    }
}

#[test]
fn a_fixed_vhd_uploaded_as_raw_is_a_mismatch() {
    let images = Images::new();
    let data = images.create("fixed.vhd", "vpc", &["-o", "subformat=fixed"], "1M");
    assert_eq!(
        inspect_all(DiskFormat::Raw, &data),
        mismatch(DiskFormat::Raw, DiskFormat::Vhd)
    );
    // Only the footer says so, and it is the last thing to arrive.
    assert_eq!(refused_after(DiskFormat::Raw, &data), None);
}

#[test]
fn every_format_declared_as_another_is_a_mismatch() {
    let images = Images::new();
    let built = [
        (
            DiskFormat::Qcow2,
            images.create("a.qcow2", "qcow2", &[], "1M"),
        ),
        (DiskFormat::Vmdk, images.create("a.vmdk", "vmdk", &[], "1M")),
        (DiskFormat::Vhdx, images.create("a.vhdx", "vhdx", &[], "1M")),
        (DiskFormat::Vdi, images.create("a.vdi", "vdi", &[], "1M")),
        (DiskFormat::Vhd, images.create("a.vhd", "vpc", &[], "1M")),
    ];
    let declarable = [
        DiskFormat::Raw,
        DiskFormat::Qcow2,
        DiskFormat::Vmdk,
        DiskFormat::Vhdx,
        DiskFormat::Vdi,
        DiskFormat::Vhd,
        DiskFormat::Iso,
    ];
    for (actual, data) in &built {
        for declared in declarable.into_iter().filter(|d| d != actual) {
            assert_eq!(
                inspect(declared, data, 4096),
                mismatch(declared, *actual),
                "{actual} declared as {declared}"
            );
        }
    }
}
