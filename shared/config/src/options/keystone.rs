//! keystonemiddleware's `[keystone_authtoken]` options that `auth_strategy = keystone` reads
//! (same names, so an operator's glance-api.conf carries over), and our bound on its cache.

use super::{opt, Opt};

const KS: &str = "keystone_authtoken";

pub const OPTIONS: &[Opt] = &[
    opt(
        KS,
        "www_authenticate_uri",
        None,
        "Identity URI clients are sent to in WWW-Authenticate on a 401 (default: auth_url)",
    ),
    opt(
        KS,
        "auth_url",
        None,
        "Keystone's Identity API, where tokens are validated (setting it enables the section)",
    ),
    opt(
        KS,
        "auth_type",
        Some("password"),
        "How the service user authenticates: password",
    ),
    opt(KS, "username", None, "Service user that validates tokens"),
    opt(KS, "password", None, "The service user's password"),
    opt(
        KS,
        "project_name",
        None,
        "Project the service token is scoped to",
    ),
    opt(
        KS,
        "project_id",
        None,
        "Project the service token is scoped to, by id",
    ),
    opt(KS, "user_domain_name", None, "Domain of the service user"),
    opt(
        KS,
        "user_domain_id",
        None,
        "Domain of the service user, by id",
    ),
    opt(
        KS,
        "project_domain_name",
        None,
        "Domain of the service project",
    ),
    opt(
        KS,
        "project_domain_id",
        None,
        "Domain of the service project, by id",
    ),
    opt(KS, "region_name", None, "Region of the identity endpoint"),
    opt(
        KS,
        "token_cache_time",
        Some("300"),
        "Seconds a token's validation is reused (never past the token's expiry; -1 disables)",
    ),
    opt(
        KS,
        "service_token_roles",
        Some("service"),
        "Roles an X-Service-Token must carry one of",
    ),
    opt(
        KS,
        "service_token_roles_required",
        Some("false"),
        "Refuse X-Service-Tokens without a role of service_token_roles (else only warn)",
    ),
    opt(
        KS,
        "include_service_catalog",
        Some("true"),
        "Ask Keystone for the user's service catalog with each validation",
    ),
    opt(
        KS,
        "delay_auth_decision",
        Some("false"),
        "Accepted for compatibility: requests without a valid token are still refused (401)",
    ),
    opt(
        KS,
        "http_connect_timeout",
        Some("10"),
        "Seconds to wait for Keystone before answering 503",
    ),
    opt(
        "glance_keystone",
        "token_cache_size",
        Some("10000"),
        "Most token validations kept in the cache",
    ),
];
