//! `db load_metadefs`, `db unload_metadefs` and `db export_metadefs`: the metadefs catalog
//! to and from Glance's definition files (one JSON namespace document per file, as Glance
//! ships them under `etc/glance/metadefs/`).
//!
//! Unlike Glance's, a load reads and checks every file before it touches the database and
//! then writes in one transaction, so a bad file loads nothing; and every refusal (a missing
//! path, an unreadable or invalid file, contradictory flags) exits non-zero naming the file
//! and the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::Utc;
use glance_db::{LoadMode, Loaded, MetadefRepo};
use glance_proto::metadefs::Contents;

/// Glance's `[DEFAULT] metadata_source_path` default.
pub const DEFAULT_PATH: &str = "/etc/glance/metadefs";

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// A directory of definition files (`*.json`) or one file; default
    /// `[DEFAULT] metadata_source_path` or /etc/glance/metadefs.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Add to namespaces already in the database what they lack (without it, namespaces
    /// already there are skipped).
    #[arg(long)]
    pub merge: bool,
    /// With --merge: where both have an item, the file's wins.
    #[arg(long = "prefer_new", alias = "prefer-new")]
    pub prefer_new: bool,
    /// With --merge: replace namespaces already there with the file's.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Directory to write one file per namespace into (created if missing); default
    /// `[DEFAULT] metadata_source_path` or /etc/glance/metadefs.
    #[arg(long)]
    pub path: Option<PathBuf>,
}

/// `db_load_metadefs`: the flags, or Glance's legacy positional `PATH MERGE PREFER_NEW
/// OVERWRITE` (each of the last three on when given and not a false-like word).
#[derive(clap::Args, Debug, Clone)]
pub struct LegacyLoadArgs {
    #[command(flatten)]
    pub flags: LoadArgs,
    #[arg(value_name = "PATH MERGE PREFER_NEW OVERWRITE", num_args = 0..=4)]
    pub positional: Vec<String>,
}

impl LegacyLoadArgs {
    pub fn into_args(self) -> anyhow::Result<LoadArgs> {
        let mut args = self.flags;
        let mut rest = self.positional.into_iter();
        if let Some(path) = rest.next() {
            if args.path.is_some() {
                bail!("give the path once: as --path or as the first argument");
            }
            args.path = Some(PathBuf::from(path));
        }
        let on = |v: Option<String>| {
            v.is_some_and(|v| {
                !matches!(
                    v.to_lowercase().as_str(),
                    "" | "0" | "false" | "f" | "no" | "n" | "off" | "none"
                )
            })
        };
        args.merge |= on(rest.next());
        args.prefer_new |= on(rest.next());
        args.overwrite |= on(rest.next());
        Ok(args)
    }
}

/// `db_export_metadefs`: `--path` or Glance's legacy positional `PATH`.
#[derive(clap::Args, Debug, Clone)]
pub struct LegacyExportArgs {
    #[command(flatten)]
    pub flags: ExportArgs,
    #[arg(value_name = "PATH")]
    pub positional: Option<PathBuf>,
}

impl LegacyExportArgs {
    pub fn into_args(self) -> anyhow::Result<ExportArgs> {
        match (self.flags.path, self.positional) {
            (Some(_), Some(_)) => bail!("give the path once: as --path or as the argument"),
            (path, positional) => Ok(ExportArgs {
                path: path.or(positional),
            }),
        }
    }
}

/// Glance's rules for the flags, refused instead of logged and ignored.
pub fn mode(args: &LoadArgs) -> anyhow::Result<LoadMode> {
    match (args.merge, args.prefer_new, args.overwrite) {
        (_, true, true) => {
            bail!("--prefer_new and --overwrite contradict each other: give at most one of them")
        }
        (false, true, _) | (false, _, true) => {
            bail!("--prefer_new and --overwrite only apply with --merge: add --merge")
        }
        (true, true, false) => Ok(LoadMode::PreferNew),
        (true, false, true) => Ok(LoadMode::Overwrite),
        (true, false, false) => Ok(LoadMode::Merge),
        (false, false, false) => Ok(LoadMode::Skip),
    }
}

pub fn default_path(raw: &glance_config::RawConfig) -> PathBuf {
    PathBuf::from(
        raw.get("DEFAULT", "metadata_source_path")
            .unwrap_or(DEFAULT_PATH),
    )
}

/// The definition files at `path`: the file itself, or a directory's `*.json` files by
/// name.
fn files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("metadefs path {} cannot be read", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)
        .with_context(|| format!("cannot list metadefs directory {}", path.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
        let p = entry.path();
        if p.is_file() && p.extension().is_some_and(|e| e == "json") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no definition files (*.json) in {}", path.display());
    }
    Ok(files)
}

/// Reads and checks one definition file.
pub fn read_file(file: &Path) -> anyhow::Result<Contents> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("{}: cannot be read", file.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", file.display()))?;
    // Glance's loader makes `admin` the owner of namespaces whose file names none.
    Contents::from_document(&doc, Some("admin".into()), Utc::now(), None).map_err(|e| {
        if e.path.is_empty() {
            anyhow::anyhow!("{}: {}", file.display(), e.message)
        } else {
            anyhow::anyhow!("{}: field '{}': {}", file.display(), e.path, e.message)
        }
    })
}

