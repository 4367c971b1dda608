//! Glance's notifications (`image.create`, `image.delete`, ..., `task.create`,
//! `task.success`, ...) on the bus's event exchange, with Glance's payloads
//! (`glance/notifier.py`), so cache workers on every node and an operator's own consumers
//! learn what happened to an image or an import task.
//!
//! Publishing is best effort: a refused or slow publish is logged and the request goes on.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use glance_bus::Bus;
use glance_config::RawConfig;
use glance_domain::{Image, ImageStatus, RequestContext};
use glance_proto::events::Notification;
use glance_proto::registry::ImageMember;
use glance_proto::tasks::Task;
use serde_json::{json, Value};

/// Longest a request waits for the bus to take one notification.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// Which notifications to send: `[oslo_messaging_notifications] driver` (`noop` sends none)
/// and `[DEFAULT] disabled_notifications`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub enabled: bool,
    pub disabled: Vec<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            disabled: Vec::new(),
        }
    }
}

impl NotifyConfig {
    pub fn from_raw(raw: &RawConfig) -> Self {
        let r = raw.reader();
        let drivers = r.list("oslo_messaging_notifications", "driver");
        Self {
            enabled: !drivers.is_empty() && drivers.iter().any(|d| d != "noop"),
            disabled: r.list("DEFAULT", "disabled_notifications"),
        }
    }

    /// Glance disables an exact type or a group, the group being the text before the first
    /// dot; we also accept longer prefixes (`image.member`) and `image.*`, which Glance
    /// documents but does not honour.
    pub fn allows(&self, event_type: &str) -> bool {
        self.enabled
            && !self.disabled.iter().any(|d| {
                let d = d.trim_end_matches(".*");
                event_type == d
                    || event_type
                        .strip_prefix(d)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    }
}

/// Publishes notifications for one API process. Cheap to clone; clones share one
/// configuration, which `glance-control api reload` replaces.
#[derive(Clone)]
pub struct Notifier {
    bus: Bus,
    config: Arc<RwLock<Arc<NotifyConfig>>>,
    publisher_id: String,
}

impl Notifier {
    /// The image API's: publisher `image.<host>`.
    pub fn new(bus: Bus, config: NotifyConfig) -> Self {
        Self::for_service(bus, config, "image")
    }

    /// Publisher `<service>.<host>` (`artifact` for the glare service, as Glare's
    /// `glare_publisher_id`).
    pub fn for_service(bus: Bus, config: NotifyConfig, service: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Self {
            bus,
            config: Arc::new(RwLock::new(Arc::new(config))),
            publisher_id: format!("{service}.{host}"),
        }
    }

    /// `image.create`, `image.update`, `image.prepare`, `image.upload`, `image.activate`.
    pub async fn image(&self, ctx: &RequestContext, event_type: &str, image: &Image) {
        self.info(ctx, event_type, image_payload(image)).await;
    }

    /// What a save from `from` to the saved image's status announces. Every save is an
    /// `image.update` (Glance's `ImageRepoProxy.save`); an upload is, as in Glance: update
    /// (saving), prepare, [data], upload, activate, update (active).
    pub async fn image_saved(
        &self,
        ctx: &RequestContext,
        from: Option<ImageStatus>,
        saved: &Image,
    ) {
        match (from, saved.status) {
            (Some(ImageStatus::Queued), ImageStatus::Saving) => {
                self.image(ctx, "image.update", saved).await;
                self.image(ctx, "image.prepare", saved).await;
            }
            (Some(ImageStatus::Saving), ImageStatus::Active) => {
                self.image(ctx, "image.upload", saved).await;
                self.image(ctx, "image.activate", saved).await;
                self.image(ctx, "image.update", saved).await;
            }
            _ => self.image(ctx, "image.update", saved).await,
        }
    }

    /// `image.delete`: the image as it was, `deleted: true` and the time of the delete.
    pub async fn image_deleted(&self, ctx: &RequestContext, image: &Image) {
        let mut payload = image_payload(image);
        payload["deleted"] = json!(true);
        payload["deleted_at"] = json!(isotime(image.deleted_at.unwrap_or_else(Utc::now)));
        self.info(ctx, "image.delete", payload).await;
    }

    /// `image.send` after a download: `INFO` when every byte went out, `ERROR` otherwise.
    pub async fn image_sent(
        &self,
        ctx: &RequestContext,
        image: &Image,
        bytes_sent: u64,
        expected: u64,
        destination_ip: Option<&str>,
    ) {
        let priority = if bytes_sent == expected {
            "INFO"
        } else {
            "ERROR"
        };
        self.publish(
            ctx,
            "image.send",
            priority,
            send_payload(ctx, image, bytes_sent, destination_ip),
        )
        .await;
    }

    /// `image.member.create`, `image.member.update`, `image.member.delete` (the members API
    /// calls this; a delete is flagged in the payload as in Glance).
    pub async fn member(&self, ctx: &RequestContext, event_type: &str, member: &ImageMember) {
        let deleted = event_type == "image.member.delete";
        self.info(ctx, event_type, member_payload(member, deleted))
            .await;
    }

    /// `task.create` when a task is added, then `task.processing`, `task.success` or
    /// `task.failure` as it moves (Glance's `TaskRepoProxy` and `TaskProxy`).
    pub async fn task(&self, ctx: &RequestContext, event_type: &str, task: &Task) {
        self.info(ctx, event_type, task_payload(task)).await;
    }

    pub fn allows(&self, event_type: &str) -> bool {
        self.config().allows(event_type)
    }

    /// Which notifications are sent from now on (a reload); every clone sees it.
    pub fn set_config(&self, config: NotifyConfig) {
        *self.config.write().expect("notify config lock poisoned") = Arc::new(config);
    }

    fn config(&self) -> Arc<NotifyConfig> {
        self.config
            .read()
            .expect("notify config lock poisoned")
            .clone()
    }

    /// Any `INFO` notification with the payload given.
    pub async fn info(&self, ctx: &RequestContext, event_type: &str, payload: Value) {
        self.publish(ctx, event_type, "INFO", payload).await;
    }

    async fn publish(
        &self,
        ctx: &RequestContext,
        event_type: &str,
        priority: &str,
        payload: Value,
    ) {
        if !self.allows(event_type) {
            return;
        }
        let event = Notification {
            event_type: event_type.to_owned(),
            publisher_id: self.publisher_id.clone(),
            priority: priority.to_owned(),
            timestamp: Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            payload,
        };
        let sent = self.bus.publish_event(Some(ctx.request_id.clone()), &event);
        match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(event_type, error = %e, "notification not sent");
            }
            Err(_) => tracing::warn!(event_type, "notification not sent: the bus is slow"),
        }
    }
}

