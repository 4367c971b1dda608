//! Tasks (Glance's `tasks` table) and the import work that drives them.
//!
//! The registry keeps task records; the API creates them and the import workers move them
//! through Glance's status machine (`pending -> processing -> success | failure`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use glance_domain::{ImageId, RequestContext};
use serde::{Deserialize, Serialize};

use crate::registry::RegistryResult;
use crate::{names::REGISTRY_QUEUE, Rpc, Work};

/// Work queue the import workers consume (competing consumers, durable).
pub const IMPORT_QUEUE: &str = "glance.v1.import";
/// Routing key of import work on the work exchange.
pub const IMPORT_KEY: &str = "import.image";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Processing,
    Success,
    Failure,
}

impl TaskStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Success => "success",
            TaskStatus::Failure => "failure",
        }
    }

    /// Glance's `Task._validate_task_status_transition`.
    pub fn can_transition_to(&self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, next),
            (Pending, Processing) | (Pending, Failure) | (Processing, Success | Failure)
        ) || *self == next
    }

    pub fn is_final(&self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failure)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "processing" => Ok(Self::Processing),
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            other => Err(format!("invalid task status {other}")),
        }
    }
}

/// A task record with Glance's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    /// `api_image_import` for imports (Glance's internal task type).
    #[serde(rename = "type")]
    pub kind: String,
    pub status: TaskStatus,
    pub input: serde_json::Value,
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub image_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl Task {
    pub const IMPORT_TYPE: &'static str = "api_image_import";
}

/// Insert a new task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateTask {
    pub ctx: RequestContext,
    pub task: Task,
}

impl Rpc for CreateTask {
    const NAME: &'static str = "registry.create_task";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Task>;
}

/// One task the caller may see (its owner's, or any for an admin). Expired tasks are
/// gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetTask {
    pub ctx: RequestContext,
    pub id: String,
}

impl Rpc for GetTask {
    const NAME: &'static str = "registry.get_task";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Task>;
}

/// Tasks the caller may see, newest first, optionally of one image or status. As in
/// Glance's `task_get_all`, listing first soft-deletes the tasks whose `expires_at` passed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListTasks {
    pub ctx: RequestContext,
    #[serde(default)]
    pub image_id: Option<ImageId>,
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Only tasks not updated since (stale-task recovery).
    #[serde(default)]
    pub updated_before: Option<DateTime<Utc>>,
    #[serde(default)]
    pub marker: Option<String>,
    pub limit: u32,
    /// Ascending by `sort_key` when true.
    #[serde(default)]
    pub ascending: bool,
    /// One of [`TASK_SORT_KEYS`]; `created_at` when absent.
    #[serde(default)]
    pub sort_key: Option<String>,
}

/// The keys Glance lets a task list sort by.
pub const TASK_SORT_KEYS: &[&str] = &[
    "id",
    "type",
    "status",
    "owner",
    "expires_at",
    "created_at",
    "updated_at",
];

impl Rpc for ListTasks {
    const NAME: &'static str = "registry.list_tasks";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Vec<Task>>;
}

/// Saves a task's status, result and message; with `from_status`, only if the stored
/// status still equals it (a lost race is `Conflict`). Finishing a task sets its
/// `expires_at` to now + `ttl_hours`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaveTask {
    pub ctx: RequestContext,
    pub task: Task,
    #[serde(default)]
    pub from_status: Option<TaskStatus>,
    pub ttl_hours: u32,
}

impl Rpc for SaveTask {
    const NAME: &'static str = "registry.save_task";
    const QUEUE: &'static str = REGISTRY_QUEUE;
    type Reply = RegistryResult<Task>;
}

/// How the data of an import arrives (the body's `method`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum ImportMethod {
    GlanceDirect,
    WebDownload {
        uri: String,
    },
    CopyImage,
    /// An image of the Glance of another region, by id (Images API 2.15).
    GlanceDownload {
        glance_image_id: String,
        glance_region: String,
        /// Which endpoint of the catalog: `public` (Glance's default), `internal`, `admin`.
        #[serde(default = "public")]
        glance_service_interface: String,
    },
}

fn public() -> String {
    "public".into()
}

impl ImportMethod {
    pub fn name(&self) -> &'static str {
        match self {
            ImportMethod::GlanceDirect => "glance-direct",
            ImportMethod::WebDownload { .. } => "web-download",
            ImportMethod::CopyImage => "copy-image",
            ImportMethod::GlanceDownload { .. } => "glance-download",
        }
    }
}

