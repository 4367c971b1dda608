//! `auth_strategy = keystone`: `X-Auth-Token` validated against Keystone in-process, the way
//! keystonemiddleware's `auth_token` does it, configured from `[keystone_authtoken]` with its
//! option names so an operator's `glance-api.conf` carries over.
//!
//! * Our own service token (the `glance` user's password, `auth_type = password`) is issued
//!   on first use, cached, and renewed a minute before it expires; when Keystone refuses it
//!   we renew it once and try again, then log an error that names the options.
//! * A user's token is asked of Keystone once and the answer (valid with its identity, or
//!   invalid) is cached for `token_cache_time` seconds, never past the token's own expiry,
//!   in a cache bounded by `[glance_keystone] token_cache_size` entries. Concurrent requests
//!   with the same cold token make one call between them.
//! * Missing, invalid, expired and revoked tokens are 401 with `WWW-Authenticate: Keystone
//!   uri="<www_authenticate_uri>"`; Keystone down or failing is 503 with a log line naming
//!   the URL; neither is ever cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use glance_config::RawConfig;
use glance_keystone::{Identity, KeystoneError, PasswordAuth, TokenInfo};
use sha2::{Digest, Sha256};

/// With `auth_strategy = keystone`, gets the service token before serving: wrong
/// credentials stop the process with a message naming the options.
pub async fn check_at_start(config: &crate::ApiConfig) -> Result<(), String> {
    match (&config.auth_strategy, &config.keystone) {
        (glance_config::AuthStrategy::Keystone, Some(keystone)) => keystone.check_at_start().await,
        _ => Ok(()),
    }
}

/// `[keystone_authtoken]` (keystonemiddleware's names) and our `[glance_keystone]` bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneSettings {
    pub www_authenticate_uri: String,
    pub auth_url: String,
    pub service: PasswordAuth,
    pub region_name: Option<String>,
    /// Seconds a validation is reused; `None` (`-1`) disables the cache.
    pub token_cache_time: Option<u64>,
    pub service_token_roles: Vec<String>,
    pub service_token_roles_required: bool,
    pub include_service_catalog: bool,
    pub delay_auth_decision: bool,
    pub http_connect_timeout: Duration,
    pub token_cache_size: u64,
}

const SECTION: &str = "keystone_authtoken";

impl KeystoneSettings {
    /// `Ok(None)` when `[keystone_authtoken]` is not configured at all.
    pub fn from_raw(raw: &RawConfig) -> Result<Option<Self>, String> {
        let r = raw.reader();
        let get = |option: &str| r.opt_string(SECTION, option);
        let Some(auth_url) = get("auth_url") else {
            return Ok(None);
        };
        match get("auth_type").as_deref() {
            None | Some("password") | Some("v3password") => {}
            Some(other) => {
                return Err(format!(
                    "[{SECTION}] auth_type = {other} is not supported: use auth_type = password"
                ))
            }
        }
        let required = |option: &str| {
            get(option).ok_or_else(|| {
                format!(
                    "[{SECTION}] {option} is required with auth_url \
                     (the service user that validates tokens)"
                )
            })
        };
        let boolean = |option: &str, default: bool| -> Result<bool, String> {
            match get(option).map(|v| v.to_ascii_lowercase()).as_deref() {
                None => Ok(default),
                Some("true" | "yes" | "on" | "1") => Ok(true),
                Some("false" | "no" | "off" | "0") => Ok(false),
                Some(v) => Err(format!("[{SECTION}] {option}: {v:?} is not true or false")),
            }
        };
        let number = |section: &str, option: &str, default: i64| -> Result<i64, String> {
            r.opt_string(section, option).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("[{section}] {option}: {v:?} is not an integer"))
            })
        };
        let service = PasswordAuth {
            username: required("username")?,
            password: required("password")?,
            user_domain_name: get("user_domain_name"),
            user_domain_id: get("user_domain_id"),
            project_name: get("project_name"),
            project_id: get("project_id"),
            project_domain_name: get("project_domain_name"),
            project_domain_id: get("project_domain_id"),
        };
        if service.project_name.is_none() && service.project_id.is_none() {
            return Err(format!(
                "[{SECTION}] project_name (or project_id) is required: the service token \
                 must be project-scoped to validate tokens"
            ));
        }
        let cache_time = number(SECTION, "token_cache_time", 300)?;
        let cache_size = number("glance_keystone", "token_cache_size", 10_000)?;
        if cache_size < 1 {
            return Err("[glance_keystone] token_cache_size must be at least 1".into());
        }
        let timeout = number(SECTION, "http_connect_timeout", 10)?.max(1);
        Ok(Some(Self {
            www_authenticate_uri: get("www_authenticate_uri")
                .or_else(|| get("auth_uri"))
                .unwrap_or_else(|| auth_url.clone()),
            auth_url,
            service,
            region_name: get("region_name"),
            token_cache_time: u64::try_from(cache_time).ok(),
            service_token_roles: get("service_token_roles")
                .unwrap_or_else(|| "service".into())
                .split(',')
                .map(|r| r.trim().to_ascii_lowercase())
                .filter(|r| !r.is_empty())
                .collect(),
            service_token_roles_required: boolean("service_token_roles_required", false)?,
            include_service_catalog: boolean("include_service_catalog", true)?,
            delay_auth_decision: boolean("delay_auth_decision", false)?,
            http_connect_timeout: Duration::from_secs(timeout as u64),
            token_cache_size: cache_size as u64,
        }))
    }
}

