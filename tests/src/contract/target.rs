//! The app the contract suite talks to: an external one named by environment
//! variables, or a `chat-host` the suite starts itself on a fresh database.

use super::client::ApiClient;
use crate::database::TestDatabase;
use crate::host::{HostConfig, TestHost};
use std::path::PathBuf;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The app's base URL, e.g. `http://127.0.0.1:3000` for `spin up`.
pub const BASE_URL_VAR: &str = "CHAT_BASE_URL";
/// The Postgres URL of the database that app uses (the suite seeds through SQL).
pub const DB_URL_VAR: &str = "CHAT_DB_URL";
/// That app's `admin_token`, for the admin routes' success cases.
pub const ADMIN_TOKEN_VAR: &str = "CHAT_ADMIN_TOKEN";

const SELF_STARTED_ADMIN_TOKEN: &str = "contract-suite-admin-token";

/// An external app has one database for every test of the binary. Tests
/// that seed and change it share this lock; a test that compares the whole
/// database before and after (the fuzz test) holds it alone.
static EXTERNAL_DATABASE: RwLock<()> = RwLock::const_new(());

enum DatabaseClaim {
    /// A self-started host has a database of its own.
    Own(#[allow(dead_code)] TestDatabase),
    /// A host started without a reachable database.
    Unreachable,
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A running app, its database, and how to reach both.
pub struct Target {
    pub api: ApiClient,
    /// Where the app's data lives; seeding connects here.
    pub db_url: String,
    admin_token: Option<String>,
    /// Set when the suite started the host, so its log can be read.
    host: Option<TestHost>,
    _database: DatabaseClaim,
}

impl Target {
    /// The app under test, for a test that seeds its own rows.
    pub async fn shared() -> Self {
        Self::acquire(false).await
    }

    /// The app under test, with no other test of this binary using its
    /// database at the same time.
    pub async fn exclusive() -> Self {
        Self::acquire(true).await
    }

    /// Whether the suite runs against an app named by [`BASE_URL_VAR`].
    pub fn is_external() -> bool {
        external_base_url().is_some()
    }

    async fn acquire(exclusive: bool) -> Self {
        let Some(base_url) = external_base_url() else {
            return Self::self_started().await;
        };
        let db_url = std::env::var(DB_URL_VAR)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{BASE_URL_VAR} is set to {base_url}, but {DB_URL_VAR} is not: the contract suite \
                     seeds chats through SQL, so it needs the Postgres URL of the database that app uses \
                     (e.g. {DB_URL_VAR}=postgres://user:password@host:5432/database)"
                )
            });
        let claim = if exclusive {
            DatabaseClaim::Exclusive(EXTERNAL_DATABASE.write().await)
        } else {
            DatabaseClaim::Shared(EXTERNAL_DATABASE.read().await)
        };
        Self {
            api: ApiClient::new(&base_url),
            db_url,
            admin_token: std::env::var(ADMIN_TOKEN_VAR)
                .ok()
                .filter(|token| !token.is_empty()),
            host: None,
            _database: claim,
        }
    }

    async fn self_started() -> Self {
        let database = TestDatabase::create().await;
        let config =
            HostConfig::new(&database.url).variable("admin_token", SELF_STARTED_ADMIN_TOKEN);
        let host = TestHost::launch(config).await;
        Self {
            api: ApiClient::new(&host.base_url),
            db_url: database.url.clone(),
            admin_token: Some(SELF_STARTED_ADMIN_TOKEN.to_owned()),
            host: Some(host),
            _database: DatabaseClaim::Own(database),
        }
    }

    /// A `chat-host` started here whose `db_url` names a closed port, so
    /// every database call fails at once. (Always local: only a host started
    /// with this configuration shows how the app behaves without its
    /// database.) Its admin token is set, so the admin routes reach the
    /// database step.
    pub async fn with_database_down() -> Self {
        let db_url = closed_port_db_url();
        let config = HostConfig::new(&db_url).variable("admin_token", SELF_STARTED_ADMIN_TOKEN);
        Self::local_without_database(config, db_url).await
    }

    /// A `chat-host` started here serving the app with the admin-schema
    /// component given an empty `admin_token`, as `spin up` runs it when the
    /// variable is unset. (`chat-host up` itself never leaves it empty: it
    /// makes up a token for its start-up migration.)
    pub async fn with_admin_disabled() -> Self {
        let db_url = closed_port_db_url();
        let manifest = admin_disabled_manifest();
        let config = HostConfig::new(&db_url).manifest(&manifest);
        let target = Self::local_without_database(config, db_url).await;
        // The host read it at start-up.
        let _ = std::fs::remove_file(manifest);
        target
    }

    async fn local_without_database(config: HostConfig, db_url: String) -> Self {
        let host = TestHost::launch(config).await;
        Self {
            api: ApiClient::new(&host.base_url),
            db_url,
            admin_token: Some(SELF_STARTED_ADMIN_TOKEN.to_owned()),
            host: Some(host),
            _database: DatabaseClaim::Unreachable,
        }
    }

    /// The admin token of the app, or a clear failure when an external app's
    /// token was not given.
    pub fn admin_token(&self) -> &str {
        self.admin_token.as_deref().unwrap_or_else(|| {
            panic!(
                "the admin routes' success cases need the app's admin token: set {ADMIN_TOKEN_VAR}"
            )
        })
    }

    /// The admin token when it is known, for tests that only sometimes use it.
    pub fn admin_token_if_known(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// Everything the host printed, when the suite started it.
    pub fn host_log(&self) -> Option<String> {
        self.host.as_ref().map(TestHost::log)
    }
}

fn external_base_url() -> Option<String> {
    std::env::var(BASE_URL_VAR)
        .ok()
        .map(|url| url.trim().to_owned())
        .filter(|url| !url.is_empty())
}

/// A Postgres URL on a port nothing listens on: connecting is refused at once.
fn closed_port_db_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("postgres://chat:chat@127.0.0.1:{port}/chat")
}

/// spin.toml with every component's `source` made absolute and the
/// admin-schema component's `admin_token` set to an empty literal, written
/// to a temporary file.
fn admin_disabled_manifest() -> PathBuf {
    let root = crate::repo_root();
    let text = std::fs::read_to_string(root.join("spin.toml")).expect("reading spin.toml");
    let mut manifest: toml::Table = text.parse().expect("spin.toml is TOML");
    let components = manifest
        .get_mut("component")
        .and_then(toml::Value::as_table_mut)
        .expect("spin.toml has components");
    for (_, component) in components.iter_mut() {
        let source = component
            .get_mut("source")
            .expect("every component has a source");
        let absolute = root.join(source.as_str().expect("a source path"));
        *source = toml::Value::String(absolute.display().to_string());
    }
    let admin_variables = components
        .get_mut("admin-schema")
        .and_then(|component| component.get_mut("variables"))
        .and_then(toml::Value::as_table_mut)
        .expect("the admin-schema component has variables");
    admin_variables.insert("admin_token".into(), toml::Value::String(String::new()));
    let path = std::env::temp_dir().join(format!(
        "chat-contract-admin-disabled-{}.spin.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(
        &path,
        toml::to_string(&manifest).expect("serialising the manifest"),
    )
    .expect("writing the derived manifest");
    path
}
