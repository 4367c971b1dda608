//! `image_conversion`: `qemu-img convert` of the imported data to
//! `[image_conversion] output_format`, with Glance's checks around it. The format inspector
//! looks at the input before qemu-img does (a claimed format that is not the content, a
//! backing file, an extent outside the image: refused); `qemu-img info` must agree about
//! the format and find no backing or data file; the output is inspected again. Each refusal
//! carries Glance's message, with the inspector's reason after it.

use std::io::Read;
use std::path::{Path, PathBuf};

use glance_domain::{ContainerFormat, DiskFormat};
use glance_format::{FormatError, Inspection, Inspector};

use super::{qemu, Plugin, PluginError, Step};

/// Glance's `[image_format] vmdk_allowed_types` default, which the inspector enforces too.
const VMDK_ALLOWED_TYPES: [&str; 2] = ["streamOptimized", "monolithicSparse"];

fn refused(reason: impl Into<String>) -> PluginError {
    PluginError::refused(Plugin::Conversion, reason)
}

/// Converts the current data; the converted file, or `None` when nothing needed converting
/// (already the output format, or an ISO).
pub(super) async fn run(step: &mut Step<'_>) -> Result<Option<PathBuf>, PluginError> {
    let target = step.config.output_format;
    let source = step
        .image
        .disk_format
        .ok_or_else(|| refused("Image has no disk_format to convert from"))?;
    match inspect(&step.data, source).await? {
        Ok(inspection) if inspection.detected == source => {}
        Ok(_) => return Err(refused("Image format mismatch")),
        Err(FormatError::Mismatch {
            detected: DiskFormat::Iso,
            ..
        }) => {
            tracing::error!(claimed = %source, "image claimed to be another format is an ISO");
            return Err(refused("Image has disallowed configuration"));
        }
        Err(e @ FormatError::Mismatch { .. }) => {
            return Err(refused(format!("Image format mismatch ({e})")))
        }
        Err(e @ FormatError::Invalid { .. }) => {
            return Err(refused(format!("Image format detection failed ({e})")))
        }
        Err(e) => return Err(refused(format!("Image has disallowed configuration ({e})"))),
    }
    if source == DiskFormat::Iso {
        tracing::debug!(image_id = %step.image.id, "not converting an ISO");
        return Ok(None);
    }

    let info = qemu::info(source, &step.data).await.map_err(refused)?;
    check_info(&info, source)?;
    if source == target {
        tracing::debug!(image_id = %step.image.id, "already in the output format");
        return Ok(None);
    }
    let virtual_size = info["virtual-size"].as_u64().unwrap_or(0);
    if target == DiskFormat::Raw && virtual_size > step.cap {
        return Err(refused(format!(
            "Image exceeds the size cap of {} bytes once converted to raw ({virtual_size} bytes)",
            step.cap
        )));
    }

    let output = step.work_file(Plugin::Conversion);
    if let Err(why) = qemu::convert(source, target, &step.data, &output).await {
        let _ = tokio::fs::remove_file(&output).await;
        return Err(refused(why));
    }
    let converted = inspect(&output, target).await;
    let accepted = matches!(&converted, Ok(Ok(inspection)) if inspection.detected == target);
    if !accepted {
        let _ = tokio::fs::remove_file(&output).await;
        tracing::error!(?converted, %target, "image detected as another format after conversion");
        return Err(refused("Converted image in unexpected format"));
    }
    step.changes.disk_format = Some(target);
    step.changes.container_format = Some(ContainerFormat::Bare);
    tracing::info!(image_id = %step.image.id, from = %source, to = %target, "image converted");
    Ok(Some(output))
}

/// Glance's checks of `qemu-img info` on the input.
fn check_info(info: &serde_json::Value, source: DiskFormat) -> Result<(), PluginError> {
    let reported = info["format"].as_str().unwrap_or("unknown");
    if reported != source.as_str() {
        tracing::error!(claimed = %source, reported, "qemu-img disagrees about the format");
        return Err(refused("Image metadata disagrees about format"));
    }
    if info.get("backing-filename").is_some() {
        tracing::warn!("refusing to process a QCOW image with a backing file");
        return Err(refused("QCOW images with backing files are not allowed"));
    }
    let specific = &info["format-specific"]["data"];
    if specific.get("data-file").is_some_and(|f| !f.is_null()) {
        return Err(refused("QCOW images with data-file set are not allowed"));
    }
    if source == DiskFormat::Vmdk {
        match specific["create-type"].as_str() {
            None => return Err(refused("Unable to determine VMDK create-type")),
            Some(t) if !VMDK_ALLOWED_TYPES.contains(&t) => {
                tracing::warn!(
                    create_type = t,
                    "refusing a VMDK of a create-type not allowed"
                );
                return Err(refused("Invalid VMDK create-type specified"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The format inspector's verdict on a whole file, read on a blocking thread. The outer
/// error is a failure to read it.
async fn inspect(
    path: &Path,
    declared: DiskFormat,
) -> Result<Result<Inspection, FormatError>, PluginError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut inspector = Inspector::new(declared);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if let Err(e) = inspector.feed(&buf[..n]) {
                return Ok(Err(e));
            }
        }
        Ok(inspector.finish())
    })
    .await
    .expect("inspection thread panicked")
    .map_err(PluginError::io(Plugin::Conversion))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qemu_img_info_must_agree_and_show_no_external_files() {
        let ok = json!({"format": "qcow2", "virtual-size": 1048576,
            "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}});
        assert!(check_info(&ok, DiskFormat::Qcow2).is_ok());
        let other = json!({"format": "raw"});
        assert!(check_info(&other, DiskFormat::Qcow2)
            .unwrap_err()
            .to_string()
            .contains("Image metadata disagrees about format"));
        let backed = json!({"format": "qcow2", "backing-filename": "base.img"});
        assert!(check_info(&backed, DiskFormat::Qcow2)
            .unwrap_err()
            .to_string()
            .contains("QCOW images with backing files are not allowed"));
        let data_file = json!({"format": "qcow2",
            "format-specific": {"data": {"data-file": "/etc/shadow"}}});
        assert!(check_info(&data_file, DiskFormat::Qcow2)
            .unwrap_err()
            .to_string()
            .contains("data-file"));
        let vmfs = json!({"format": "vmdk", "format-specific": {"data": {"create-type": "vmfs"}}});
        assert!(check_info(&vmfs, DiskFormat::Vmdk)
            .unwrap_err()
            .to_string()
            .contains("Invalid VMDK create-type specified"));
    }
}