/// Why a request has no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 401: no token, or one Keystone does not honour (or a service token without the
    /// required role).
    Unauthenticated,
    /// 503: Keystone could not answer; the message is for the log, not the caller.
    Unavailable(String),
}

#[derive(Debug, Clone)]
enum Verdict {
    Valid(Arc<TokenInfo>),
    Invalid,
}

struct ServiceToken {
    token: String,
    renew_at: Instant,
}

/// The validator: one per API process, shared by its workers, kept across reloads while
/// `[keystone_authtoken]` is unchanged.
pub struct KeystoneAuth {
    settings: KeystoneSettings,
    identity: Identity,
    service: tokio::sync::Mutex<Option<ServiceToken>>,
    cache: Option<moka::future::Cache<[u8; 32], Verdict>>,
    /// Calls made to validate user tokens (for tests and the bench: a cold token costs one).
    validations: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for KeystoneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneAuth")
            .field("auth_url", &self.settings.auth_url)
            .finish_non_exhaustive()
    }
}

/// A verdict lives for `token_cache_time`, and a valid one no longer than its token.
struct VerdictExpiry {
    ttl: Duration,
}

impl moka::Expiry<[u8; 32], Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Verdict,
        _created_at: Instant,
    ) -> Option<Duration> {
        let ttl = match value {
            Verdict::Valid(info) => (info.expires_at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.ttl),
            Verdict::Invalid => self.ttl,
        };
        Some(ttl)
    }
}

impl KeystoneAuth {
    pub fn new(settings: KeystoneSettings) -> Result<Self, String> {
        let identity = Identity::new(&settings.auth_url, settings.http_connect_timeout)
            .map_err(|e| format!("[{SECTION}] auth_url: {e}"))?;
        let cache = settings.token_cache_time.map(|secs| {
            moka::future::Cache::builder()
                .max_capacity(settings.token_cache_size)
                .expire_after(VerdictExpiry {
                    ttl: Duration::from_secs(secs),
                })
                .build()
        });
        Ok(Self {
            settings,
            identity,
            service: tokio::sync::Mutex::new(None),
            cache,
            validations: Default::default(),
        })
    }

    pub fn settings(&self) -> &KeystoneSettings {
        &self.settings
    }

    /// `WWW-Authenticate`'s value on a 401.
    pub fn challenge(&self) -> String {
        format!("Keystone uri=\"{}\"", self.settings.www_authenticate_uri)
    }

