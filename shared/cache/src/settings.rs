//! The cache's options, read from the layered configuration into one typed struct that the
//! API, the workers and the one-shot programs share.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use glance_config::{ConfigError, RawConfig, Reader};

/// Glance's default `image_cache_max_size`: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// `[DEFAULT] image_cache_dir`; `None` disables the cache.
    pub dir: Option<PathBuf>,
    /// `[DEFAULT] image_cache_max_size`: the pruner's threshold, in bytes.
    pub max_size: u64,
    /// `[DEFAULT] image_cache_stall_time`: incomplete files older than this are removed.
    pub stall_time: Duration,
    /// `[glance_cache] node_id`: names this node's prefetch queue (`glance.v1.cache.<node>`).
    pub node_id: String,
    /// `[glance_cache] worker_concurrency`: images one worker fetches at a time.
    pub worker_concurrency: usize,
    /// `[glance_cache] prune_interval` (0 = never): how often a worker prunes.
    pub prune_interval: Duration,
    /// `[glance_cache] clean_interval` (0 = never): how often a worker cleans.
    pub clean_interval: Duration,
    /// `[glance_cache] fetch_rate_limit`: bytes per second a worker reads the store at
    /// (0 = unlimited). Meant for tests that must catch a fetch in the middle.
    pub fetch_rate_limit: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self::from_raw(&RawConfig::defaults()).expect("defaults are valid")
    }
}

impl CacheSettings {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let r = raw.reader();
        let port = r
            .opt_string("DEFAULT", "bind_port")
            .unwrap_or_else(|| "9292".into());
        let node_id = match r.opt_string("glance_cache", "node_id") {
            Some(node) => {
                if node.is_empty()
                    || !node
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(r.invalid(
                        "glance_cache",
                        "node_id",
                        "letters, digits, '-' and '_' only (it is one word of a routing key)",
                    ));
                }
                node
            }
            None => default_node_id(&port),
        };
        Ok(Self {
            dir: r
                .opt_string("DEFAULT", "image_cache_dir")
                .map(PathBuf::from),
            max_size: parse(&r, "DEFAULT", "image_cache_max_size")?,
            stall_time: Duration::from_secs(parse(&r, "DEFAULT", "image_cache_stall_time")?),
            node_id,
            worker_concurrency: parse::<usize>(&r, "glance_cache", "worker_concurrency")?.max(1),
            prune_interval: Duration::from_secs(parse(&r, "glance_cache", "prune_interval")?),
            clean_interval: Duration::from_secs(parse(&r, "glance_cache", "clean_interval")?),
            fetch_rate_limit: parse(&r, "glance_cache", "fetch_rate_limit")?,
        })
    }
}

fn parse<T: FromStr>(r: &Reader<'_>, section: &str, option: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let value = r
        .opt_string(section, option)
        .ok_or_else(|| r.invalid(section, option, "a value is required"))?;
    value
        .parse()
        .map_err(|e: T::Err| r.invalid(section, option, &e.to_string()))
}

/// `<hostname>-<bind_port>`: stable across restarts and distinct for two API processes on
/// one host, and a single word of a routing key.
pub fn default_node_id(port: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{host}-{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_glance() {
        let s = CacheSettings::default();
        assert_eq!(s.max_size, DEFAULT_MAX_SIZE);
        assert_eq!(s.stall_time, Duration::from_secs(86400));
        assert!(s.node_id.ends_with("-9292"), "{}", s.node_id);
        assert_eq!(s.dir, None);
    }

    #[test]
    fn a_node_id_with_a_dot_is_refused() {
        let mut raw = RawConfig::defaults();
        raw.set("glance_cache", "node_id", "a.b");
        let err = CacheSettings::from_raw(&raw).unwrap_err().to_string();
        assert!(err.contains("node_id"), "{err}");
    }
}