/// oslo's `timeutils.isotime`: seconds, `Z`.
fn isotime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Glance's `format_image_notification`. Locations are left out: they may hold credentials.
pub fn image_payload(image: &Image) -> Value {
    json!({
        "id": image.id.to_string(),
        "name": image.name,
        "status": image.status.as_str(),
        "created_at": isotime(image.created_at),
        "updated_at": isotime(image.updated_at),
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "protected": image.protected,
        "checksum": image.checksum,
        "owner": image.owner,
        "disk_format": image.disk_format.map(|f| f.as_str()),
        "container_format": image.container_format.map(|f| f.as_str()),
        "size": image.size,
        "virtual_size": image.virtual_size,
        "is_public": image.visibility == glance_domain::Visibility::Public,
        "visibility": image.visibility.as_str(),
        "properties": image.properties,
        "tags": image.tags,
        "deleted": false,
        "deleted_at": null,
        "os_hidden": image.os_hidden,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
    })
}

/// Glance's `format_task_notification`. As in Glance, the input (a web-download URI may
/// carry credentials), result and message are left out (`null`); we add the image, request
/// and user the task belongs to, which Glance's payload lacks. An unset `expires_at` is
/// `null` (Glance's `isotime(None)` would print the current time).
pub fn task_payload(task: &Task) -> Value {
    json!({
        "id": task.id,
        "type": task.kind,
        "status": task.status.as_str(),
        "result": null,
        "owner": task.owner,
        "message": null,
        "expires_at": task.expires_at.map(isotime),
        "created_at": isotime(task.created_at),
        "updated_at": isotime(task.updated_at),
        "deleted": false,
        "deleted_at": null,
        "image_id": task.image_id,
        "request_id": task.request_id,
        "user_id": task.user_id,
    })
}

