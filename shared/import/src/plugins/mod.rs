//! Glance's import plugins (`[image_import_opts] image_import_plugins`): steps the import
//! worker runs, in the configured order, on the data of a glance-direct or web-download
//! import after it is in the staging area and before it goes to the stores. As in Glance
//! they are skipped for copy-image, whose data was imported already.
//!
//! Each plugin reads the current data file and may write a new one, and may change the
//! image (its formats, its properties). Nothing is saved while the chain runs: the new
//! file is a work file next to the staged data (`<staging>/.incoming/<id>.plugin-*`) and
//! the changes are applied by the same compare-and-set save that records the stored data.
//! So a worker that dies mid-chain leaves the staged original and the image as they were,
//! and the import that the broker hands to another worker simply runs the chain again.
//! (Glance replaces the staged file in place; it has no redelivery to survive.)

mod conversion;
mod decompression;
mod inject;
mod lha;
mod qemu;
mod zip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glance_config::RawConfig;
use glance_domain::{ContainerFormat, DiskFormat, Image, RequestContext};
use glance_store::{glance_list, FilesystemStore};

/// One of Glance's plugins, by its entry-point name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Conversion,
    Decompression,
    InjectMetadata,
    NoOp,
}

impl Plugin {
    pub const NAMES: [&'static str; 4] = [
        "image_conversion",
        "image_decompression",
        "inject_image_metadata",
        "no_op",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Plugin::Conversion => "image_conversion",
            Plugin::Decompression => "image_decompression",
            Plugin::InjectMetadata => "inject_image_metadata",
            Plugin::NoOp => "no_op",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "image_conversion" => Some(Plugin::Conversion),
            "image_decompression" => Some(Plugin::Decompression),
            "inject_image_metadata" => Some(Plugin::InjectMetadata),
            "no_op" => Some(Plugin::NoOp),
            _ => None,
        }
    }
}

/// The plugin chain and the options of its plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    /// `[image_import_opts] image_import_plugins`, in order.
    pub chain: Vec<Plugin>,
    /// `[image_conversion] output_format`.
    pub output_format: DiskFormat,
    /// `[inject_metadata_properties] inject`.
    pub inject: BTreeMap<String, String>,
    /// `[inject_metadata_properties] ignore_user_roles`.
    pub ignore_user_roles: Vec<String>,
}

impl PluginsConfig {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, String> {
        let r = raw.reader();
        let mut chain = Vec::new();
        for name in glance_list(raw, "image_import_opts", "image_import_plugins") {
            let plugin = Plugin::from_name(&name).ok_or_else(|| {
                r.invalid(
                    "image_import_opts",
                    "image_import_plugins",
                    &format!(
                        "unknown import plugin {name} (known: {})",
                        Plugin::NAMES.join(", ")
                    ),
                )
                .to_string()
            })?;
            chain.push(plugin);
        }
        let output = r
            .opt_string("image_conversion", "output_format")
            .unwrap_or_else(|| "raw".into());
        let output_format = match output.as_str() {
            "raw" => DiskFormat::Raw,
            "qcow2" => DiskFormat::Qcow2,
            "vmdk" => DiskFormat::Vmdk,
            _ => {
                return Err(r
                    .invalid(
                        "image_conversion",
                        "output_format",
                        "choose raw, qcow2 or vmdk",
                    )
                    .to_string())
            }
        };
        let mut inject = BTreeMap::new();
        for item in r.list("inject_metadata_properties", "inject") {
            let Some((key, value)) = item.split_once(':') else {
                return Err(r
                    .invalid(
                        "inject_metadata_properties",
                        "inject",
                        &format!("{item} is not key:value"),
                    )
                    .to_string());
            };
            let key = key.trim();
            if key.is_empty() || key.len() > 255 {
                return Err(r
                    .invalid(
                        "inject_metadata_properties",
                        "inject",
                        "keys are 1 to 255 characters",
                    )
                    .to_string());
            }
            inject.insert(key.to_owned(), value.trim().to_owned());
        }
        Ok(Self {
            chain,
            output_format,
            inject,
            ignore_user_roles: glance_list(raw, "inject_metadata_properties", "ignore_user_roles"),
        })
    }
}

/// Why the chain stopped; the message becomes the task's.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The data or the image is not acceptable (Glance's `RuntimeError`s).
    #[error("{plugin}: {reason}")]
    Refused {
        plugin: &'static str,
        reason: String,
    },
    #[error("{1}: {0}")]
    Io(std::io::Error, &'static str),
}

