//! The scrubber's options, read from the layered configuration (Glance's names).

use std::time::Duration;

use glance_config::{ConfigError, RawConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubberConfig {
    /// `[DEFAULT] scrub_time`: how long a `pending_delete` image waits.
    pub scrub_time: Duration,
    /// `[DEFAULT] scrub_pool_size`: jobs handled at once by one scrubber.
    pub pool_size: usize,
    /// `[DEFAULT] wakeup_time`: seconds between runs of the daemon.
    pub wakeup_time: Duration,
    /// `[DEFAULT] daemon`.
    pub daemon: bool,
    /// `[scrubber] test_delete_delay_ms`: tests use it to catch a scrubber mid-job.
    pub delete_delay: Duration,
}

impl Default for ScrubberConfig {
    fn default() -> Self {
        Self::from_raw(&RawConfig::defaults()).expect("defaults are valid")
    }
}

impl ScrubberConfig {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let r = raw.reader();
        let number = |section: &str, option: &str| -> Result<u64, ConfigError> {
            r.string(section, option)?
                .parse::<u64>()
                .map_err(|e| r.invalid(section, option, &e.to_string()))
        };
        let pool_size = number("DEFAULT", "scrub_pool_size")?;
        if pool_size == 0 {
            return Err(r.invalid("DEFAULT", "scrub_pool_size", "must be at least 1"));
        }
        let wakeup_time = number("DEFAULT", "wakeup_time")?;
        if wakeup_time == 0 {
            return Err(r.invalid("DEFAULT", "wakeup_time", "must be at least 1"));
        }
        Ok(Self {
            scrub_time: Duration::from_secs(number("DEFAULT", "scrub_time")?),
            pool_size: pool_size as usize,
            wakeup_time: Duration::from_secs(wakeup_time),
            daemon: r.boolean("DEFAULT", "daemon")?,
            delete_delay: Duration::from_millis(number("scrubber", "test_delete_delay_ms")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_glances() {
        let c = ScrubberConfig::default();
        assert_eq!(c.scrub_time, Duration::ZERO);
        assert_eq!(c.pool_size, 1);
        assert_eq!(c.wakeup_time, Duration::from_secs(300));
        assert!(!c.daemon);
    }

    #[test]
    fn a_pool_of_zero_is_refused() {
        let mut raw = RawConfig::defaults();
        raw.set("DEFAULT", "scrub_pool_size", "0");
        let err = ScrubberConfig::from_raw(&raw).unwrap_err().to_string();
        assert!(err.contains("scrub_pool_size"), "{err}");
    }
}
