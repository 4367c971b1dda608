//! Options of crash-safe uploads: the lease an upload holds on its image, and the sweep
//! that recovers images whose uploader died and removes data no live upload owns.

use std::time::Duration;

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "glance_upload",
        "lease_seconds",
        Some("60"),
        "Seconds an upload (PUT file, stage) holds its image without renewing; renewed every \
         third of it while the upload runs. A lease that runs out puts the image back to \
         queued and removes its partial data",
    ),
    opt(
        "glance_upload",
        "sweep_interval",
        Some("30"),
        "Seconds between sweeps for expired upload leases and orphaned incoming, staging and \
         incomplete-cache files (each API node sweeps, also once at start)",
    ),
];

/// The typed view of these options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    pub lease_seconds: u32,
    pub sweep_interval: Duration,
}

impl UploadSettings {
    pub fn from_raw(raw: &crate::RawConfig) -> Result<Self, crate::ConfigError> {
        let r = raw.reader();
        let lease_seconds: u32 = r.parse("glance_upload", "lease_seconds")?;
        if lease_seconds < 2 {
            return Err(r.invalid("glance_upload", "lease_seconds", "at least 2"));
        }
        let sweep: f64 = r.parse("glance_upload", "sweep_interval")?;
        if !(sweep > 0.0 && sweep.is_finite()) {
            return Err(r.invalid("glance_upload", "sweep_interval", "a positive number"));
        }
        Ok(Self {
            lease_seconds,
            sweep_interval: Duration::from_secs_f64(sweep),
        })
    }

    /// How often a running upload renews its lease.
    pub fn renew_every(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_seconds)) / 3
    }
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self::from_raw(&crate::RawConfig::defaults()).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawConfig;

    fn with(ini: &str) -> Result<UploadSettings, crate::ConfigError> {
        let mut raw = RawConfig::defaults();
        raw.merge_ini(ini).unwrap();
        UploadSettings::from_raw(&raw)
    }

    #[test]
    fn a_lease_lasts_a_minute_and_is_renewed_every_twenty_seconds_by_default() {
        let s = UploadSettings::default();
        assert_eq!(s.lease_seconds, 60);
        assert_eq!(s.renew_every(), Duration::from_secs(20));
        assert_eq!(s.sweep_interval, Duration::from_secs(30));
    }

    #[test]
    fn a_lease_too_short_to_renew_or_a_sweep_that_never_runs_is_refused() {
        assert!(with("[glance_upload]\nlease_seconds = 1\n").is_err());
        assert!(with("[glance_upload]\nsweep_interval = 0\n").is_err());
        assert_eq!(
            with("[glance_upload]\nsweep_interval = 0.5\n")
                .unwrap()
                .sweep_interval,
            Duration::from_millis(500)
        );
    }
}
