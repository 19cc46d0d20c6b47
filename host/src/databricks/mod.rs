//! Databricks Apps: with only the environment the platform sets (and what
//! the app's `app.yaml` binds from its resources), `chat-host up` serves —
//! on `DATABRICKS_APP_PORT`, on the Lakebase database of `PGHOST` & co.
//! with passwords from the workspace's credential API, calling the serving
//! endpoint `DATABRICKS_SERVING_ENDPOINT_NAME` of the workspace at
//! `DATABRICKS_HOST` with the app's own OAuth token. Explicit settings (the
//! command line, `SPIN_VARIABLE_*`) win over what is read here.

mod http;
pub mod lakebase;
pub mod oauth;

use crate::postgres::PasswordSource;
use anyhow::{Result, bail};
use lakebase::{Database, LakebaseCredentials};
use oauth::{Credentials, WorkspaceToken};
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// The database Lakebase names when `PGDATABASE` is not set.
const DEFAULT_DATABASE: &str = "databricks_postgres";
/// Our own setting, for a provisioned Lakebase instance (the platform's
/// resource binding yields only its host): the instance's name.
const INSTANCE_NAME: &str = "LAKEBASE_INSTANCE_NAME";
/// The longest the token given to the components goes unlooked at, and
/// the pause after a failure to get one.
const TOKEN_REFRESH: Duration = Duration::from_secs(30);
/// The shortest pause between two looks (a token renewed at once).
const MIN_REFRESH: Duration = Duration::from_millis(200);

/// What the platform's environment says, for `chat-host up`.
#[derive(Default)]
pub struct Platform {
    /// `DATABRICKS_APP_PORT`: where the platform's proxy sends requests.
    pub port: Option<u16>,
    /// The Lakebase database, without a password.
    pub db_url: Option<String>,
    pub db_password: Option<PasswordSource>,
    /// App variables the platform settles: the serving endpoint's name and
    /// workspace.
    pub variables: BTreeMap<String, String>,
    /// The workspace's token, for the components' `serving_token`.
    pub workspace: Option<Arc<WorkspaceToken>>,
}

impl Platform {
    /// Reads the platform's variables through `variable` (the process
    /// environment, in production). Settings that need the workspace's
    /// credentials but lack them are an error naming what is missing.
    pub fn from_env(variable: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let variable = |name: &str| variable(name).filter(|value| !value.trim().is_empty());
        let mut platform = Self {
            port: match variable("DATABRICKS_APP_PORT") {
                Some(port) => Some(port.trim().parse().map_err(|_| {
                    anyhow::anyhow!("DATABRICKS_APP_PORT must be a port number, not {port:?}")
                })?),
                None => None,
            },
            ..Self::default()
        };
        let origin = variable("DATABRICKS_HOST").map(|host| oauth::workspace_origin(&host));
        if let Some(origin) = &origin
            && let Some(credentials) = Credentials::from_env(&variable)
        {
            let client = http::WorkspaceClient::new(origin.clone())?;
            platform.workspace = Some(Arc::new(WorkspaceToken::new(client, credentials)));
        }
        // The model (and so MLflow) is the workspace's only when the app
        // names one of its endpoints: a DATABRICKS_HOST alone (a developer's
        // shell) leaves the demo agent in place.
        if let Some(name) = variable("DATABRICKS_SERVING_ENDPOINT_NAME") {
            let Some(origin) = &origin else {
                bail!(
                    "DATABRICKS_SERVING_ENDPOINT_NAME is set but DATABRICKS_HOST, its workspace, is not"
                );
            };
            platform
                .variables
                .insert("serving_endpoint_origin".to_owned(), origin.clone());
            platform
                .variables
                .insert("serving_endpoint_name".to_owned(), name);
        }
        if let Some(host) = variable("PGHOST") {
            let user = variable("PGUSER")
                .or_else(|| variable("DATABRICKS_CLIENT_ID"))
                .ok_or_else(|| anyhow::anyhow!("PGHOST is set but neither PGUSER nor DATABRICKS_CLIENT_ID names the database user"))?;
            platform.db_url = Some(database_url(
                &host,
                variable("PGPORT").as_deref(),
                variable("PGDATABASE").as_deref(),
                &user,
                variable("PGSSLMODE").as_deref(),
            ));
            let database = match (variable("LAKEBASE_ENDPOINT"), variable(INSTANCE_NAME)) {
                (Some(endpoint), _) => Some(Database::Endpoint(endpoint)),
                (None, Some(instance)) => Some(Database::Instance(instance)),
                (None, None) => None,
            };
            if let Some(database) = database {
                let Some(workspace) = &platform.workspace else {
                    bail!(
                        "a Lakebase database is named, but its credentials need the workspace: \
                         set DATABRICKS_HOST and DATABRICKS_CLIENT_ID with DATABRICKS_CLIENT_SECRET \
                         (or DATABRICKS_TOKEN)"
                    );
                };
                platform.db_password = Some(PasswordSource::Issued(Arc::new(
                    LakebaseCredentials::new(workspace.clone(), database),
                )));
            }
        }
        Ok(platform)
    }