    /// How many times a user's token was sent to Keystone.
    pub fn validations(&self) -> u64 {
        self.validations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Gets our service token now, so wrong credentials stop the process at start with a
    /// message naming the options. Keystone being unreachable is only a warning: requests
    /// get 503 until it answers.
    pub async fn check_at_start(&self) -> Result<(), String> {
        match self.service_token(true).await {
            Ok(_) => {
                tracing::info!(url = %self.identity.url(), "keystone: service token obtained");
                Ok(())
            }
            Err(e @ (KeystoneError::Unauthorized { .. } | KeystoneError::Forbidden { .. })) => {
                Err(format!(
                    "{e}; check [{SECTION}] username, password, project_name, \
                     user_domain_name and project_domain_name"
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "keystone: cannot get a service token yet; requests get 503 until Keystone answers");
                Ok(())
            }
        }
    }

    /// The identity behind `token`, and the service token's verdict when one came along.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        service_token: Option<&str>,
    ) -> Result<Arc<TokenInfo>, Rejection> {
        let user = match token {
            Some(t) => self.verdict(t).await?,
            None => Verdict::Invalid,
        };
        let Verdict::Valid(user) = user else {
            return Err(Rejection::Unauthenticated);
        };
        if let Some(st) = service_token {
            let Verdict::Valid(service) = self.verdict(st).await? else {
                tracing::info!("keystone: the X-Service-Token is not valid");
                return Err(Rejection::Unauthenticated);
            };
            let has_role = service
                .roles
                .iter()
                .any(|r| self.settings.service_token_roles.contains(r));
            if !has_role {
                if self.settings.service_token_roles_required {
                    tracing::info!(
                        roles = ?service.roles,
                        "keystone: the X-Service-Token lacks a role of service_token_roles"
                    );
                    return Err(Rejection::Unauthenticated);
                }
                tracing::warn!(
                    "keystone: an X-Service-Token without a role of service_token_roles was \
                     accepted; set [keystone_authtoken] service_token_roles_required = true"
                );
            }
        }
        Ok(user)
    }

    async fn verdict(&self, token: &str) -> Result<Verdict, Rejection> {
        let verdict = match &self.cache {
            None => self.ask(token).await?,
            Some(cache) => {
                let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                cache
                    .try_get_with(key, self.ask(token))
                    .await
                    .map_err(|e| (*e).clone())?
            }
        };
        // A cached verdict outlives nothing: the cache's expiry already stops at the
        // token's, this catches the instant in between.
        Ok(match verdict {
            Verdict::Valid(info) if info.is_expired(Utc::now()) => Verdict::Invalid,
            v => v,
        })
    }

    /// One validation, renewing our service token once if Keystone refused it.
    async fn ask(&self, token: &str) -> Result<Verdict, Rejection> {
        self.validations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let include = self.settings.include_service_catalog;
        let mut renewed = false;
        loop {
            let service = self
                .service_token(renewed)
                .await
                .map_err(|e| self.outage(e))?;
            match self.identity.validate(&service, token, include).await {
                Ok(info) if info.is_expired(Utc::now()) => return Ok(Verdict::Invalid),
                Ok(info) => return Ok(Verdict::Valid(Arc::new(info))),
                Err(KeystoneError::InvalidToken { message }) => {
                    tracing::debug!(%message, "keystone: token refused");
                    return Ok(Verdict::Invalid);
                }
                Err(KeystoneError::Unauthorized { .. }) if !renewed => {
                    tracing::info!("keystone: our service token was refused; renewing it");
                    renewed = true;
                }
                Err(e) => return Err(self.outage(e)),
            }
        }
    }

    fn outage(&self, e: KeystoneError) -> Rejection {
        match &e {
            KeystoneError::Unauthorized { .. } | KeystoneError::Forbidden { .. } => {
                tracing::error!(
                    error = %e,
                    "keystone: cannot validate tokens with our service credentials; check \
                     [{SECTION}] username, password, project_name and that the user has the \
                     service or admin role"
                );
            }
            _ => tracing::error!(error = %e, "keystone: token validation failed"),
        }
        Rejection::Unavailable(e.to_string())
    }

    /// The service token in use, issuing one when there is none (diagnostics and tests).
    pub async fn service_token_now(&self) -> Result<String, KeystoneError> {
        self.service_token(false).await
    }

    /// Our token, issued again when `renew` or when it is about to expire.
    async fn service_token(&self, renew: bool) -> Result<String, KeystoneError> {
        let mut held = self.service.lock().await;
        if let Some(t) = held.as_ref() {
            if !renew && Instant::now() < t.renew_at {
                return Ok(t.token.clone());
            }
        }
        let issued = self.identity.issue(&self.settings.service).await?;
        let lifetime = (issued.info.expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        // Renew a minute early (or half-way through a short-lived token).
        let margin = Duration::from_secs(60).min(lifetime / 2);
        *held = Some(ServiceToken {
            token: issued.token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        tracing::debug!(expires_at = %issued.info.expires_at, "keystone: service token issued");
        Ok(issued.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawConfig {
        let mut raw = RawConfig::defaults();
        raw.merge_ini(text).unwrap();
        raw
    }

    const CONF: &str = "[keystone_authtoken]\n\
        www_authenticate_uri = http://ks:5000\n\
        auth_url = http://ks:5000/v3\n\
        auth_type = password\n\
        username = glance\n\
        password = secret\n\
        project_name = service\n\
        user_domain_name = Default\n\
        project_domain_name = Default\n\
        service_token_roles = service, Admin\n\
        service_token_roles_required = true\n";

    #[test]
    fn keystonemiddleware_options_carry_over() {
        let s = KeystoneSettings::from_raw(&raw(CONF)).unwrap().unwrap();
        assert_eq!(s.auth_url, "http://ks:5000/v3");
        assert_eq!(s.service.username, "glance");
        assert_eq!(s.service.project_domain_name.as_deref(), Some("Default"));
        assert_eq!(s.service_token_roles, vec!["service", "admin"]);
        assert!(s.service_token_roles_required);
        assert_eq!(s.token_cache_time, Some(300));
        assert!(s.include_service_catalog);
        let auth = KeystoneAuth::new(s).unwrap();
        assert_eq!(auth.challenge(), "Keystone uri=\"http://ks:5000\"");
    }

    #[test]
    fn no_section_is_no_settings_and_half_a_section_names_what_is_missing() {
        assert!(KeystoneSettings::from_raw(&raw("")).unwrap().is_none());
        let e = KeystoneSettings::from_raw(&raw("[keystone_authtoken]\nauth_url = http://ks\n"))
            .unwrap_err();
        assert!(e.contains("[keystone_authtoken] username"), "{e}");
        let e =
            KeystoneSettings::from_raw(&raw(&format!("{CONF}auth_type = token\n"))).unwrap_err();
        assert!(e.contains("auth_type"), "{e}");
    }

    #[test]
    fn a_negative_cache_time_disables_the_cache() {
        let s = KeystoneSettings::from_raw(&raw(&format!("{CONF}token_cache_time = -1\n")))
            .unwrap()
            .unwrap();
        assert_eq!(s.token_cache_time, None);
        assert!(KeystoneAuth::new(s).unwrap().cache.is_none());
    }

    #[tokio::test]
    async fn keystone_down_is_503_not_401_and_is_not_cached() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = CONF.replace("http://ks:5000/v3", &format!("http://127.0.0.1:{port}/v3"));
        let auth =
            KeystoneAuth::new(KeystoneSettings::from_raw(&raw(&conf)).unwrap().unwrap()).unwrap();
        for _ in 0..2 {
            let e = auth.authenticate(Some("tok"), None).await.unwrap_err();
            assert!(
                matches!(&e, Rejection::Unavailable(m) if m.contains(&port.to_string())),
                "{e:?}"
            );
        }
        assert_eq!(auth.validations(), 2, "an outage must not be cached");
        assert_eq!(
            auth.authenticate(None, None).await.unwrap_err(),
            Rejection::Unauthenticated
        );
    }
}