impl PluginError {
    fn refused(plugin: Plugin, reason: impl Into<String>) -> Self {
        PluginError::Refused {
            plugin: plugin.name(),
            reason: reason.into(),
        }
    }

    fn io(plugin: Plugin) -> impl FnOnce(std::io::Error) -> Self {
        move |e| PluginError::Io(e, plugin.name())
    }
}

/// What the chain leaves for the stores.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The last plugin's output, if any changed the data (else the staged data is stored).
    pub data: Option<PathBuf>,
    /// What the image becomes, saved with the first store's location.
    pub changes: ImageChanges,
}

/// Changes the plugins make to the image record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageChanges {
    pub disk_format: Option<DiskFormat>,
    pub container_format: Option<ContainerFormat>,
    pub properties: BTreeMap<String, String>,
}

impl ImageChanges {
    pub fn apply(&self, image: &mut Image) {
        if let Some(format) = self.disk_format {
            image.disk_format = Some(format);
        }
        if let Some(format) = self.container_format {
            image.container_format = Some(format);
        }
        for (key, value) in &self.properties {
            image.properties.insert(key.clone(), value.clone());
        }
    }
}

/// What one plugin works on.
struct Step<'a> {
    config: &'a PluginsConfig,
    /// The image as the plugins so far left it (not saved).
    image: Image,
    caller: &'a RequestContext,
    /// The current data.
    data: PathBuf,
    /// The most data any step may write (`image_size_cap`).
    cap: u64,
    work_dir: PathBuf,
    changes: ImageChanges,
}

