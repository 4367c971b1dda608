//! The access settings of the API, read from configuration with everything else and
//! swapped whole on reload: the policy rules, the token file, property protections and the
//! quotas.

use std::path::Path;
use std::sync::Arc;

use glance_config::RawConfig;

use crate::error::ApiError;
use crate::policy::Policy;
use crate::protections::{PropertyProtections, RuleFormat};
use crate::tokens::{TokenFile, TokenValidator};

#[derive(Debug, Clone, Default)]
pub struct Access {
    pub policy: Policy,
    /// Present when `[glance_auth] token_file` is set.
    pub tokens: Option<Arc<dyn TokenValidator>>,
    pub protections: Option<PropertyProtections>,
    pub quotas: Quotas,
}

/// Glance's quota options; `None` is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    pub user_storage: Option<u64>,
    pub image_properties: Option<usize>,
    pub image_tags: Option<usize>,
    pub image_members: Option<usize>,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            user_storage: None,
            image_properties: Some(128),
            image_tags: Some(128),
            image_members: Some(128),
        }
    }
}

impl Access {
    /// Reads every file the options name; a missing or malformed file is an error, so a
    /// bad reload keeps the old settings and a bad start does not serve.
    pub fn from_raw(raw: &RawConfig) -> Result<Self, String> {
        let r = raw.reader();
        let policy = match r.opt_string("oslo_policy", "policy_file") {
            Some(path) => Policy::from_file(Path::new(&path))?,
            None => Policy::default(),
        };
        let tokens: Option<Arc<dyn TokenValidator>> =
            match r.opt_string("glance_auth", "token_file") {
                Some(path) => Some(Arc::new(TokenFile::load(Path::new(&path))?)),
                None => None,
            };
        let protections = match r.opt_string("DEFAULT", "property_protection_file") {
            Some(path) => {
                let format: RuleFormat = r
                    .opt_string("DEFAULT", "property_protection_rule_format")
                    .unwrap_or_else(|| "roles".into())
                    .parse()?;
                Some(PropertyProtections::load(Path::new(&path), format)?)
            }
            None => None,
        };
        let count = |name: &str| -> Result<Option<usize>, String> {
            let value = r
                .opt_string("DEFAULT", name)
                .unwrap_or_else(|| "128".into());
            let n: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("[DEFAULT] {name} must be an integer, not {value:?}"))?;
            Ok(usize::try_from(n).ok())
        };
        let quotas = Quotas {
            user_storage: parse_storage_quota(
                &r.opt_string("DEFAULT", "user_storage_quota")
                    .unwrap_or_else(|| "0".into()),
            )?,
            image_properties: count("image_property_quota")?,
            image_tags: count("image_tag_quota")?,
            image_members: count("image_member_quota")?,
        };
        Ok(Self {
            policy,
            tokens,
            protections,
            quotas,
        })
    }
}

/// `user_storage_quota`: bytes, or a number with `KB`, `MB`, `GB`, `TB` (binary units) or
/// `B`; zero is unlimited.
pub fn parse_storage_quota(value: &str) -> Result<Option<u64>, String> {
    let invalid = || format!("[DEFAULT] user_storage_quota: {value:?} is not a size like 10GB");
    let v = value.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(digits_end);
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return Err(invalid()),
    };
    let bytes = n.checked_mul(scale).ok_or_else(invalid)?;
    Ok((bytes > 0).then_some(bytes))
}

/// 413 when `attempted` passes `limit`, in Glance's words for `what`.
pub fn check_count(limit: Option<usize>, attempted: usize, what: &str) -> Result<(), ApiError> {
    match limit {
        Some(max) if attempted > max => Err(ApiError::PayloadTooLarge(format!(
            "The limit has been exceeded on the number of allowed {what}. \
             Attempted: {attempted}, Maximum: {max}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_quotas_take_binary_units() {
        assert_eq!(parse_storage_quota("0").unwrap(), None);
        assert_eq!(parse_storage_quota("100").unwrap(), Some(100));
        assert_eq!(parse_storage_quota("2KB").unwrap(), Some(2048));
        assert_eq!(parse_storage_quota("1GB").unwrap(), Some(1 << 30));
        assert!(parse_storage_quota("1 GB").is_err());
        assert!(parse_storage_quota("1GiB").is_err());
        assert!(parse_storage_quota("").is_err());
    }

    #[test]
    fn counts_over_the_quota_are_413() {
        assert!(check_count(Some(2), 2, "image tags").is_ok());
        assert!(matches!(
            check_count(Some(2), 3, "image tags"),
            Err(ApiError::PayloadTooLarge(_))
        ));
        assert!(check_count(None, 1000, "image tags").is_ok());
    }
}
