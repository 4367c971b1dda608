use serde::{Deserialize, Serialize};

/// Who is asking, as established by the API's identity layer. It travels with every bus
/// request so the registry can apply visibility without trusting anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The domains of the user and of the project (Keystone tokens name them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_domain_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_domain_id: Option<String>,
    /// Set for a domain-scoped token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
    /// Keystone's `is_admin_project`; true unless a token says otherwise, as oslo.context
    /// reads it.
    #[serde(default = "yes")]
    pub is_admin_project: bool,
}

fn yes() -> bool {
    true
}

impl Default for RequestContext {
    fn default() -> Self {
        Self {
            request_id: String::new(),
            user_id: None,
            project_id: None,
            roles: Vec::new(),
            is_admin: false,
            user_domain_id: None,
            project_domain_id: None,
            domain_id: None,
            is_admin_project: true,
        }
    }
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
