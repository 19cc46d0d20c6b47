//! Databricks Apps, chat-host only (Spin has no such support): with only
//! the environment the platform sets, and a stand-in workspace
//! (`chat_tests::workspace`) that issues short-lived OAuth tokens and
//! Lakebase credentials, the app serves — its database role holding only
//! CONNECT and CREATE — chats with the workspace's serving endpoint, rates
//! into its MLflow, and when every token and credential has expired and
//! every connection is cut, logs in again with fresh ones, never falling
//! into ephemeral mode; no secret reaches its log. The same holds for the
//! folder a Databricks App is deployed from (`deploy/databricks/build.sh`:
//! a chat-host without a compiler and precompiled components), started by
//! its `app.yaml` command in an empty directory; each of its files fits the
//! platform, and a precompiled component another build made is refused.

use chat_tests::app_folder::{self, AppYaml, EnvSource};
use chat_tests::database::ControlledDatabase;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::workspace::{StandInWorkspace, WorkspaceSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const USER: &str = "ada@example.com";
/// The app's service principal: its OAuth client id is its database role.
const CLIENT_ID: &str = "6f2c1e2a-1b3d-4c5e-8f70-9a1b2c3d4e5f";
const CLIENT_SECRET: &str = "dose-stand-in-secret";
const LAKEBASE_ENDPOINT: &str = "projects/chat/branches/main/endpoints/primary";
const SERVING_ENDPOINT: &str = "chat-agent";
/// Short lives, so the test sees them end: long enough for the renewal
/// margins (half a life) to exceed the components' ten-second variable
/// cache.
const TOKEN_LIFETIME: Duration = Duration::from_secs(30);
const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(20);
const PATIENCE: Duration = Duration::from_secs(60);

/// A chat turn through the app: the reply's meta event.
async fn chat(host: &TestHost, question: &str) -> Value {
    let answer = chat_tests::turn::ask(host, USER, None, question).await;
    assert!(
        answer.stream.contains(&format!("You asked: {question}")),
        "{}",
        answer.stream
    );
    answer.meta
}

/// The history's status and its chats' ids.
async fn history(host: &TestHost) -> (StatusCode, Vec<String>) {
    let response = reqwest::Client::new()
        .get(host.url("/api/history"))
        .header("x-forwarded-email", USER)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let page: Value = response.json().await.unwrap_or(Value::Null);
    let ids = page["data"]
        .as_array()
        .map(|chats| {
            chats
                .iter()
                .filter_map(|chat| chat["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

async fn rate(host: &TestHost, meta: &Value) {
    let response = reqwest::Client::new()
        .put(host.url("/api/feedback"))
        .header("x-forwarded-email", USER)
        .json(&json!({"chatId": meta["chatId"], "messageId": meta["assistantMessageId"], "isUpvoted": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// How the app starts on the platform's environment.
enum Start {
    /// `chat-host up` from the repository's spin.toml.
    ChatHostUp,
    /// The deployable folder's `app.yaml` command, in a copy of the folder.
    AppFolder,
}

#[tokio::test(flavor = "multi_thread")]
async fn with_only_the_platforms_environment_the_app_serves_and_renews_every_credential() {
    serves_and_renews_every_credential(Start::ChatHostUp).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_folder_started_by_its_app_yaml_serves_and_renews_every_credential() {
    serves_and_renews_every_credential(Start::AppFolder).await;
}

async fn serves_and_renews_every_credential(start: Start) {
    let server = ControlledDatabase::start().await;
    // The app's principal may connect and create its schema: nothing more.
    let admin = server.db.connect().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE \"{CLIENT_ID}\" LOGIN; \
             GRANT CONNECT, CREATE ON DATABASE \"{}\" TO \"{CLIENT_ID}\"; \
             REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            server.db.name
        ))
        .await
        .expect("creating the app's role");
    server.require_password_for(CLIENT_ID).await;
    let workspace = StandInWorkspace::start(WorkspaceSettings {
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        token_lifetime: TOKEN_LIFETIME,
        credential_lifetime: CREDENTIAL_LIFETIME,
        lakebase_endpoint: LAKEBASE_ENDPOINT.to_owned(),
        database_admin_url: server.db.url.clone(),
        role: CLIENT_ID.to_owned(),
        serving_endpoint: SERVING_ENDPOINT.to_owned(),
    })
    .await;

    // Only what Databricks Apps sets, plus what app.yaml binds from the
    // app's resources; no db_url, no SPIN_VARIABLE_*.
    let (host_name, port) = server
        .db
        .url
        .trim_start_matches("postgres://")
        .split('@')
        .next_back()
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once(':'))
        .map(|(host, port)| (host.to_owned(), port.to_owned()))
        .expect("the test database's host and port");
    let mut config = HostConfig::new("");
    config.variables.clear();
    let config = config
        .on_databricks_apps_port()
        .env("DATABRICKS_HOST", &workspace.origin)
        .env("DATABRICKS_CLIENT_ID", CLIENT_ID)
        .env("DATABRICKS_CLIENT_SECRET", CLIENT_SECRET)
        .env("DATABRICKS_APP_NAME", "chat-history")
        .env("PGHOST", &host_name)
        .env("PGPORT", &port)
        .env("PGDATABASE", &server.db.name)
        .env("PGUSER", CLIENT_ID)
        .env("PGSSLMODE", "disable");
    let host = match start {
        Start::ChatHostUp => {
            let config = config
                .env("LAKEBASE_ENDPOINT", LAKEBASE_ENDPOINT)
                .env("DATABRICKS_SERVING_ENDPOINT_NAME", SERVING_ENDPOINT);
            TestHost::launch(config).await
        }
        Start::AppFolder => launch_app_folder(config).await,
    };
    assert!(
        host.log().contains("chat schema initialised"),
        "the principal created its schema:\n{}",
        host.log()
    );

    // Chat, history, feedback.
    let first = chat(&host, "Is this on Databricks").await;
    let (status, chats) = history(&host).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chats, [first["chatId"].as_str().unwrap()]);
    rate(&host, &first).await;
    let mlflow = &workspace.mlflow;
    chat_tests::eventually(
        "the rating in the workspace's MLflow",
        PATIENCE,
        async || (mlflow.assessments().len() == 1).then_some(()),
    )
    .await;
    let (tokens, credentials) = workspace.issued();
    assert!(
        tokens >= 1 && credentials >= 1,
        "{tokens} tokens, {credentials} credentials"
    );

    // Every token and credential issued so far runs out (the app renews
    // its token meanwhile), and every connection is cut.
    let last_expiry = workspace.last_expiry().expect("something was issued");
    chat_tests::eventually("everything issued so far expired", PATIENCE, async || {
        (std::time::Instant::now() >= last_expiry).then_some(())
    })
    .await;
    let cut: Vec<bool> = server
        .db
        .column(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&CLIENT_ID],
        )
        .await;
    assert!(!cut.is_empty(), "the app had connections to cut");

    // The next requests log in again, with fresh ones.
    let second = chat(&host, "Still there").await;
    let (status, chats) = history(&host).await;
    assert_eq!(status, StatusCode::OK, "not ephemeral mode");
    assert_eq!(chats.len(), 2, "{chats:?}");
    rate(&host, &second).await;
    chat_tests::eventually("the second rating in MLflow", PATIENCE, async || {
        (mlflow.assessments().len() == 2).then_some(())
    })
    .await;
    let (renewed_tokens, renewed_credentials) = workspace.issued();
    assert!(renewed_tokens > tokens && renewed_credentials > credentials);
    assert_eq!(
        workspace.refused(),
        Vec::<String>::new(),
        "no expired token sent"
    );
    let reply = Uuid::parse_str(second["assistantMessageId"].as_str().unwrap()).unwrap();
    let stored: Vec<String> = server
        .db
        .column(
            r#"SELECT status FROM chat."Message" WHERE id = $1"#,
            &[&reply],
        )
        .await;
    assert_eq!(stored, ["complete"]);

    // No secret, token or password reached the log.
    let log = host.log();
    for secret in workspace
        .secrets()
        .into_iter()
        .chain([CLIENT_SECRET.to_owned()])
    {
        assert!(!log.contains(&secret), "a secret in the log:\n{log}");
    }
    assert!(!log.contains("ephemeral"), "{log}");
}

/// Starts a copy of the built app folder, without executable bits, with its
/// `app.yaml` command and the environment the platform gives it: `config`'s
/// and what `app.yaml` binds from the app's resources (databricks.yml).
async fn launch_app_folder(mut config: HostConfig) -> TestHost {
    let folder = app_folder::copy_without_executable_bits(&app_folder::built());
    let app_yaml = AppYaml::read(&folder);
    for (name, source) in &app_yaml.env {
        let value = match source {
            EnvSource::Value(value) => value.as_str(),
            EnvSource::Resource(resource) => match resource.as_str() {
                "postgres" => LAKEBASE_ENDPOINT,
                "serving-endpoint" => SERVING_ENDPOINT,
                other => {
                    panic!("app.yaml binds {name} to {other:?}, no resource of databricks.yml")
                }
            },
        };
        config = config.env(name, value);
    }
    for bound in ["LAKEBASE_ENDPOINT", "DATABRICKS_SERVING_ENDPOINT_NAME"] {
        assert!(config.env.contains_key(bound), "app.yaml binds no {bound}");
    }
    let command = app_yaml.command;
    tokio::task::spawn_blocking(move || TestHost::start_app_folder(folder, &command, config))
        .await
        .expect("starting the app folder")
}

#[test]
fn every_file_of_the_app_folder_fits_the_platform() {
    let folder = app_folder::built();
    let files = app_folder::files(&folder);
    let oversized: Vec<_> = files
        .iter()
        .filter(|(_, size)| *size > app_folder::FILE_LIMIT_BYTES)
        .collect();
    assert!(oversized.is_empty(), "over 10 MB: {oversized:?}");

    // What a deployment needs, and only that: the server, the start script
    // app.yaml names, the manifest and one precompiled file per component.
    let names: Vec<String> = files
        .iter()
        .map(|(path, _)| path.to_string_lossy().into_owned())
        .collect();
    let manifest = chat_manifest::Manifest::load(&folder.join("spin.toml")).unwrap();
    let mut expected: Vec<String> = ["app.yaml", "bin/chat-host.gz", "spin.toml", "start.sh"]
        .into_iter()
        .map(str::to_owned)
        .chain(manifest.components.values().map(|component| {
            let source = component.source.strip_prefix(&folder).unwrap();
            assert_eq!(source.extension().unwrap(), "cwasm", "{}", source.display());
            source.to_string_lossy().into_owned()
        }))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    assert!(
        manifest
            .components
            .values()
            .all(|component| component.build.is_none()),
        "no build commands in the deployed manifest"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_precompiled_by_another_wasmtime_is_refused_at_start_saying_what_differs() {
    let folder = app_folder::copy_without_executable_bits(&app_folder::built());
    let manifest = chat_manifest::Manifest::load(&folder.join("spin.toml")).unwrap();
    let (id, component) = manifest.components.iter().next().unwrap();
    // wasmtime stamps its major version into every artifact and refuses
    // another's: the engine section holds it as a length-prefixed string,
    // then the length-prefixed target.
    let major = wasmtime_major_version();
    let target = "x86_64-unknown-linux-gnu";
    let stamp_of = |version: &str| {
        [
            &[version.len() as u8][..],
            version.as_bytes(),
            &[target.len() as u8],
            target.as_bytes(),
        ]
        .concat()
    };
    let other = (major.parse::<u32>().unwrap() - 1).to_string();
    assert_eq!(other.len(), major.len());
    let mut bytes = std::fs::read(&component.source).unwrap();
    let stamp = stamp_of(&major);
    let at = bytes
        .windows(stamp.len())
        .position(|window| window == stamp)
        .expect("the artifact names the wasmtime that made it");
    bytes[at..at + stamp.len()].copy_from_slice(&stamp_of(&other));
    std::fs::write(&component.source, bytes).unwrap();

    let (status, log) = run_until_it_exits(
        folder,
        // A database, so that none is looked for first; the components
        // load before anything connects to it.
        &[("SPIN_VARIABLE_DB_URL", "postgres://nobody@127.0.0.1:1/none")],
    )
    .await;
    assert!(!status.success(), "it started:\n{log}");
    for named in [
        format!("components/{id}.cwasm"),
        format!("incompatible version '{other}'"),
        "precompile it again".to_owned(),
    ] {
        assert!(log.contains(&named), "the refusal names {named:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_the_platform_without_a_database_the_app_folder_says_what_to_bind() {
    let folder = app_folder::copy_without_executable_bits(&app_folder::built());
    let (status, log) = run_until_it_exits(folder, &[]).await;
    assert!(!status.success(), "it started:\n{log}");
    assert!(
        log.contains("no database") && log.contains("`postgres`"),
        "{log}"
    );
    assert!(
        !log.contains("local PostgreSQL"),
        "no local database on the platform:\n{log}"
    );
}

/// Runs the app folder's `app.yaml` command in `folder` with the
/// platform's port and `env` only, until it exits (it is expected to
/// refuse to start); answers how it exited and what it printed. The folder
/// is removed.
async fn run_until_it_exits(
    folder: std::path::PathBuf,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let app_yaml = AppYaml::read(&folder);
    let mut env: std::collections::BTreeMap<String, String> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    env.insert(
        "DATABRICKS_APP_PORT".to_owned(),
        chat_tests::host::free_port().to_string(),
    );
    let output = tokio::process::Command::from(app_folder::platform_command(
        &folder,
        &app_yaml.command,
        &env,
    ))
    .output()
    .await
    .expect("running the app folder's command");
    let _ = std::fs::remove_dir_all(&folder);
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status, log)
}

/// The major version of the wasmtime chat-host is built with, as
/// Cargo.lock pins it.
fn wasmtime_major_version() -> String {
    let lock = std::fs::read_to_string(chat_tests::repo_root().join("Cargo.lock")).unwrap();
    let (_, after) = lock
        .split_once("name = \"wasmtime\"\nversion = \"")
        .expect("wasmtime in Cargo.lock");
    after.split('.').next().unwrap().to_owned()
}
