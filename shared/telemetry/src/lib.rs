//! One place that sets up tracing for every binary, mints request ids, and draws progress
//! on long command-line work.

use tracing_subscriber::{fmt, EnvFilter};

pub mod progress;

/// Installs a `tracing` subscriber writing to stderr. `RUST_LOG` overrides `default_filter`.
/// Safe to call twice (tests): the second call is a no-op.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A new request id in Glance's form: `req-<uuid>`.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_look_like_glances() {
        let id = super::new_request_id();
        assert!(id.starts_with("req-"));
        assert_eq!(id.len(), 4 + 36);
    }
}