/// Reads every definition file at `path`, refusing two files for one namespace.
pub fn read_catalog(path: &Path) -> anyhow::Result<Vec<Contents>> {
    let files = files(path)?;
    let progress = glance_telemetry::progress::bar(files.len() as u64, "files");
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut catalog = Vec::with_capacity(files.len());
    for file in &files {
        progress.set_message(format!("reading {}", file.display()));
        let contents = read_file(file)?;
        if let Some(other) = seen.insert(contents.namespace.namespace.clone(), file.clone()) {
            bail!(
                "{}: namespace {} is also defined in {}",
                file.display(),
                contents.namespace.namespace,
                other.display()
            );
        }
        catalog.push(contents);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(catalog)
}

pub async fn load(repo: &MetadefRepo, path: &Path, mode: LoadMode) -> anyhow::Result<()> {
    let catalog = read_catalog(path)?;
    let progress = glance_telemetry::progress::spinner(format!(
        "loading {} namespace(s) in one transaction",
        catalog.len()
    ));
    let report = repo.load(&catalog, mode).await;
    progress.finish_and_clear();
    let report = report.map_err(|e| anyhow::anyhow!("nothing was loaded: {e}"))?;
    for line in &report {
        match line {
            Loaded::Created(ns) => println!("Loaded namespace {ns}"),
            Loaded::Skipped(ns) => {
                println!("Skipping namespace {ns}. It already exists in the database.")
            }
            Loaded::Merged(ns) => println!("Merged namespace {ns}"),
            Loaded::Replaced(ns) => println!("Overwrote namespace {ns}"),
        }
    }
    println!(
        "Metadata loading finished: {} file(s) from {}",
        report.len(),
        path.display()
    );
    Ok(())
}

/// A file name for a namespace: Glance's (word characters only, `[\W_]+` removed).
pub fn file_name(namespace: &str) -> String {
    let stem: String = namespace.chars().filter(|c| c.is_alphanumeric()).collect();
    format!("{stem}.json")
}

pub async fn export(repo: &MetadefRepo, path: &Path) -> anyhow::Result<()> {
    let catalog = repo
        .export()
        .await
        .map_err(|e| anyhow::anyhow!("export failed: {e}"))?;
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut written: HashMap<String, String> = HashMap::new();
    let progress = glance_telemetry::progress::bar(catalog.len() as u64, "namespaces");
    for contents in &catalog {
        let ns = &contents.namespace.namespace;
        let mut name = file_name(ns);
        if written.contains_key(&name) {
            // Two namespaces that differ only in punctuation: keep both.
            name = format!("{}-{}.json", name.trim_end_matches(".json"), written.len());
        }
        let file = path.join(&name);
        progress.set_message(format!("writing {}", file.display()));
        let mut text = serde_json::to_string_pretty(&contents.to_document())
            .context("rendering a namespace")?;
        text.push('\n');
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        written.insert(name, ns.clone());
        println!("Namespace {ns} saved in {}", file.display());
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!(
        "Exported {} namespace(s) to {}",
        catalog.len(),
        path.display()
    );
    Ok(())
}

pub async fn unload(repo: &MetadefRepo) -> anyhow::Result<()> {
    let removed = repo
        .unload()
        .await
        .map_err(|e| anyhow::anyhow!("unload failed: {e}"))?;
    println!("Removed {removed} namespace(s) and every resource type");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(merge: bool, prefer_new: bool, overwrite: bool) -> LoadArgs {
        LoadArgs {
            path: None,
            merge,
            prefer_new,
            overwrite,
        }
    }

    #[test]
    fn prefer_new_and_overwrite_need_merge_and_exclude_each_other() {
        assert_eq!(mode(&args(false, false, false)).unwrap(), LoadMode::Skip);
        assert_eq!(mode(&args(true, false, false)).unwrap(), LoadMode::Merge);
        assert_eq!(mode(&args(true, true, false)).unwrap(), LoadMode::PreferNew);
        assert_eq!(mode(&args(true, false, true)).unwrap(), LoadMode::Overwrite);
        assert!(mode(&args(false, true, false)).is_err());
        assert!(mode(&args(false, false, true)).is_err());
        assert!(mode(&args(true, true, true)).is_err());
    }

    #[test]
    fn glances_legacy_positional_arguments_are_understood() {
        let legacy = |positional: &[&str]| LegacyLoadArgs {
            flags: args(false, false, false),
            positional: positional.iter().map(|s| s.to_string()).collect(),
        };
        let a = legacy(&["/x", "True", "", "yes"]).into_args().unwrap();
        assert_eq!(a.path.as_deref(), Some(Path::new("/x")));
        assert!(a.merge && !a.prefer_new && a.overwrite);
        let a = legacy(&["/x", "False"]).into_args().unwrap();
        assert!(!a.merge);
        let mut both = legacy(&["/x"]);
        both.flags.path = Some("/y".into());
        assert!(both.into_args().is_err());
    }

    #[test]
    fn file_names_keep_word_characters_only() {
        assert_eq!(
            file_name("OS::Compute::CPUPinning"),
            "OSComputeCPUPinning.json"
        );
        assert_eq!(file_name("a_b-c"), "abc.json");
    }
}