/// One import to run: published by the API after it created the task and took the image's
/// import lock; consumed by exactly one import worker. Redelivered to another worker if the
/// first dies, so running it twice must be harmless.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportImage {
    pub task_id: String,
    pub image_id: ImageId,
    pub method: ImportMethod,
    /// Target store ids; empty means the single (default) store.
    #[serde(default)]
    pub stores: Vec<String>,
    #[serde(default = "yes")]
    pub all_stores_must_succeed: bool,
    /// The caller, for the record; workers act with an admin context.
    pub ctx: RequestContext,
    /// glance-download only: how to reach the other region as the caller. Never in the
    /// task's input, logs or notifications (see ARCHITECTURE.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteGlance>,
}

/// Where the image of a glance-download is and the caller's token to read it with: the
/// remote Glance checks the caller's rights there, as Glance does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteGlance {
    /// The region's image endpoint from the caller's service catalog; `None` when the
    /// catalog has none, which fails the task as Glance's `GlanceEndpointNotFound` does.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub token: Option<SecretToken>,
    /// The image when the import was accepted: what a failure puts back, whichever attempt
    /// fails (a rerun finds the remote's formats and properties already on the image).
    #[serde(default)]
    pub before: ImageBefore,
}

/// The fields glance-download may change, as the image had them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBefore {
    #[serde(default)]
    pub disk_format: Option<glance_domain::DiskFormat>,
    #[serde(default)]
    pub container_format: Option<glance_domain::ContainerFormat>,
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

/// A Keystone token: serialized as itself (the worker needs it), shown as `***` by
/// `Debug`, so logging a message or a context never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretToken(String);

impl SecretToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(***)")
    }
}

fn yes() -> bool {
    true
}

impl Work for ImportImage {
    const NAME: &'static str = "import.image";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_task_never_changes_status() {
        assert!(TaskStatus::Pending.can_transition_to(TaskStatus::Processing));
        assert!(TaskStatus::Processing.can_transition_to(TaskStatus::Failure));
        assert!(!TaskStatus::Success.can_transition_to(TaskStatus::Processing));
        assert!(!TaskStatus::Failure.can_transition_to(TaskStatus::Success));
    }

    #[test]
    fn import_methods_use_glance_names_on_the_wire() {
        let m: ImportMethod =
            serde_json::from_value(serde_json::json!({"name": "web-download", "uri": "http://x/"}))
                .unwrap();
        assert_eq!(
            m,
            ImportMethod::WebDownload {
                uri: "http://x/".into()
            }
        );
        let json = serde_json::to_value(ImportMethod::CopyImage).unwrap();
        assert_eq!(json["name"], "copy-image");
        let m: ImportMethod = serde_json::from_value(serde_json::json!({
            "name": "glance-download", "glance_image_id": "i", "glance_region": "RegionTwo"
        }))
        .unwrap();
        assert_eq!(m.name(), "glance-download");
        assert!(matches!(
            m,
            ImportMethod::GlanceDownload { glance_service_interface, .. } if glance_service_interface == "public"
        ));
    }

    #[test]
    fn a_token_travels_in_the_message_but_never_shows_in_debug_output() {
        let remote = RemoteGlance {
            endpoint: Some("http://two:9292".into()),
            token: Some(SecretToken::new("gAAAA-secret")),
            before: ImageBefore::default(),
        };
        assert!(!format!("{remote:?}").contains("gAAAA-secret"));
        let json = serde_json::to_value(&remote).unwrap();
        assert_eq!(json["token"], "gAAAA-secret");
    }

    #[test]
    fn a_redelivered_glance_download_still_has_the_token_and_the_image_before() {
        let mut before = ImageBefore {
            disk_format: Some(glance_domain::DiskFormat::Qcow2),
            ..Default::default()
        };
        before
            .properties
            .insert("hw_machine_type".into(), "pc".into());
        let work = ImportImage {
            task_id: "t".into(),
            image_id: ImageId::new(),
            method: ImportMethod::GlanceDownload {
                glance_image_id: "i".into(),
                glance_region: "RegionTwo".into(),
                glance_service_interface: "public".into(),
            },
            stores: vec![],
            all_stores_must_succeed: true,
            ctx: RequestContext::default(),
            remote: Some(RemoteGlance {
                endpoint: Some("http://two:9292".into()),
                token: Some(SecretToken::new("gAAAA-secret")),
                before: before.clone(),
            }),
        };
        assert!(!format!("{work:?}").contains("gAAAA-secret"));
        let again: ImportImage =
            serde_json::from_slice(&serde_json::to_vec(&work).unwrap()).unwrap();
        let remote = again.remote.unwrap();
        assert_eq!(remote.token.unwrap().expose(), "gAAAA-secret");
        assert_eq!(remote.before, before);
        // Messages of other methods (and older senders) have no `remote` at all.
        let plain = ImportImage {
            remote: None,
            method: ImportMethod::GlanceDirect,
            ..again
        };
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("remote").is_none(), "{json}");
    }
}
