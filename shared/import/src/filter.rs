//! `[import_filtering_opts]`: which URLs web-download may fetch (Glance's
//! `validate_import_uri`), applied to the URL a user gives and to every redirect hop.

use glance_config::RawConfig;
use url::{Host, Url};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriFilter {
    pub allowed_schemes: Vec<String>,
    pub disallowed_schemes: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub disallowed_hosts: Vec<String>,
    pub allowed_ports: Vec<u16>,
    pub disallowed_ports: Vec<u16>,
}

impl UriFilter {
    pub fn from_raw(raw: &RawConfig) -> Result<Self, String> {
        let r = raw.reader();
        let s = "import_filtering_opts";
        // Glance's list syntax (`[a, b]`, `['a', 'b']`, `[]`) as well as `a, b`.
        let list = |option: &str| glance_store::glance_list(raw, s, option);
        let ports = |option: &str| -> Result<Vec<u16>, String> {
            list(option)
                .iter()
                .map(|p| {
                    p.parse::<u16>()
                        .map_err(|e| r.invalid(s, option, &e.to_string()).to_string())
                })
                .collect()
        };
        let lower = |option: &str| -> Vec<String> {
            list(option)
                .into_iter()
                .map(|v| v.to_ascii_lowercase())
                .collect()
        };
        Ok(Self {
            allowed_schemes: lower("allowed_schemes"),
            disallowed_schemes: lower("disallowed_schemes"),
            allowed_hosts: lower("allowed_hosts"),
            disallowed_hosts: lower("disallowed_hosts"),
            allowed_ports: ports("allowed_ports")?,
            disallowed_ports: ports("disallowed_ports")?,
        })
    }

    /// Whether `uri` passes. As in Glance, an allow list makes its deny list moot, and a
    /// URL without an explicit port is not checked against the port lists.
    pub fn allows_str(&self, uri: &str) -> bool {
        Url::parse(uri).is_ok_and(|url| self.allows(&url))
    }

    pub fn allows(&self, url: &Url) -> bool {
        let scheme = url.scheme();
        let listed = |allow: &[String], deny: &[String], v: &str| {
            if allow.is_empty() {
                !deny.iter().any(|d| d == v)
            } else {
                allow.iter().any(|a| a == v)
            }
        };
        if !listed(&self.allowed_schemes, &self.disallowed_schemes, scheme) {
            return false;
        }
        // The url crate has already normalised the host: lower case, and IPv4 in any of
        // its odd spellings (0x7f.1, 2130706433) as dotted quads.
        let host = match url.host() {
            Some(Host::Domain(d)) => d.trim_end_matches('.').to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return false,
        };
        if host.is_empty() || !listed(&self.allowed_hosts, &self.disallowed_hosts, &host) {
            return false;
        }
        match url.port() {
            None => true,
            Some(port) if self.allowed_ports.is_empty() => !self.disallowed_ports.contains(&port),
            Some(port) => self.allowed_ports.contains(&port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glance_defaults() -> UriFilter {
        UriFilter::from_raw(&RawConfig::defaults()).unwrap()
    }

    #[test]
    fn glance_defaults_take_http_and_https_on_their_ports() {
        let f = glance_defaults();
        assert!(f.allows_str("https://example.com/cirros.img"));
        assert!(f.allows_str("http://example.com:80/cirros.img"));
        assert!(!f.allows_str("http://example.com:8080/cirros.img"));
        assert!(!f.allows_str("ftp://example.com/cirros.img"));
        assert!(!f.allows_str("file:///etc/passwd"));
        assert!(!f.allows_str("not a url"));
    }

    #[test]
    fn a_denied_host_is_denied_in_every_spelling() {
        let f = UriFilter {
            disallowed_hosts: vec!["127.0.0.1".into(), "localhost".into()],
            ..glance_defaults()
        };
        assert!(!f.allows_str("http://127.0.0.1/x"));
        assert!(!f.allows_str("http://0x7f.1/x"));
        assert!(!f.allows_str("http://2130706433/x"));
        assert!(!f.allows_str("http://LOCALHOST./x"));
        assert!(f.allows_str("http://example.com/x"));
    }

    #[test]
    fn an_allow_list_wins_over_a_deny_list() {
        let f = UriFilter {
            allowed_hosts: vec!["images.example.com".into()],
            disallowed_hosts: vec!["images.example.com".into()],
            ..glance_defaults()
        };
        assert!(f.allows_str("https://images.example.com/x"));
        assert!(!f.allows_str("https://other.example.com/x"));
    }
}
