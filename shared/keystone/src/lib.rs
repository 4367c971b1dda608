//! Keystone's Identity API v3, as far as an image service needs it.
//!
//! * [`Identity`]: the HTTP calls — a password-scoped token (for our service user and for the
//!   CLIs) and the validation of a user's token (`GET /v3/auth/tokens`), with errors that
//!   say which URL failed and whether the caller, Keystone or the network is to blame.
//! * [`TokenInfo`]: what a token says about its bearer (user, project, domains, roles,
//!   expiry, catalog), parsed from Keystone's token document.
//! * [`Credentials`]: the standard `OS_*` variables the OpenStack clients read, so our CLIs
//!   authenticate like `openstack` does, and [`TokenInfo::endpoint`] to find a service in
//!   the catalog.
//!
//! Caching and the service token's renewal are the API's business (`glance_api::keystone`);
//! this crate keeps no state beyond an HTTP connection pool.

mod client;
mod credentials;
mod token;

pub use client::{Identity, IssuedToken, KeystoneError, PasswordAuth};
pub use credentials::{Credentials, CredentialsError};
pub use token::TokenInfo;
