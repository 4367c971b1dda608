//! How `glance-control` drives an API process: reload swaps the configuration, shutdown
//! stops its workers (imports, sweeps, cache listeners), lets the work in hand finish, then
//! drains and stops the HTTP server (see [`crate::drain`]); stop does both at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use actix_web::web;
use glance_config::{AuthStrategy, RawConfig};
use glance_service::{Lifecycle, Workers};

use crate::{ApiConfig, AppState};

pub struct ApiLifecycle {
    pub state: web::Data<AppState>,
    pub server: ServerHandle,
    pub connections: crate::drain::Connections,
    pub config_files: Vec<PathBuf>,
    pub default_auth: AuthStrategy,
    /// This process's background work (see [`crate::Application::workers`]).
    pub workers: Workers,
}

impl Lifecycle for ApiLifecycle {
    fn detail(&self) -> BTreeMap<String, String> {
        let c = self.state.config();
        BTreeMap::from([
            ("image_size_cap".into(), c.image_size_cap.to_string()),
            ("auth_strategy".into(), format!("{:?}", c.auth_strategy)),
        ])
    }

    fn reload(&self) -> Result<String, String> {
        let raw = RawConfig::load(&self.config_files).map_err(|e| e.to_string())?;
        // Files the options name (policy, tokens, property protections) are read here too:
        // a bad one refuses the reload and the old settings stay.
        let mut config = ApiConfig::from_raw(&raw, self.default_auth)?;
        // Threads and sockets stay as they are: only request-time settings change.
        let old = self.state.config();
        config.workers = old.workers;
        // The same Keystone settings keep the validator, with its cached tokens and
        // service token.
        if let (Some(new), Some(kept)) = (&config.keystone, &old.keystone) {
            if new.settings() == kept.settings() {
                config.keystone = Some(kept.clone());
            }
        }
        self.state
            .gateway
            .notifier()
            .set_config(config.notifications.clone());
        self.state.set_config(config);
        Ok(format!("reloaded {} file(s)", self.config_files.len()))
    }

    fn shutdown(&self, graceful: bool) {
        // Workers first: the process ends with its HTTP server, so on a graceful shutdown
        // the imports in hand finish while it still serves (new imports queue at the broker
        // for other nodes). Then HTTP, drained so that no accepted request is dropped and
        // nothing waits on idle keep-alive connections (see `drain`).
        let workers = self.workers.clone();
        let stop = crate::drain::stop(self.server.clone(), self.connections.clone(), graceful);
        workers.stop();
        actix_web::rt::spawn(async move {
            if graceful {
                workers.drained().await;
            }
            stop.await
        });
    }
}