impl Step<'_> {
    /// A fresh work file for `plugin`'s output, named so the upload sweep knows its image.
    fn work_file(&self, plugin: Plugin) -> PathBuf {
        self.work_dir.join(format!(
            "{}.plugin-{}-{}",
            self.image.id,
            plugin.name(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// Makes `output` the current data, removing the previous work file (never the staged
    /// original, which stays until the import is over).
    async fn replace_data(&mut self, output: PathBuf, staged: &Path) {
        let previous = std::mem::replace(&mut self.data, output);
        if previous != staged {
            let _ = tokio::fs::remove_file(&previous).await;
        }
    }
}

/// Runs the configured chain on the staged data of `image`.
pub async fn prepare(
    config: &PluginsConfig,
    staging: &FilesystemStore,
    image: &Image,
    caller: &RequestContext,
    cap: u64,
) -> Result<Prepared, PluginError> {
    let staged = staging.dir().join(image.id.to_string());
    if config.chain.is_empty() {
        return Ok(Prepared {
            data: None,
            changes: ImageChanges::default(),
        });
    }
    // Work files a previous attempt left.
    discard(staging, image.id).await;
    let mut step = Step {
        config,
        image: image.clone(),
        caller,
        data: staged.clone(),
        cap,
        work_dir: staging.dir().join(".incoming"),
        changes: ImageChanges::default(),
    };
    for plugin in &config.chain {
        tracing::info!(image_id = %image.id, plugin = plugin.name(), "running import plugin");
        let output = match plugin {
            Plugin::Conversion => conversion::run(&mut step).await,
            Plugin::Decompression => decompression::run(&mut step).await,
            Plugin::InjectMetadata => {
                inject::run(&mut step);
                Ok(None)
            }
            Plugin::NoOp => {
                tracing::debug!("No_op import plugin");
                Ok(None)
            }
        };
        match output {
            Ok(Some(output)) => step.replace_data(output, &staged).await,
            Ok(None) => {}
            Err(e) => {
                discard(staging, image.id).await;
                return Err(e);
            }
        }
        step.changes.apply(&mut step.image);
    }
    Ok(Prepared {
        data: (step.data != staged).then_some(step.data),
        changes: step.changes,
    })
}

/// Removes the plugins' work files of `id` (after an import, or before running again).
pub async fn discard(staging: &FilesystemStore, id: glance_domain::ImageId) {
    let dir = staging.dir().join(".incoming");
    let prefix = format!("{id}.plugin-");
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str, &str)]) -> Result<PluginsConfig, String> {
        let mut raw = RawConfig::defaults();
        for (section, option, value) in pairs {
            raw.set(section, option, value);
        }
        PluginsConfig::from_raw(&raw)
    }

    #[test]
    fn no_plugins_run_by_default() {
        let c = config(&[]).unwrap();
        assert!(c.chain.is_empty());
        assert_eq!(c.output_format, DiskFormat::Raw);
        assert_eq!(c.ignore_user_roles, ["admin"]);
        assert!(c.inject.is_empty());
    }

    #[test]
    fn the_chain_keeps_the_configured_order_in_glance_list_syntax() {
        let c = config(&[(
            "image_import_opts",
            "image_import_plugins",
            "['image_decompression', 'image_conversion', 'no_op']",
        )])
        .unwrap();
        assert_eq!(
            c.chain,
            [Plugin::Decompression, Plugin::Conversion, Plugin::NoOp]
        );
    }

    #[test]
    fn an_unknown_plugin_is_refused_naming_the_option() {
        let err =
            config(&[("image_import_opts", "image_import_plugins", "no_op,resize")]).unwrap_err();
        assert!(
            err.contains("[image_import_opts] image_import_plugins"),
            "{err}"
        );
        assert!(err.contains("resize"), "{err}");
    }

    #[test]
    fn only_raw_qcow2_and_vmdk_are_output_formats() {
        let c = config(&[("image_conversion", "output_format", "qcow2")]).unwrap();
        assert_eq!(c.output_format, DiskFormat::Qcow2);
        let err = config(&[("image_conversion", "output_format", "vhd")]).unwrap_err();
        assert!(err.contains("[image_conversion] output_format"), "{err}");
    }

    fn work_files(staging: &FilesystemStore, id: glance_domain::ImageId) -> Vec<PathBuf> {
        std::fs::read_dir(staging.dir().join(".incoming"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&id.to_string())
            })
            .collect()
    }

    /// What a redelivered import relies on: the staged data is never touched, and a run
    /// clears what an earlier (dead) run left.
    #[tokio::test]
    async fn a_rerun_starts_again_from_the_untouched_staged_data() {
        let dir = tempfile::tempdir().unwrap();
        let staging = FilesystemStore::new(dir.path().join("staging")).unwrap();
        let mut image = Image::new(glance_domain::ImageId::new(), None, chrono::Utc::now());
        image.disk_format = Some(DiskFormat::Qcow2);
        let staged = staging.dir().join(image.id.to_string());
        let raw = dir.path().join("disk.raw");
        std::fs::write(&raw, vec![5u8; 1 << 20]).unwrap();
        let out = std::process::Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&staged)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let original = std::fs::read(&staged).unwrap();
        let config = config(&[CHAIN]).unwrap();
        let caller = RequestContext::admin("req");

        let first = prepare(&config, &staging, &image, &caller, 1 << 30)
            .await
            .unwrap();
        let converted = first.data.clone().expect("converted");
        assert_eq!(std::fs::read(&converted).unwrap(), vec![5u8; 1 << 20]);
        assert_eq!(first.changes.disk_format, Some(DiskFormat::Raw));
        assert_eq!(std::fs::read(&staged).unwrap(), original);

        // The worker died before storing: the next run replaces the work file.
        let second = prepare(&config, &staging, &image, &caller, 1 << 30)
            .await
            .unwrap();
        assert_eq!(work_files(&staging, image.id), [second.data.unwrap()]);
        assert!(!converted.exists());
        discard(&staging, image.id).await;
        assert!(work_files(&staging, image.id).is_empty());
        assert_eq!(std::fs::read(&staged).unwrap(), original);

        // A refusal leaves no work file either.
        std::fs::write(&staged, vec![0u8; 1 << 20]).unwrap();
        let err = prepare(&config, &staging, &image, &caller, 1 << 30)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Image format mismatch"), "{err}");
        assert!(work_files(&staging, image.id).is_empty());
    }

    const CHAIN: (&str, &str, &str) = (
        "image_import_opts",
        "image_import_plugins",
        "image_conversion,no_op",
    );

    #[test]
    fn injected_properties_are_a_dict_option() {
        let c = config(&[
            ("inject_metadata_properties", "inject", "a:1, b : two:three"),
            (
                "inject_metadata_properties",
                "ignore_user_roles",
                "admin,reader",
            ),
        ])
        .unwrap();
        assert_eq!(c.inject.get("a").map(String::as_str), Some("1"));
        assert_eq!(c.inject.get("b").map(String::as_str), Some("two:three"));
        assert_eq!(c.ignore_user_roles, ["admin", "reader"]);
        let err = config(&[("inject_metadata_properties", "inject", "novalue")]).unwrap_err();
        assert!(err.contains("[inject_metadata_properties] inject"), "{err}");
    }
}
