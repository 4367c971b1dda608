use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Metadata that travels with every message, whatever the transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    pub message_id: Uuid,
    /// The message type, e.g. `registry.get_image`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Contract version of the payload.
    pub version: u16,
    /// Set on replies: the `message_id` of the request answered.
    #[serde(default)]
    pub correlation_id: Option<Uuid>,
    /// The HTTP request id (`x-openstack-request-id`) that caused this message.
    #[serde(default)]
    pub request_id: Option<String>,
    pub sent_at: DateTime<Utc>,
    /// Extra headers (trace context and the like); unknown keys are kept.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// A message on the bus: headers plus a JSON payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub headers: Headers,
    pub payload: serde_json::Value,
}

impl Envelope {
    pub const VERSION: u16 = 1;

    pub fn new<T: Serialize>(
        kind: &str,
        request_id: Option<String>,
        payload: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::with_value(
            kind,
            request_id,
            serde_json::to_value(payload)?,
        ))
    }

    fn with_value(kind: &str, request_id: Option<String>, payload: serde_json::Value) -> Self {
        Self {
            headers: Headers {
                message_id: Uuid::new_v4(),
                kind: kind.to_owned(),
                version: Self::VERSION,
                correlation_id: None,
                request_id,
                sent_at: Utc::now(),
                extra: BTreeMap::new(),
            },
            payload,
        }
    }

    /// A reply to `self`, carrying its request id and correlated to its message id.
    pub fn reply<T: Serialize>(&self, payload: &T) -> Result<Self, serde_json::Error> {
        Ok(self.reply_value(serde_json::to_value(payload)?))
    }

    /// [`Envelope::reply`] with a payload already in JSON form.
    pub fn reply_value(&self, payload: serde_json::Value) -> Self {
        let mut reply = Envelope::with_value(
            &format!("{}.reply", self.headers.kind),
            self.headers.request_id.clone(),
            payload,
        );
        reply.headers.correlation_id = Some(self.headers.message_id);
        reply
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_correlated_to_its_request() {
        let req = Envelope::new("x.ping", Some("req-1".into()), &1).unwrap();
        let rep = req.reply(&2).unwrap();
        assert_eq!(rep.headers.correlation_id, Some(req.headers.message_id));
        assert_eq!(rep.headers.request_id.as_deref(), Some("req-1"));
        assert_eq!(rep.headers.kind, "x.ping.reply");
    }

    #[test]
    fn an_envelope_round_trips_through_bytes() {
        let req = Envelope::new("x.ping", None, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(Envelope::from_bytes(&req.to_bytes()).unwrap(), req);
    }
}
