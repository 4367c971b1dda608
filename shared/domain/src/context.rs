use serde::{Deserialize, Serialize};

/// Who is asking, as established by the API's identity layer. It travels with every bus
/// request so the registry can apply visibility without trusting anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The `x-openstack-request-id` of the HTTP request that started this work.
    pub request_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub is_admin: bool,
}

impl RequestContext {
    /// A context with every right, for services acting on their own behalf.
    pub fn admin(request_id: impl Into<String>) -> Self {
        Self {
            request_id: request_id.into(),
            roles: vec!["admin".into()],
            is_admin: true,
            ..Self::default()
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// Whether this caller owns an image with `owner`.
    pub fn owns(&self, owner: Option<&str>) -> bool {
        matches!((self.project_id.as_deref(), owner), (Some(p), Some(o)) if p == o)
    }
}
