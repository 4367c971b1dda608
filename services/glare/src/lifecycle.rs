//! How `glance-control glare status|reload|shutdown` drives an artifact API process:
//! reload swaps the configuration (a bad file is refused and the old settings stay),
//! shutdown stops the blob sweep and the HTTP server, gracefully or at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use actix_web::web;
use glance_config::{AuthStrategy, RawConfig};
use glance_service::{Lifecycle, Workers};

use crate::{AppState, GlareConfig};

pub struct GlareLifecycle {
    pub state: web::Data<AppState>,
    pub server: ServerHandle,
    pub config_files: Vec<PathBuf>,
    pub default_auth: AuthStrategy,
    pub workers: Workers,
}

impl Lifecycle for GlareLifecycle {
    fn detail(&self) -> BTreeMap<String, String> {
        let c = self.state.config();
        BTreeMap::from([
            (
                "auth_strategy".into(),
                format!("{:?}", c.identity.auth_strategy),
            ),
            ("max_api_limit".into(), c.glare.max_api_limit.to_string()),
        ])
    }

    fn reload(&self) -> Result<String, String> {
        let raw = RawConfig::load(&self.config_files).map_err(|e| e.to_string())?;
        let mut config = GlareConfig::from_raw(&raw, self.default_auth)?;
        let old = self.state.config();
        // Threads and the listener stay; the same Keystone settings keep their validator.
        config.identity.workers = old.identity.workers;
        if let (Some(new), Some(kept)) = (&config.identity.keystone, &old.identity.keystone) {
            if new.settings() == kept.settings() {
                config.identity.keystone = Some(kept.clone());
            }
        }
        self.state.set_config(config);
        Ok(format!("reloaded {} file(s)", self.config_files.len()))
    }

    fn shutdown(&self, graceful: bool) {
        self.workers.stop();
        let server = self.server.clone();
        actix_web::rt::spawn(async move { server.stop(graceful).await });
    }
}
