use crate::wire_enum;

/// `disk_format` values Glance accepts by default (`[image_format] disk_formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFormat {
    Ami,
    Ari,
    Aki,
    Vhd,
    Vhdx,
    Vmdk,
    Raw,
    Qcow2,
    Vdi,
    Iso,
    Ploop,
}

wire_enum!(DiskFormat, "disk_format", {
    Ami => "ami",
    Ari => "ari",
    Aki => "aki",
    Vhd => "vhd",
    Vhdx => "vhdx",
    Vmdk => "vmdk",
    Raw => "raw",
    Qcow2 => "qcow2",
    Vdi => "vdi",
    Iso => "iso",
    Ploop => "ploop",
});

/// `container_format` values Glance accepts by default (`[image_format] container_formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerFormat {
    Ami,
    Ari,
    Aki,
    Bare,
    Ovf,
    Ova,
    Docker,
    Compressed,
}

wire_enum!(ContainerFormat, "container_format", {
    Ami => "ami",
    Ari => "ari",
    Aki => "aki",
    Bare => "bare",
    Ovf => "ovf",
    Ova => "ova",
    Docker => "docker",
    Compressed => "compressed",
});
