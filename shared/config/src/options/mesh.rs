//! Options of the distributed mode's processes (`glance-api` and `glance-registry` over a
//! broker). The embedded all-in-one does not read them.

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "glance_bus",
        "runtime_threads",
        Some("1"),
        "Threads of the async runtime that carries bus messages in glance-api and glance-registry \
         (the API's HTTP workers are [DEFAULT] workers); run more processes to use more cores",
    ),
    opt(
        "glance_bus",
        "show_batches_in_flight",
        Some("2"),
        "Image-shows the API has on the bus at once, per process; more concurrent shows wait and \
         go to the registry together in one message (0: one message per show)",
    ),
    opt(
        "glance_bus",
        "show_batch_size",
        Some("32"),
        "Most image-shows in one message to the registry",
    ),
    opt(
        "glance_bus",
        "list_batches_in_flight",
        Some("2"),
        "Image lists the API has on the bus at once, per process; more concurrent lists wait and \
         go to the registry together in one message (0: one message per list)",
    ),
    opt(
        "glance_bus",
        "list_batch_size",
        Some("16"),
        "Most image lists in one message to the registry",
    ),
];

/// The typed view of these options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshSettings {
    pub runtime_threads: usize,
    pub show_batches_in_flight: usize,
    pub show_batch_size: usize,
    pub list_batches_in_flight: usize,
    pub list_batch_size: usize,
}

impl MeshSettings {
    pub fn from_raw(raw: &crate::RawConfig) -> Result<Self, crate::ConfigError> {
        let r = raw.reader();
        let settings = Self {
            runtime_threads: r.parse("glance_bus", "runtime_threads")?,
            show_batches_in_flight: r.parse("glance_bus", "show_batches_in_flight")?,
            show_batch_size: r.parse("glance_bus", "show_batch_size")?,
            list_batches_in_flight: r.parse("glance_bus", "list_batches_in_flight")?,
            list_batch_size: r.parse("glance_bus", "list_batch_size")?,
        };
        if settings.runtime_threads == 0 {
            return Err(r.invalid("glance_bus", "runtime_threads", "at least 1"));
        }
        if settings.show_batch_size == 0 {
            return Err(r.invalid("glance_bus", "show_batch_size", "at least 1"));
        }
        if settings.list_batch_size == 0 {
            return Err(r.invalid("glance_bus", "list_batch_size", "at least 1"));
        }
        Ok(settings)
    }
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self::from_raw(&crate::RawConfig::defaults()).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawConfig;

    fn with(ini: &str) -> Result<MeshSettings, crate::ConfigError> {
        let mut raw = RawConfig::defaults();
        raw.merge_ini(ini).unwrap();
        MeshSettings::from_raw(&raw)
    }

    #[test]
    fn defaults_batch_shows_and_lists_two_messages_at_a_time_on_one_thread() {
        let s = MeshSettings::default();
        assert_eq!(
            (
                s.runtime_threads,
                s.show_batches_in_flight,
                s.show_batch_size,
                s.list_batches_in_flight,
                s.list_batch_size
            ),
            (1, 2, 32, 2, 16)
        );
    }

    #[test]
    fn batching_can_be_turned_off_but_threads_and_batch_size_cannot_be_zero() {
        let off = with("[glance_bus]\nshow_batches_in_flight = 0\n").unwrap();
        assert_eq!(off.show_batches_in_flight, 0);
        for bad in [
            "runtime_threads = 0",
            "show_batch_size = 0",
            "list_batch_size = 0",
            "runtime_threads = many",
        ] {
            let err = with(&format!("[glance_bus]\n{bad}\n")).unwrap_err();
            assert!(
                err.to_string().contains(bad.split(' ').next().unwrap()),
                "{err}"
            );
        }
    }
}