/// Glance's `image.send` payload.
pub fn send_payload(
    ctx: &RequestContext,
    image: &Image,
    bytes_sent: u64,
    destination_ip: Option<&str>,
) -> Value {
    let mut payload = json!({
        "bytes_sent": bytes_sent,
        "image_id": image.id.to_string(),
        "owner_id": image.owner,
        "receiver_tenant_id": ctx.project_id,
        "receiver_user_id": ctx.user_id,
    });
    if let Some(ip) = destination_ip {
        payload["destination_ip"] = json!(ip);
    }
    payload
}

/// Glance's `format_image_member_notification`.
pub fn member_payload(member: &ImageMember, deleted: bool) -> Value {
    json!({
        "image_id": member.image_id.to_string(),
        "member_id": member.member_id,
        "status": member.status.as_str(),
        "created_at": isotime(member.created_at),
        "updated_at": isotime(member.updated_at),
        "deleted": deleted,
        "deleted_at": deleted.then(|| isotime(Utc::now())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(driver: &str, disabled: &str) -> NotifyConfig {
        let mut raw = RawConfig::defaults();
        raw.set("oslo_messaging_notifications", "driver", driver);
        raw.set("DEFAULT", "disabled_notifications", disabled);
        NotifyConfig::from_raw(&raw)
    }

    #[test]
    fn the_noop_driver_sends_nothing() {
        assert!(!config("noop", "").allows("image.create"));
        assert!(config("messagingv2", "").allows("image.create"));
    }

    #[test]
    fn a_disabled_group_covers_its_event_types_only() {
        let c = config("messagingv2", "image.create,task");
        assert!(!c.allows("image.create"));
        assert!(c.allows("image.created_elsewhere"));
        assert!(!c.allows("task.run"));
        assert!(c.allows("image.update"));
        let c = config("messagingv2", "image.member,image.*");
        assert!(!c.allows("image.member.create"));
        assert!(!c.allows("image.delete"));
    }

    #[test]
    fn the_image_payload_has_glances_fields_and_no_locations() {
        let image = Image::new(glance_domain::ImageId::new(), Some("p1".into()), Utc::now());
        let payload = image_payload(&image);
        for key in [
            "id",
            "name",
            "status",
            "created_at",
            "updated_at",
            "min_disk",
            "min_ram",
            "protected",
            "checksum",
            "owner",
            "disk_format",
            "container_format",
            "size",
            "virtual_size",
            "is_public",
            "visibility",
            "properties",
            "tags",
            "deleted",
            "deleted_at",
            "os_hidden",
            "os_hash_algo",
            "os_hash_value",
        ] {
            assert!(payload.get(key).is_some(), "{key} missing");
        }
        assert!(payload.get("locations").is_none());
        assert_eq!(payload["status"], "queued");
    }

    #[test]
    fn the_task_payload_has_glances_fields_and_no_input() {
        let now = Utc::now();
        let task = Task {
            id: "t1".into(),
            kind: Task::IMPORT_TYPE.into(),
            status: glance_proto::tasks::TaskStatus::Failure,
            input: json!({"import_req": {"method": {"uri": "http://user:secret@host/x"}}}),
            result: None,
            message: "it broke".into(),
            owner: Some("p1".into()),
            expires_at: None,
            created_at: now,
            updated_at: now,
            image_id: Some("i1".into()),
            request_id: Some("req-1".into()),
            user_id: Some("u1".into()),
        };
        let payload = task_payload(&task);
        for key in [
            "id",
            "type",
            "status",
            "result",
            "owner",
            "message",
            "expires_at",
            "created_at",
            "updated_at",
            "deleted",
            "deleted_at",
        ] {
            assert!(payload.get(key).is_some(), "{key} missing");
        }
        assert_eq!(payload["type"], "api_image_import");
        assert_eq!(payload["status"], "failure");
        assert_eq!(payload["image_id"], "i1");
        assert!(payload.get("input").is_none());
        assert!(!payload.to_string().contains("secret"));
    }
}
