//! Options of the import plugins (Glance's `glance-image-import.conf`), applied by the
//! import workers to glance-direct and web-download imports.

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "image_import_opts",
        "image_import_plugins",
        None,
        "Plugins run in order on imported data before it is stored: image_decompression, image_conversion, inject_image_metadata, no_op (list; Glance's ['a', 'b'] form works too)",
    ),
    opt(
        "image_conversion",
        "output_format",
        Some("raw"),
        "Disk format image_conversion converts imports to with qemu-img: raw, qcow2 or vmdk",
    ),
    opt(
        "inject_metadata_properties",
        "inject",
        None,
        "Properties inject_image_metadata sets on imported images, as k1:v1,k2:v2",
    ),
    opt(
        "inject_metadata_properties",
        "ignore_user_roles",
        Some("admin"),
        "Roles whose imports inject_image_metadata leaves alone (list)",
    ),
    opt(
        "glance_download_properties",
        "extra_properties",
        Some("hw_,trait:,os_distro,os_secure_boot,os_type"),
        "Prefixes of the properties glance-download copies from the other region's image (list; os_glance_* never)",
    ),
];
