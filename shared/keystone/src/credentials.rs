//! The `OS_*` variables and `--os-*` flags every OpenStack client reads, for our CLIs.

use std::time::Duration;

use crate::{Identity, KeystoneError, PasswordAuth, TokenInfo};

/// How a CLI proves who it is: a token it was given, or a password to trade for one.
/// Flatten it into a clap parser (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Credentials {
    /// Keystone's Identity API (e.g. http://keystone:5000/v3).
    #[arg(long = "os-auth-url", env = "OS_AUTH_URL", global = true)]
    pub auth_url: Option<String>,
    #[arg(long = "os-username", env = "OS_USERNAME", global = true)]
    pub username: Option<String>,
    #[arg(
        long = "os-password",
        env = "OS_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    #[arg(long = "os-project-name", env = "OS_PROJECT_NAME", global = true)]
    pub project_name: Option<String>,
    #[arg(long = "os-project-id", env = "OS_PROJECT_ID", global = true)]
    pub project_id: Option<String>,
    #[arg(
        long = "os-user-domain-name",
        env = "OS_USER_DOMAIN_NAME",
        global = true
    )]
    pub user_domain_name: Option<String>,
    #[arg(long = "os-user-domain-id", env = "OS_USER_DOMAIN_ID", global = true)]
    pub user_domain_id: Option<String>,
    #[arg(
        long = "os-project-domain-name",
        env = "OS_PROJECT_DOMAIN_NAME",
        global = true
    )]
    pub project_domain_name: Option<String>,
    #[arg(
        long = "os-project-domain-id",
        env = "OS_PROJECT_DOMAIN_ID",
        global = true
    )]
    pub project_domain_id: Option<String>,
    /// Region of the image endpoint taken from the catalog.
    #[arg(long = "os-region-name", env = "OS_REGION_NAME", global = true)]
    pub region_name: Option<String>,
    /// Which endpoint of the catalog to use: public, internal or admin.
    #[arg(long = "os-interface", env = "OS_INTERFACE", global = true)]
    pub interface: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{0} is set but {1} is not: set both (or OS_AUTH_TOKEN) to authenticate")]
    Incomplete(&'static str, &'static str),
    #[error("cannot get a token from Keystone: {0}")]
    Keystone(#[from] KeystoneError),
}

impl Credentials {
    /// Whether a password is there to trade for a token.
    pub fn has_password(&self) -> bool {
        self.auth_url.is_some() || self.username.is_some() || self.password.is_some()
    }

    /// A token from Keystone for these credentials, or `None` when none are given.
    pub async fn issue(&self) -> Result<Option<(String, TokenInfo)>, CredentialsError> {
        if !self.has_password() {
            return Ok(None);
        }
        let url = self
            .auth_url
            .as_deref()
            .ok_or(CredentialsError::Incomplete("OS_USERNAME", "OS_AUTH_URL"))?;
        let username = self
            .username
            .clone()
            .ok_or(CredentialsError::Incomplete("OS_AUTH_URL", "OS_USERNAME"))?;
        let password = self
            .password
            .clone()
            .ok_or(CredentialsError::Incomplete("OS_USERNAME", "OS_PASSWORD"))?;
        let auth = PasswordAuth {
            username,
            password,
            user_domain_name: self.user_domain_name.clone(),
            user_domain_id: self.user_domain_id.clone(),
            project_name: self.project_name.clone(),
            project_id: self.project_id.clone(),
            project_domain_name: self.project_domain_name.clone(),
            project_domain_id: self.project_domain_id.clone(),
        };
        let issued = Identity::new(url, Duration::from_secs(30))?
            .issue(&auth)
            .await?;
        Ok(Some((issued.token, issued.info)))
    }

    /// The image service's URL in `token`'s catalog, for this region and interface
    /// (public unless `OS_INTERFACE` says otherwise).
    pub fn image_endpoint(&self, token: &TokenInfo) -> Option<String> {
        let interface = self.interface.as_deref().unwrap_or("public");
        let interface = interface.strip_suffix("URL").unwrap_or(interface);
        token.endpoint("image", interface, self.region_name.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_credentials_means_no_token_and_half_of_them_is_an_error() {
        assert!(Credentials::default().issue().await.unwrap().is_none());
        let half = Credentials {
            username: Some("demo".into()),
            ..Default::default()
        };
        let e = half.issue().await.unwrap_err();
        assert!(e.to_string().contains("OS_AUTH_URL"), "{e}");
    }
}
