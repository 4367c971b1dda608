//! Control commands (`glance-control`), broadcast to live instances instead of PID signals.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `glance-control SERVICE COMMAND` asks of running instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlCommand {
    Status,
    /// Re-read configuration files; a bad file is refused and the old settings kept.
    Reload,
    /// Stop taking work, finish what is in flight, exit 0.
    Shutdown,
    /// Exit promptly.
    Stop,
    /// Drain, then re-execute the same binary with the same arguments.
    Restart,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlRequest {
    pub command: ControlCommand,
}

/// Who answered, and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub service: String,
    pub instance: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub uptime_secs: u64,
    /// Requests or messages being worked on right now.
    pub in_flight: u64,
    /// Service-specific figures (queue depth, bytes cached, backlog...).
    #[serde(default)]
    pub detail: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReply {
    pub status: InstanceStatus,
    pub ok: bool,
    pub message: String,
}

pub const CONTROL_KIND: &str = "control.command";

/// The topic a command for `service` (or `all`) and optionally one instance is sent to.
pub fn topic(service: &str, instance: Option<&str>) -> String {
    format!("control.{service}.{}", instance.unwrap_or("all"))
}

/// Every topic an instance listens on.
pub fn subscription_topics(service: &str, instance: &str) -> Vec<String> {
    vec![
        topic("all", None),
        topic(service, None),
        topic(service, Some(instance)),
        topic("all", Some(instance)),
    ]
}
