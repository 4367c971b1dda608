use std::path::PathBuf;
use std::str::FromStr;

use crate::{ConfigError, RawConfig};

/// How the API learns who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Every caller is an admin. Only for a single user on a trusted host.
    NoAuth,
    /// Identity from keystonemiddleware-style headers (`X-Identity-Status: Confirmed`, ...),
    /// for an API behind a proxy that authenticates. Only when configured explicitly
    /// (or on loopback): anyone who can reach the port could name their own roles.
    TrustedHeaders,
    /// `X-Auth-Token` validated against Keystone in-process, configured by
    /// `[keystone_authtoken]` (see `glance_api::keystone`). The default on a non-loopback
    /// bind.
    Keystone,
    /// `X-Auth-Token` looked up in a local token file (`[glance_auth] token_file`).
    Tokens,
}

impl FromStr for AuthStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "noauth" => Ok(Self::NoAuth),
            "trusted-headers" | "trusted_headers" => Ok(Self::TrustedHeaders),
            "keystone" => Ok(Self::Keystone),
            "tokens" => Ok(Self::Tokens),
            other => Err(format!(
                "unknown auth strategy '{other}' (keystone | trusted-headers | tokens | noauth)"
            )),
        }
    }
}

impl AuthStrategy {
    /// What a server bound to `bind_host` uses when `auth_strategy` is not set: Keystone
    /// for anything reachable from elsewhere, `on_loopback` for a loopback bind.
    pub fn default_for(bind_host: &str, on_loopback: AuthStrategy) -> AuthStrategy {
        if is_loopback(bind_host) {
            on_loopback
        } else {
            AuthStrategy::Keystone
        }
    }
}

/// Whether `host` (an address or `localhost`) only accepts connections from this machine.
pub fn is_loopback(host: &str) -> bool {
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(host == "localhost")
}

/// The typed view of the options the services use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub bind_host: String,
    pub bind_port: u16,
    /// `None` when not configured: the binary decides from the bind address.
    pub auth_strategy: Option<AuthStrategy>,
    pub image_size_cap: u64,
    pub api_limit_max: u32,
    pub limit_param_default: u32,
    pub hashing_algorithm: String,
    pub delayed_delete: bool,
    pub image_cache_dir: Option<PathBuf>,
    pub transport_url: Option<String>,
    pub workers: Option<usize>,
    pub database_connection: Option<String>,
    pub default_store: String,
    pub filesystem_store_datadir: Option<PathBuf>,
    pub disk_formats: Vec<String>,
    pub container_formats: Vec<String>,
    pub require_image_format_match: bool,
}

impl Settings {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let r = Reader(raw);
        let settings = Self {
            bind_host: r.string("DEFAULT", "bind_host")?,
            bind_port: r.parse("DEFAULT", "bind_port")?,
            auth_strategy: r.opt_parse("DEFAULT", "auth_strategy")?,
            image_size_cap: r.parse("DEFAULT", "image_size_cap")?,
            api_limit_max: r.parse("DEFAULT", "api_limit_max")?,
            limit_param_default: r.parse("DEFAULT", "limit_param_default")?,
            hashing_algorithm: r.string("DEFAULT", "hashing_algorithm")?,
            delayed_delete: r.boolean("DEFAULT", "delayed_delete")?,
            image_cache_dir: r
                .opt_string("DEFAULT", "image_cache_dir")
                .map(PathBuf::from),
            transport_url: r.opt_string("DEFAULT", "transport_url"),
            workers: r.opt_parse("DEFAULT", "workers")?,
            database_connection: r.opt_string("database", "connection"),
            default_store: r.string("glance_store", "default_store")?,
            filesystem_store_datadir: r
                .opt_string("glance_store", "filesystem_store_datadir")
                .map(PathBuf::from),
            disk_formats: r.list("image_format", "disk_formats"),
            container_formats: r.list("image_format", "container_formats"),
            require_image_format_match: r.boolean("image_format", "require_image_format_match")?,
        };
        if !matches!(
            settings.hashing_algorithm.as_str(),
            "sha512" | "sha384" | "sha256" | "sha1" | "md5"
        ) {
            return Err(r.invalid(
                "DEFAULT",
                "hashing_algorithm",
                "supported: sha512, sha384, sha256, sha1, md5",
            ));
        }
        Ok(settings)
    }
}

/// Typed reads of option values with errors that name the option; see [`RawConfig::reader`].
pub struct Reader<'a>(pub(crate) &'a RawConfig);

impl Reader<'_> {
    pub fn opt_string(&self, section: &str, option: &str) -> Option<String> {
        self.0
            .get(section, option)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    pub fn string(&self, section: &str, option: &str) -> Result<String, ConfigError> {
        self.opt_string(section, option)
            .ok_or_else(|| self.invalid(section, option, "a value is required"))
    }

    pub fn opt_parse<T: FromStr>(
        &self,
        section: &str,
        option: &str,
    ) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt_string(section, option)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| self.invalid(section, option, &e.to_string()))
            })
            .transpose()
    }

    pub fn parse<T: FromStr>(&self, section: &str, option: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt_parse(section, option)?
            .ok_or_else(|| self.invalid(section, option, "a value is required"))
    }

    /// oslo.config's booleans: true/false, yes/no, on/off, 1/0.
    pub fn boolean(&self, section: &str, option: &str) -> Result<bool, ConfigError> {
        match self
            .opt_string(section, option)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" | "" => Ok(false),
            _ => Err(self.invalid(section, option, "expected true or false")),
        }
    }

    pub fn list(&self, section: &str, option: &str) -> Vec<String> {
        self.opt_string(section, option)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn invalid(&self, section: &str, option: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            section: section.to_owned(),
            option: option.to_owned(),
            value: self.0.get(section, option).unwrap_or_default().to_owned(),
            reason: reason.to_owned(),
        }
    }
}