    /// The workspace's token as it is now, kept fresh by a task of its own:
    /// what a component reads as `serving_token` when nothing else sets it.
    /// `None` without workspace credentials.
    pub fn live_token(&self) -> Option<LiveToken> {
        let workspace = self.workspace.clone()?;
        let slot = Arc::new(RwLock::new(None::<String>));
        let filled = slot.clone();
        tokio::spawn(async move {
            loop {
                let next = match workspace.get_with_renewal().await {
                    Ok((token, renew_at)) => {
                        *filled.write().unwrap_or_else(PoisonError::into_inner) = Some(token);
                        renew_at.map_or(TOKEN_REFRESH, |at| {
                            at.saturating_duration_since(std::time::Instant::now())
                                .min(TOKEN_REFRESH)
                        })
                    }
                    Err(error) => {
                        tracing::error!("the workspace's token: {error:#}");
                        TOKEN_REFRESH
                    }
                };
                tokio::time::sleep(next.max(MIN_REFRESH)).await;
            }
        });
        Some(LiveToken(slot))
    }
}

/// A token a task keeps current.
#[derive(Clone)]
pub struct LiveToken(Arc<RwLock<Option<String>>>);

impl LiveToken {
    pub fn current(&self) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `postgres://user@host:port/database?sslmode=...`; Lakebase requires TLS,
/// so `require` unless `PGSSLMODE` says otherwise.
fn database_url(
    host: &str,
    port: Option<&str>,
    database: Option<&str>,
    user: &str,
    sslmode: Option<&str>,
) -> String {
    format!(
        "postgres://{}@{}:{}/{}?sslmode={}",
        percent_encode(user),
        host.trim(),
        port.unwrap_or("5432").trim(),
        percent_encode(database.unwrap_or(DEFAULT_DATABASE)),
        percent_encode(sslmode.unwrap_or("require")),
    )
}

/// Everything but unreserved characters percent-encoded, for a URL part.
fn percent_encode(text: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    /// What Databricks Apps sets, with a Lakebase and a serving endpoint
    /// bound as resources.
    const APPS: &[(&str, &str)] = &[
        ("DATABRICKS_HOST", "adb-1.azuredatabricks.net"),
        (
            "DATABRICKS_CLIENT_ID",
            "6f2c1e2a-0000-4000-8000-000000000001",
        ),
        ("DATABRICKS_CLIENT_SECRET", "dose-secret"),
        ("DATABRICKS_APP_PORT", "8000"),
        ("DATABRICKS_APP_NAME", "chat"),
        ("PGHOST", "instance-1.database.azuredatabricks.net"),
        ("PGPORT", "5432"),
        ("PGDATABASE", "databricks_postgres"),
        ("PGUSER", "6f2c1e2a-0000-4000-8000-000000000001"),
        ("PGSSLMODE", "require"),
        ("LAKEBASE_ENDPOINT", "projects/p/branches/b/endpoints/e"),
        ("DATABRICKS_SERVING_ENDPOINT_NAME", "agent"),
    ];

    #[tokio::test]
    async fn the_platforms_environment_is_enough() {
        let platform = Platform::from_env(env(APPS)).unwrap();
        assert_eq!(platform.port, Some(8000));
        assert_eq!(
            platform.db_url.as_deref(),
            Some(
                "postgres://6f2c1e2a-0000-4000-8000-000000000001@instance-1.database.azuredatabricks.net:5432/databricks_postgres?sslmode=require"
            )
        );
        assert!(matches!(
            platform.db_password,
            Some(PasswordSource::Issued(_))
        ));
        assert_eq!(
            platform.variables["serving_endpoint_origin"],
            "https://adb-1.azuredatabricks.net"
        );
        assert_eq!(platform.variables["serving_endpoint_name"], "agent");
        assert!(platform.workspace.is_some());
    }

    #[test]
    fn a_workspace_without_an_endpoint_name_leaves_the_model_alone() {
        let shell: &[(&str, &str)] = &[
            ("DATABRICKS_HOST", "adb-1.azuredatabricks.net"),
            ("DATABRICKS_TOKEN", "dapi-personal"),
        ];
        let platform = Platform::from_env(env(shell)).unwrap();
        assert!(platform.variables.is_empty(), "{:?}", platform.variables);
        assert!(platform.workspace.is_some());
    }

    #[test]
    fn nothing_set_is_nothing_read() {
        let platform = Platform::from_env(env(&[])).unwrap();
        assert_eq!(platform.port, None);
        assert_eq!(platform.db_url, None);
        assert!(platform.variables.is_empty() && platform.workspace.is_none());
    }

    #[test]
    fn what_cannot_work_is_refused_with_what_is_missing() {
        let no_credentials: &[(&str, &str)] = &[
            ("DATABRICKS_HOST", "adb-1.azuredatabricks.net"),
            ("PGHOST", "db.example"),
            ("PGUSER", "me"),
            ("LAKEBASE_ENDPOINT", "projects/p/branches/b/endpoints/e"),
        ];
        let error = Platform::from_env(env(no_credentials))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("DATABRICKS_CLIENT_ID"), "{error}");
        let no_user: &[(&str, &str)] = &[("PGHOST", "db.example")];
        let error = Platform::from_env(env(no_user)).err().unwrap().to_string();
        assert!(error.contains("PGUSER"), "{error}");
        let bad_port: &[(&str, &str)] = &[("DATABRICKS_APP_PORT", "http")];
        assert!(Platform::from_env(env(bad_port)).is_err());
        let no_host: &[(&str, &str)] = &[("DATABRICKS_SERVING_ENDPOINT_NAME", "agent")];
        let error = Platform::from_env(env(no_host)).err().unwrap().to_string();
        assert!(error.contains("DATABRICKS_HOST"), "{error}");
    }

    #[test]
    fn the_database_url_defaults_to_lakebases_database_and_tls() {
        assert_eq!(
            database_url("h", None, None, "a b@c", None),
            "postgres://a%20b%40c@h:5432/databricks_postgres?sslmode=require"
        );
    }
}
