//! Keystone's token document (`{"token": {...}}`) as the fields we use.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What a validated (or freshly issued) token says about its bearer.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub user_id: String,
    pub user_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub user_domain_name: Option<String>,
    /// Set for a project-scoped token.
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub project_domain_name: Option<String>,
    /// Set for a domain-scoped token.
    pub domain_id: Option<String>,
    pub domain_name: Option<String>,
    /// `Some("all")` for a system-scoped token.
    pub system_scope: Option<String>,
    /// Role names as Keystone lists them, implied roles included, lower-cased.
    pub roles: Vec<String>,
    /// Keystone omits it unless an admin project is configured; absent means true, as
    /// keystonemiddleware and oslo.context read it.
    pub is_admin_project: bool,
    pub expires_at: DateTime<Utc>,
    /// The service catalog, when the token was validated or issued with it.
    pub catalog: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Document {
    token: Token,
}

#[derive(Deserialize)]
struct Token {
    user: Named,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    domain: Option<Reference>,
    #[serde(default)]
    system: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    roles: Vec<Reference>,
    #[serde(default)]
    is_admin_project: Option<bool>,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    catalog: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain: Option<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl TokenInfo {
    /// Parses Keystone's token document; `None` when it is not one.
    pub fn from_document(body: &[u8]) -> Option<Self> {
        let Document { token } = serde_json::from_slice(body).ok()?;
        let user_domain = token.user.domain.as_ref();
        let project = token.project.as_ref();
        let project_domain = project.and_then(|p| p.domain.as_ref());
        Some(Self {
            user_id: token.user.id.clone(),
            user_name: token.user.name.clone(),
            user_domain_id: user_domain.and_then(|d| d.id.clone()),
            user_domain_name: user_domain.and_then(|d| d.name.clone()),
            project_id: project.map(|p| p.id.clone()),
            project_name: project.and_then(|p| p.name.clone()),
            project_domain_id: project_domain.and_then(|d| d.id.clone()),
            project_domain_name: project_domain.and_then(|d| d.name.clone()),
            domain_id: token.domain.as_ref().and_then(|d| d.id.clone()),
            domain_name: token.domain.as_ref().and_then(|d| d.name.clone()),
            system_scope: token.system.as_ref().and_then(|s| s.keys().next().cloned()),
            roles: token
                .roles
                .iter()
                .filter_map(|r| r.name.as_deref())
                .map(str::to_ascii_lowercase)
                .collect(),
            is_admin_project: token.is_admin_project.unwrap_or(true),
            expires_at: token.expires_at,
            catalog: token.catalog,
        })
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at <= now
    }

    /// The URL of the first endpoint of service `service_type` for `interface` (`public`,
    /// `internal`, `admin`) in `region` (any region when `None`), from the catalog.
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: &str,
        region: Option<&str>,
    ) -> Option<String> {
        let services = self.catalog.as_ref()?.as_array()?;
        services
            .iter()
            .filter(|s| s.get("type").and_then(|t| t.as_str()) == Some(service_type))
            .filter_map(|s| s.get("endpoints").and_then(|e| e.as_array()))
            .flatten()
            .filter(|e| e.get("interface").and_then(|i| i.as_str()) == Some(interface))
            .find(|e| {
                region.is_none_or(|want| {
                    ["region_id", "region"]
                        .iter()
                        .any(|k| e.get(*k).and_then(|r| r.as_str()) == Some(want))
                })
            })
            .and_then(|e| e.get("url").and_then(|u| u.as_str()))
            .map(|u| u.trim_end_matches('/').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = r#"{"token": {"methods": ["password"],
        "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": "demo",
                 "password_expires_at": null},
        "audit_ids": ["a"], "expires_at": "2026-12-06T12:29:03.000000Z",
        "issued_at": "2026-12-06T11:29:03.000000Z",
        "project": {"domain": {"id": "default", "name": "Default"}, "id": "p1", "name": "demo"},
        "is_domain": false,
        "roles": [{"id": "r1", "name": "Member"}, {"id": "r2", "name": "reader"}],
        "is_admin_project": false,
        "catalog": [{"type": "image", "name": "glance", "id": "s1", "endpoints": [
            {"id": "e1", "interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": "http://int:9292"},
            {"id": "e2", "interface": "public", "region_id": "RegionTwo", "region": "RegionTwo", "url": "http://two:9292/"},
            {"id": "e3", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": "http://one:9292/"}]}]}}"#;

    #[test]
    fn a_project_token_names_its_user_project_domains_and_roles() {
        let t = TokenInfo::from_document(DEMO.as_bytes()).unwrap();
        assert_eq!(t.user_id, "u1");
        assert_eq!(t.user_domain_id.as_deref(), Some("default"));
        assert_eq!(t.project_id.as_deref(), Some("p1"));
        assert_eq!(t.project_domain_name.as_deref(), Some("Default"));
        assert_eq!(t.roles, vec!["member", "reader"]);
        assert!(!t.is_admin_project);
        assert_eq!(t.expires_at.to_rfc3339(), "2026-12-06T12:29:03+00:00");
        assert!(t.domain_id.is_none() && t.system_scope.is_none());
    }

    #[test]
    fn the_catalog_finds_an_endpoint_by_type_interface_and_region() {
        let t = TokenInfo::from_document(DEMO.as_bytes()).unwrap();
        assert_eq!(
            t.endpoint("image", "public", Some("RegionOne")).as_deref(),
            Some("http://one:9292")
        );
        assert_eq!(
            t.endpoint("image", "public", None).as_deref(),
            Some("http://two:9292")
        );
        assert_eq!(t.endpoint("image", "admin", None), None);
        assert_eq!(t.endpoint("compute", "public", None), None);
    }

    #[test]
    fn a_system_token_without_is_admin_project_counts_as_admin_project() {
        let doc = r#"{"token": {"user": {"id": "u"}, "system": {"all": true},
            "roles": [{"id": "r", "name": "admin"}], "expires_at": "2030-01-01T00:00:00Z"}}"#;
        let t = TokenInfo::from_document(doc.as_bytes()).unwrap();
        assert_eq!(t.system_scope.as_deref(), Some("all"));
        assert!(t.is_admin_project);
        assert!(t.project_id.is_none());
    }

    #[test]
    fn anything_else_is_not_a_token() {
        assert!(TokenInfo::from_document(b"{}").is_none());
        assert!(TokenInfo::from_document(b"not json").is_none());
        assert!(TokenInfo::from_document(br#"{"token": {"user": {"id": "u"}}}"#).is_none());
    }
}
