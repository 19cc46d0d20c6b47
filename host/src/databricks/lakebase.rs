//! Lakebase passwords: a Lakebase database takes a short-lived OAuth
//! credential as the password, asked of the workspace with the app's own
//! token, for a Lakebase Autoscaling endpoint
//! (`POST /api/2.0/postgres/credentials` `{"endpoint"}`, answering
//! `{token, expire_time}`) or a provisioned instance
//! (`POST /api/2.0/database/credentials` `{"instance_names", "request_id"}`,
//! answering `{token, expiration_time}`). The credential is kept until
//! shortly before it expires; each new connection takes the one kept.

use super::oauth::{WorkspaceToken, renew_after};
use crate::postgres::PasswordIssuer;
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Which Lakebase the credential is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// Lakebase Autoscaling: the endpoint's resource name
    /// (`LAKEBASE_ENDPOINT`).
    Endpoint(String),
    /// A provisioned database instance, by name.
    Instance(String),
}

pub struct LakebaseCredentials {
    workspace: Arc<WorkspaceToken>,
    database: Database,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for LakebaseCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakebaseCredentials")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Credential {
    token: String,
    #[serde(alias = "expiration_time")]
    expire_time: String,
}

impl LakebaseCredentials {
    pub fn new(workspace: Arc<WorkspaceToken>, database: Database) -> Self {
        Self {
            workspace,
            database,
            cached: Mutex::new(None),
        }
    }

    /// The password for a new connection.
    async fn current(&self) -> Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some((password, _)) = cached.as_ref().filter(|(_, renew)| Instant::now() < *renew) {
            return Ok(password.clone());
        }
        let asked_at = Instant::now();
        let token = self.workspace.get().await?;
        let (path, body) = match &self.database {
            Database::Endpoint(endpoint) => (
                "/api/2.0/postgres/credentials",
                json!({"endpoint": endpoint}),
            ),
            Database::Instance(name) => (
                "/api/2.0/database/credentials",
                json!({"instance_names": [name], "request_id": uuid::Uuid::new_v4()}),
            ),
        };
        let credential: Credential = self
            .workspace
            .client()
            .post_json(path, &body, &token)
            .await
            .context("getting a Lakebase credential")?;
        let lifetime = lifetime_until(&credential.expire_time, chrono::Utc::now())?;
        *cached = Some((credential.token.clone(), asked_at + renew_after(lifetime)));
        tracing::info!("Lakebase credential obtained, good for {lifetime:?}");
        Ok(credential.token)
    }
}

impl PasswordIssuer for LakebaseCredentials {
    fn password(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(self.current())
    }
}

/// How long from `now` until `expiry` (RFC 3339); zero when it has passed.
fn lifetime_until(expiry: &str, now: chrono::DateTime<chrono::Utc>) -> Result<Duration> {
    let expiry = chrono::DateTime::parse_from_rfc3339(expiry).with_context(|| {
        format!("the Lakebase credential's expiry {expiry:?} is no RFC 3339 time")
    })?;
    Ok((expiry.with_timezone(&chrono::Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_is_read_as_the_workspace_writes_it() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T06:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            lifetime_until("2026-12-07T07:00:00Z", now).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            lifetime_until("2026-12-07T06:00:30.500+00:00", now).unwrap(),
            Duration::from_millis(30_500)
        );
        assert_eq!(
            lifetime_until("2026-12-07T05:00:00Z", now).unwrap(),
            Duration::ZERO
        );
        assert!(lifetime_until("tomorrow", now).is_err());
    }
}
