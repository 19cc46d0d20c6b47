//! The workspace's own credentials, as the Databricks SDKs get them: a
//! personal access token (`DATABRICKS_TOKEN`, for local development against
//! a real workspace), or OAuth machine to machine for the app's service
//! principal (`DATABRICKS_CLIENT_ID`, `DATABRICKS_CLIENT_SECRET`: what
//! Databricks Apps sets): the token endpoint found by OIDC discovery at
//! `{host}/oidc/.well-known/oauth-authorization-server`, a
//! `client_credentials` grant with scope `all-apis`, the token cached and
//! renewed before it runs out, so an expired one is never sent.

use super::http::WorkspaceClient;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// What the app asks the token to be good for.
const SCOPE: &str = "all-apis";
/// The longest a token is used before its end: renewed with this much (or
/// half its life, if that is less) still to go.
const RENEWAL_MARGIN: Duration = Duration::from_secs(300);

/// How the app proves itself to the workspace.
pub enum Credentials {
    /// A personal access token, used as it is.
    PersonalToken(String),
    /// The service principal's OAuth client.
    ServicePrincipal {
        client_id: String,
        client_secret: String,
    },
}

impl Credentials {
    /// From the platform's environment (`variable` reads one): a service
    /// principal when both its variables are set, else a personal token,
    /// else none.
    pub fn from_env(variable: &impl Fn(&str) -> Option<String>) -> Option<Self> {
        match (
            variable("DATABRICKS_CLIENT_ID"),
            variable("DATABRICKS_CLIENT_SECRET"),
        ) {
            (Some(client_id), Some(client_secret)) => Some(Self::ServicePrincipal {
                client_id,
                client_secret,
            }),
            _ => variable("DATABRICKS_TOKEN").map(Self::PersonalToken),
        }
    }
}

/// The workspace's bearer token, fetched when first needed and renewed
/// before it expires; one fetch at a time.
pub struct WorkspaceToken {
    client: WorkspaceClient,
    credentials: Credentials,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: String,
    renew_at: Instant,
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl WorkspaceToken {
    pub fn new(client: WorkspaceClient, credentials: Credentials) -> Self {
        Self {
            client,
            credentials,
            cached: Mutex::new(None),
        }
    }

    pub fn client(&self) -> &WorkspaceClient {
        &self.client
    }

    /// A token that is good for a while yet.
    pub async fn get(&self) -> Result<String> {
        Ok(self.get_with_renewal().await?.0)
    }

    /// A token that is good for a while yet, and when it will be renewed
    /// (`None`: never, a personal token).
    pub async fn get_with_renewal(&self) -> Result<(String, Option<Instant>)> {
        let (client_id, client_secret) = match &self.credentials {
            Credentials::PersonalToken(token) => return Ok((token.clone(), None)),
            Credentials::ServicePrincipal {
                client_id,
                client_secret,
            } => (client_id, client_secret),
        };
        let mut cached = self.cached.lock().await;
        if let Some(cached) = cached.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok((cached.token.clone(), Some(cached.renew_at)));
        }
        let fetched_at = Instant::now();
        let answer = self.fetch(client_id, client_secret).await?;
        let lifetime = Duration::from_secs(answer.expires_in);
        let renew_at = fetched_at + renew_after(lifetime);
        *cached = Some(Cached {
            token: answer.access_token.clone(),
            renew_at,
        });
        tracing::info!(
            "workspace OAuth token obtained for the app's service principal, good for {lifetime:?}"
        );
        Ok((answer.access_token, Some(renew_at)))
    }

    async fn fetch(&self, client_id: &str, client_secret: &str) -> Result<TokenAnswer> {
        let discovery: Discovery = self
            .client
            .get_json("/oidc/.well-known/oauth-authorization-server", None)
            .await
            .context("discovering the workspace's OAuth token endpoint")?;
        let form = [("grant_type", "client_credentials"), ("scope", SCOPE)];
        let answer: TokenAnswer = self
            .client
            .post_form(&discovery.token_endpoint, &form, client_id, client_secret)
            .await
            .context("getting an OAuth token for the app's service principal")?;
        if answer.access_token.is_empty() {
            bail!("the workspace's token endpoint answered an empty token");
        }
        Ok(answer)
    }
}

/// When a token that lives `lifetime` is renewed: [`RENEWAL_MARGIN`]
/// before its end, or halfway for a short-lived one.
pub fn renew_after(lifetime: Duration) -> Duration {
    lifetime - RENEWAL_MARGIN.min(lifetime / 2)
}

/// Reads `DATABRICKS_HOST` as the workspace's origin (the platform sets it
/// without a scheme).
pub fn workspace_origin(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_owned()
    } else {
        format!("https://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_five_minutes_before_their_end_or_halfway() {
        assert_eq!(
            renew_after(Duration::from_secs(3600)),
            Duration::from_secs(3300)
        );
        assert_eq!(
            renew_after(Duration::from_secs(20)),
            Duration::from_secs(10)
        );
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_service_principal_wins_over_a_personal_token() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let both = env(&[
            ("DATABRICKS_CLIENT_ID", "id"),
            ("DATABRICKS_CLIENT_SECRET", "secret"),
            ("DATABRICKS_TOKEN", "dapi"),
        ]);
        assert!(matches!(
            Credentials::from_env(&both),
            Some(Credentials::ServicePrincipal { .. })
        ));
        let token = env(&[("DATABRICKS_CLIENT_ID", "id"), ("DATABRICKS_TOKEN", "dapi")]);
        assert!(matches!(
            Credentials::from_env(&token),
            Some(Credentials::PersonalToken(t)) if t == "dapi"
        ));
        assert!(Credentials::from_env(&env(&[])).is_none());
    }

    #[test]
    fn the_workspace_host_gets_https_unless_it_has_a_scheme() {
        assert_eq!(
            workspace_origin("adb-1.azuredatabricks.net/"),
            "https://adb-1.azuredatabricks.net"
        );
        assert_eq!(
            workspace_origin("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
    }
}
