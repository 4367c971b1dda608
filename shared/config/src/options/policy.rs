//! Options of identity, policy, property protections and quotas.

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "glance_auth",
        "token_file",
        None,
        "With auth_strategy = tokens: file of `sha256-hex-of-token user project role,role` lines",
    ),
    opt(
        "oslo_policy",
        "policy_file",
        None,
        "JSON or YAML file of policy rules overriding the defaults (rule name -> expression)",
    ),
    opt(
        "DEFAULT",
        "user_storage_quota",
        Some("0"),
        "Bytes a project may store across its images (0 = unlimited; suffixes KB, MB, GB, TB)",
    ),
    opt(
        "DEFAULT",
        "image_property_quota",
        Some("128"),
        "Most extra properties an image may have (negative = unlimited)",
    ),
    opt(
        "DEFAULT",
        "image_tag_quota",
        Some("128"),
        "Most tags an image may have (negative = unlimited)",
    ),
    opt(
        "DEFAULT",
        "image_member_quota",
        Some("128"),
        "Most members an image may have (negative = unlimited)",
    ),
    opt(
        "DEFAULT",
        "property_protection_file",
        None,
        "INI file of property protections: [regex] sections with create/read/update/delete",
    ),
    opt(
        "DEFAULT",
        "property_protection_rule_format",
        Some("roles"),
        "How property_protection_file names who may act: roles | policies",
    ),
];
