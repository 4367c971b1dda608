//! Streaming disk-image inspection, Glance's `format_inspector` for uploads.
//!
//! An image's `disk_format` is only a claim. Nova and qemu act on it, and the 2024 advisories
//! (OSSA-2024-001/002, CVE-2024-32498) showed what a false one can do: a "raw" upload that is
//! really a qcow2 with a backing file, or a VMDK whose extent is `/etc/passwd`, makes the
//! compute host read its own files into a guest. So every upload is inspected as it streams
//! in, and refused (HTTP 415) unless its content is what it claims and is self-contained.
//!
//! ```
//! use glance_domain::DiskFormat;
//! use glance_format::{FormatError, Inspector};
//!
//! let mut inspector = Inspector::new(DiskFormat::Raw);
//! // The first chunk of a qcow2 is enough to know this "raw" upload will be refused.
//! let mut chunk = vec![0u8; 64 * 1024];
//! chunk[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
//! let refused = inspector.feed(&chunk).unwrap_err();
//! assert!(matches!(refused, FormatError::Mismatch { .. }));
//! assert_eq!(refused.to_string(), "Image format detected as qcow2 but disk_format is raw");
//! ```
//!
//! One module per format, each a probe that captures only the header bytes
//! it needs; [`Inspector`] fans every chunk out to them and applies Glance's
//! `require_image_format_match` rules.

mod capture;
mod error;
mod inspector;
mod iso;
mod partition;
mod probe;
mod qcow2;
mod qed;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

pub use error::FormatError;
pub use inspector::{Inspection, Inspector, MAX_CAPTURE_BYTES};
