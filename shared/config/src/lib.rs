//! Configuration, layered the way an operator expects: built-in defaults, then each
//! `--config-file` in order (Glance's INI format and option names, so an existing
//! `glance-api.conf` carries over), then `GLANCE__<SECTION>__<OPTION>` environment variables,
//! then command-line flags.
//!
//! Every option we understand is declared once in [`options::all`]; that table drives parsing,
//! `--print-config` and the sample configuration. Options we do not know are kept (an
//! operator's file has many) but never consulted.

pub mod options;
mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use options::{all as all_options, GlareSettings, MeshSettings, Opt, UploadSettings};
pub use settings::Reader;
pub use settings::{is_loopback, AuthStrategy, Settings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid INI: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("[{section}] {option} = {value:?} is invalid: {reason}")]
    Invalid {
        section: String,
        option: String,
        value: String,
        reason: String,
    },
}

/// The raw layered values: `(section, option) -> value`, later layers winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    values: BTreeMap<(String, String), String>,
    files: Vec<PathBuf>,
}

impl RawConfig {
    /// Defaults, then `files` in order, then the process environment.
    pub fn load(files: &[PathBuf]) -> Result<Self, ConfigError> {
        Self::load_with_env(files, std::env::vars())
    }

    pub fn load_with_env(
        files: &[PathBuf],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw = Self::defaults();
        for file in files {
            raw.merge_file(file)?;
        }
        raw.merge_env(env);
        Ok(raw)
    }

    pub fn defaults() -> Self {
        let mut raw = Self::default();
        for opt in options::all() {
            if let Some(default) = opt.default {
                raw.set(opt.section, opt.name, default);
            }
        }
        raw
    }

    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.merge_ini(&text)
            .map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?;
        self.files.push(path.to_owned());
        Ok(())
    }

    /// Merges INI text. oslo.config treats `[DEFAULT]` case-sensitively and every other
    /// section as written; we do the same.
    pub fn merge_ini(&mut self, text: &str) -> Result<(), String> {
        let opts = ini::ParseOption {
            enabled_escape: false,
            enabled_quote: false,
            ..Default::default()
        };
        let ini = ini::Ini::load_from_str_opt(text, opts).map_err(|e| e.to_string())?;
        for (section, props) in ini.iter() {
            let section = section.unwrap_or("DEFAULT");
            for (key, value) in props.iter() {
                self.set(section, key, value.trim());
            }
        }
        Ok(())
    }

    /// `GLANCE__DEFAULT__IMAGE_SIZE_CAP=4194304` sets `[DEFAULT] image_size_cap`;
    /// `GLANCE__DATABASE__CONNECTION` sets `[database] connection`.
    pub fn merge_env(&mut self, env: impl IntoIterator<Item = (String, String)>) {
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("GLANCE__") else {
                continue;
            };
            let Some((section, option)) = rest.split_once("__") else {
                continue;
            };
            let section = if section.eq_ignore_ascii_case("default") {
                "DEFAULT".to_owned()
            } else {
                section.to_ascii_lowercase()
            };
            self.set(&section, &option.to_ascii_lowercase(), &value);
        }
    }

    pub fn set(&mut self, section: &str, option: &str, value: &str) {
        self.values
            .insert((section.to_owned(), option.to_owned()), value.to_owned());
    }

    pub fn get(&self, section: &str, option: &str) -> Option<&str> {
        self.values
            .get(&(section.to_owned(), option.to_owned()))
            .map(String::as_str)
    }

    /// Every section setting `option`, with its value: for per-section options such as
    /// Glare's `[artifact_type:<type>] delayed_delete`.
    pub fn sections_setting<'a>(
        &'a self,
        option: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.values
            .iter()
            .filter(move |((_, o), _)| o == option)
            .map(|((section, _), value)| (section.as_str(), value.as_str()))
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Typed access to the values, for a feature's own settings struct.
    pub fn reader(&self) -> Reader<'_> {
        Reader(self)
    }

    /// The effective value of every declared option, as INI, with each option's environment
    /// variable in a comment.
    pub fn render(&self) -> String {
        // Sections in order of first appearance, so features may add to any section.
        let mut sections: Vec<&str> = Vec::new();
        for opt in options::all() {
            if !sections.contains(&opt.section) {
                sections.push(opt.section);
            }
        }
        let mut out = String::new();
        for section in sections {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{section}]\n"));
            for opt in options::all().filter(|o| o.section == section) {
                out.push_str(&format!("# {} (env {})\n", opt.help, opt.env_name()));
                match self.get(opt.section, opt.name) {
                    Some(v) => out.push_str(&format!("{} = {}\n", opt.name, v)),
                    None => out.push_str(&format!("#{} =\n", opt.name)),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_glance_api_conf_carries_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("glance-api.conf");
        std::fs::write(
            &file,
            "[DEFAULT]\nimage_size_cap = 4194304\ndebug = true\n\n[database]\nconnection = sqlite:////var/lib/glance/glance.sqlite\n\n[glance_store]\nfilesystem_store_datadir = /var/lib/glance/images/\n[paste_deploy]\nflavor = keystone+cachemanagement\n",
        )
        .unwrap();
        let raw = RawConfig::load_with_env(&[file], env(&[])).unwrap();
        let s = Settings::from_raw(&raw).unwrap();
        assert_eq!(s.image_size_cap, 4194304);
        assert_eq!(
            s.database_connection.as_deref(),
            Some("sqlite:////var/lib/glance/glance.sqlite")
        );
        assert_eq!(
            s.filesystem_store_datadir.as_deref(),
            Some(Path::new("/var/lib/glance/images/"))
        );
    }

    #[test]
    fn the_environment_overrides_files() {
        let raw = RawConfig::load_with_env(
            &[],
            env(&[
                ("GLANCE__DEFAULT__IMAGE_SIZE_CAP", "1024"),
                ("GLANCE__DATABASE__CONNECTION", "postgresql://u@h/db"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        let s = Settings::from_raw(&raw).unwrap();
        assert_eq!(s.image_size_cap, 1024);
        assert_eq!(
            s.database_connection.as_deref(),
            Some("postgresql://u@h/db")
        );
    }

    #[test]
    fn a_bad_value_names_its_option() {
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "image_size_cap", "lots");
        let err = Settings::from_raw(&raw).unwrap_err().to_string();
        assert!(err.contains("image_size_cap"), "{err}");
    }

    #[test]
    fn print_config_shows_every_declared_option() {
        let text = RawConfig::defaults().render();
        for opt in options::all() {
            assert!(text.contains(opt.name), "{} missing", opt.name);
        }
        assert!(text.contains("GLANCE__DEFAULT__IMAGE_SIZE_CAP"));
    }
}
