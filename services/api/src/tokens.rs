//! `auth_strategy = tokens`: `X-Auth-Token` looked up in a local file of hashed tokens.
//!
//! The file (`[glance_auth] token_file`) has one token a line:
//!
//! ```text
//! # sha256(token) as hex          user     project  roles
//! 9f86d081884c7d65...b0f00a08   alice    proj-a   member,reader
//! ```
//!
//! Only digests are stored, so the file does not hand out working tokens. A presented token
//! is hashed and compared with every entry in constant time, so timing tells nothing about
//! how close a guess was. The file is read with the configuration, so `glance-control api
//! reload` picks up added or revoked tokens.
//!
//! This is one [`TokenValidator`]; validating Keystone tokens in-process (instead of
//! keystonemiddleware in front setting trusted headers) would be another implementation,
//! selected by a new `AuthStrategy` variant. It is deliberately not built.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub user_id: String,
    pub project_id: String,
    pub roles: Vec<String>,
}

/// Turns a presented token into an identity, or refuses it.
pub trait TokenValidator: std::fmt::Debug + Send + Sync {
    fn validate(&self, token: &str) -> Option<TokenIdentity>;
}

/// The tokens of a token file.
#[derive(Debug, Clone, Default)]
pub struct TokenFile {
    entries: Vec<([u8; 32], TokenIdentity)>,
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [digest, user, project, roles] = fields[..] else {
                return Err(format!(
                    "line {}: expected `sha256-hex user project role,role`",
                    n + 1
                ));
            };
            let mut hash = [0u8; 32];
            hex::decode_to_slice(digest, &mut hash)
                .map_err(|_| format!("line {}: the token digest is not 64 hex digits", n + 1))?;
            entries.push((
                hash,
                TokenIdentity {
                    user_id: user.to_owned(),
                    project_id: project.to_owned(),
                    roles: roles
                        .split(',')
                        .map(|r| r.trim().to_ascii_lowercase())
                        .filter(|r| !r.is_empty())
                        .collect(),
                },
            ));
        }
        Ok(Self { entries })
    }

    /// The line format's digest of `token`, for operators writing the file.
    pub fn digest(token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

impl TokenValidator for TokenFile {
    fn validate(&self, token: &str) -> Option<TokenIdentity> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every entry is compared, whatever matched, so the time taken does not depend on
        // which entry (if any) matches.
        let mut found = None;
        for (hash, identity) in &self.entries {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(identity);
            }
        }
        found.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_token_maps_to_its_identity_and_others_do_not() {
        let line = format!(
            "# comment\n{} alice proj-a Member,reader\n",
            TokenFile::digest("s3cret")
        );
        let file = TokenFile::parse(&line).unwrap();
        let who = file.validate("s3cret").unwrap();
        assert_eq!(who.project_id, "proj-a");
        assert_eq!(who.roles, vec!["member", "reader"]);
        assert!(file.validate("s3cre").is_none());
        assert!(file.validate("").is_none());
    }

    #[test]
    fn a_malformed_line_is_refused() {
        assert!(TokenFile::parse("abc alice proj roles").is_err());
        assert!(TokenFile::parse("onlyonefield").is_err());
    }
}
