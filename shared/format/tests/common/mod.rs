//! Shared helpers: feeding images in many chunkings, and driving the external tools that
//! build real images. A missing tool fails the test with what to install; it never skips.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

use glance_domain::DiskFormat;
use glance_format::{FormatError, Inspection, Inspector, MAX_CAPTURE_BYTES};

/// Chunk sizes every image is fed in; `usize::MAX` means the whole image at once.
pub const CHUNK_SIZES: [usize; 5] = [1, 7, 512, 65536, usize::MAX];

/// Feeds `data` in `chunk`-byte pieces, stopping at the first refusal as an upload would.
pub fn inspect(declared: DiskFormat, data: &[u8], chunk: usize) -> Result<Inspection, FormatError> {
    let mut inspector = Inspector::new(declared);
    for piece in data.chunks(chunk.clamp(1, data.len().max(1))) {
        inspector.feed(piece)?;
        assert!(inspector.captured_bytes() <= MAX_CAPTURE_BYTES);
    }
    inspector.finish()
}

/// Inspects `data` in every chunking, checks they all agree, and returns the common result.
pub fn inspect_all(declared: DiskFormat, data: &[u8]) -> Result<Inspection, FormatError> {
    let whole = inspect(declared, data, usize::MAX);
    for chunk in CHUNK_SIZES {
        assert_eq!(
            inspect(declared, data, chunk),
            whole,
            "feeding {declared} in {chunk}-byte chunks disagrees with feeding it whole"
        );
    }
    whole
}

/// How many bytes were fed before the inspector refused the upload (64 KiB chunks), or
/// `None` if only `finish` refused it.
pub fn refused_after(declared: DiskFormat, data: &[u8]) -> Option<u64> {
    let mut inspector = Inspector::new(declared);
    for piece in data.chunks(65536) {
        if inspector.feed(piece).is_err() {
            return Some(inspector.bytes_seen());
        }
    }
    None
}

pub fn accepted(detected: DiskFormat, virtual_size: u64) -> Result<Inspection, FormatError> {
    Ok(Inspection {
        detected,
        virtual_size: Some(virtual_size),
    })
}

pub fn mismatch(declared: DiskFormat, detected: DiskFormat) -> Result<Inspection, FormatError> {
    Err(FormatError::Mismatch { declared, detected })
}

/// Asserts an `Unsafe` refusal for `format` whose message mentions `words`.
#[track_caller]
pub fn assert_unsafe(result: Result<Inspection, FormatError>, format: DiskFormat, words: &str) {
    match result {
        Err(error @ FormatError::Unsafe { format: f, .. }) if f == format => assert!(
            error.to_string().contains(words),
            "expected the refusal to mention {words:?}, got: {error}"
        ),
        other => panic!("expected an unsafe {format} refusal mentioning {words:?}, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_invalid(result: Result<Inspection, FormatError>, format: DiskFormat) {
    match result {
        Err(FormatError::Invalid { format: f, .. }) if f == format => {}
        other => panic!("expected an invalid {format} refusal, got {other:?}"),
    }
}

/// Runs an external tool, failing the test with an install hint if it is missing.
#[track_caller]
pub fn run(tool: &str, package: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let output = match Command::new(tool).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{tool}` is not installed but this test needs it to build real images: \
             install it with `apt-get install -y {package}`"
        ),
        Err(e) => panic!("could not run {tool}: {e}"),
    };
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A scratch directory for building images with qemu-img.
pub struct Images {
    dir: tempfile::TempDir,
}

impl Images {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    #[track_caller]
    pub fn qemu_img(&self, args: &[&str]) {
        run("qemu-img", "qemu-utils", args, self.dir.path());
    }

    /// `qemu-img create -f <format> [options] <name> <size>`, returning the file's bytes.
    #[track_caller]
    pub fn create(&self, name: &str, format: &str, options: &[&str], size: &str) -> Vec<u8> {
        let mut args = vec!["create", "-q", "-f", format];
        args.extend_from_slice(options);
        args.extend_from_slice(&[name, size]);
        self.qemu_img(&args);
        self.read(name)
    }

    /// `qemu-img convert -O <format> [options] <source> <name>`, returning the file's bytes.
    #[track_caller]
    pub fn convert(&self, source: &str, name: &str, format: &str, options: &[&str]) -> Vec<u8> {
        let mut args = vec!["convert", "-O", format];
        args.extend_from_slice(options);
        args.extend_from_slice(&[source, name]);
        self.qemu_img(&args);
        self.read(name)
    }

    /// The virtual size `qemu-img info` reports when told the format.
    #[track_caller]
    pub fn virtual_size(&self, name: &str, format: &str) -> u64 {
        let json = run(
            "qemu-img",
            "qemu-utils",
            &["info", "--output=json", "-f", format, name],
            self.dir.path(),
        );
        let info: serde_json::Value = serde_json::from_slice(&json).expect("qemu-img json");
        info["virtual-size"].as_u64().expect("virtual-size")
    }

    pub fn write(&self, name: &str, data: &[u8]) {
        std::fs::write(self.path(name), data).expect("write image");
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read image")
    }

    /// A raw file of `len` bytes that no format claims: a repeating non-zero pattern.
    pub fn raw(&self, name: &str, len: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
        self.write(name, &data);
        data
    }
}
