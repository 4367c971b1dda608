//! Notifications, in the shape of Glance's (oslo.messaging) so an operator's consumers read
//! them unchanged: `event_type` (`image.create`, `image.delete`, ...), `publisher_id`,
//! `priority`, `timestamp` and a `payload` with Glance's fields for the event.

use serde::{Deserialize, Serialize};

use crate::Event;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event_type: String,
    /// `image.<host>` in Glance.
    pub publisher_id: String,
    /// `INFO`, `WARN` or `ERROR`.
    pub priority: String,
    /// `%Y-%m-%d %H:%M:%S.%f`, UTC, as oslo.messaging writes it.
    pub timestamp: String,
    pub payload: serde_json::Value,
}

impl Event for Notification {
    fn topic(&self) -> &str {
        &self.event_type
    }
}
