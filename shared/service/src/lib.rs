//! The control plane every service process runs: an identity, and a [`ControlActor`] that
//! answers `glance-control` commands arriving on the bus.
//!
//! A service plugs in through [`Lifecycle`]: what to report, how to reload, how to drain.
//! The actor turns bus messages into calls on it; nothing here knows HTTP or the database.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use glance_bus::Transport;
use glance_proto::control::{
    subscription_topics, ControlCommand, ControlReply, ControlRequest, InstanceStatus,
};

pub mod listener;
pub mod memory;
pub mod process;
pub mod worker;

pub use process::{connect, run, serve};
pub use worker::{Consumer, Periodic, Task, Worker, WorkerContext, WorkerState, Workers};

/// Who this process is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: String,
    pub instance: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub started_at: DateTime<Utc>,
}

impl Identity {
    pub fn new(service: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            service: service.to_owned(),
            instance: format!(
                "{service}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: Utc::now(),
        }
    }
}

/// A counter of work in progress that a service shares with its control actor.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicU64>);

impl From<Arc<AtomicU64>> for InFlight {
    fn from(counter: Arc<AtomicU64>) -> Self {
        Self(counter)
    }
}

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.0.clone())
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct InFlightGuard(Arc<AtomicU64>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a service lets the control actor do to it.
pub trait Lifecycle: Send + Sync + 'static {
    /// Service-specific figures for `status`.
    fn detail(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    /// Re-reads configuration. `Err` keeps the old settings and is reported to the caller.
    fn reload(&self) -> Result<String, String>;
    /// Stops taking new work. With `graceful`, in-flight work finishes first. The process
    /// exits when its main loop returns.
    fn shutdown(&self, graceful: bool);
}

/// The actor that owns a process's control state.
pub struct ControlActor {
    identity: Identity,
    workers: Workers,
    lifecycle: Arc<dyn Lifecycle>,
}

impl Actor for ControlActor {
    type Context = Context<Self>;
}

/// One control command, as delivered to the actor.
pub struct Command(pub ControlCommand);

impl Message for Command {
    type Result = ControlReply;
}

impl ControlActor {
    fn status(&self) -> InstanceStatus {
        let id = &self.identity;
        InstanceStatus {
            service: id.service.clone(),
            instance: id.instance.clone(),
            host: id.host.clone(),
            pid: id.pid,
            version: id.version.clone(),
            started_at: id.started_at,
            uptime_secs: (Utc::now() - id.started_at).num_seconds().max(0) as u64,
            in_flight: self.workers.in_flight().get(),
            detail: {
                let mut detail = self.lifecycle.detail();
                detail.extend(self.workers.detail());
                detail
            },
        }
    }
}

impl Handler<Command> for ControlActor {
    type Result = MessageResult<Command>;

    fn handle(&mut self, Command(cmd): Command, _: &mut Context<Self>) -> Self::Result {
        // Health checks ask for status every few seconds: only commands that change
        // something are worth a line at info.
        if cmd == ControlCommand::Status {
            tracing::debug!(instance = %self.identity.instance, "status asked");
        } else {
            tracing::info!(command = ?cmd, instance = %self.identity.instance, "control command");
        }
        let (ok, message) = match cmd {
            ControlCommand::Status => (true, "running".to_owned()),
            ControlCommand::Reload => match self.lifecycle.reload() {
                Ok(msg) => (true, msg),
                Err(msg) => (false, msg),
            },
            ControlCommand::Shutdown => {
                self.lifecycle.shutdown(true);
                (true, "shutting down after in-flight work".to_owned())
            }
            ControlCommand::Stop => {
                self.lifecycle.shutdown(false);
                (true, "stopping".to_owned())
            }
            ControlCommand::Restart => {
                // Re-executing replaces this process once the service has drained; the
                // main loop sees RESTART_REQUESTED and execs itself.
                RESTART_REQUESTED.store(true, Ordering::SeqCst);
                self.lifecycle.shutdown(true);
                (true, "restarting".to_owned())
            }
        };
        MessageResult(ControlReply {
            status: self.status(),
            ok,
            message,
        })
    }
}

/// The tokio runtime an actix system of a bus process runs on: `threads` workers
/// (`[glance_bus] runtime_threads`). Few threads serve a message-driven process best: every
/// message already crosses the AMQP client's I/O thread, and each further hand-off between
/// workers is a context switch that costs more than the work it moves.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

static RESTART_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called by a binary after its service returned: re-executes the binary if a restart was
/// asked for, otherwise returns.
pub fn exec_if_restart_requested() {
    if !RESTART_REQUESTED.load(Ordering::SeqCst) {
        return;
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("current executable");
    tracing::info!(exe = %exe.display(), "restarting");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    if let Some(vars) = listener::hand_over() {
        cmd.envs(vars);
    }
    let err = cmd.exec();
    tracing::error!(error = %err, "restart failed");
    std::process::exit(1);
}

/// Starts the control actor and its bus listener. Must run inside an actix system. The
/// status it reports counts `workers`' work in flight and shows each worker's state.
pub async fn start_control(
    transport: Arc<dyn Transport>,
    identity: Identity,
    workers: Workers,
    lifecycle: Arc<dyn Lifecycle>,
) -> Result<Addr<ControlActor>, glance_bus::BusError> {
    let topics = subscription_topics(&identity.service, &identity.instance);
    let mut sub = transport.subscribe_topics(&topics).await?;
    tracing::info!(instance = %identity.instance, "control listening");
    let addr = ControlActor {
        identity,
        workers,
        lifecycle,
    }
    .start();
    let actor = addr.clone();
    actix::spawn(async move {
        while let Some(delivery) = sub.next().await {
            let reply =
                match serde_json::from_value::<ControlRequest>(delivery.envelope.payload.clone()) {
                    Ok(req) => match actor.send(Command(req.command)).await {
                        Ok(reply) => reply,
                        Err(e) => {
                            tracing::error!(error = %e, "control actor gone");
                            break;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "malformed control command");
                        let _ = delivery.responder.reject(false).await;
                        continue;
                    }
                };
            match delivery.envelope.reply(&reply) {
                Ok(env) => {
                    let _ = delivery.responder.reply(env).await;
                }
                Err(e) => tracing::error!(error = %e, "cannot encode control reply"),
            }
        }
    });
    Ok(addr)
}
