//! Databricks Apps, chat-host only (Spin has no such support): with only
//! the environment the platform sets, and a stand-in workspace
//! (`chat_tests::workspace`) that issues short-lived OAuth tokens and
//! Lakebase credentials, the app serves — its database role holding only
//! CONNECT and CREATE — chats with the workspace's serving endpoint, rates
//! into its MLflow, and when every token and credential has expired and
//! every connection is cut, logs in again with fresh ones, never falling
//! into ephemeral mode; no secret reaches its log.

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
    let events = reqwest::Client::new()
        .post(host.url("/api/chat"))
        .header("x-forwarded-email", USER)
        .json(&json!({"messages": [{"role": "user", "content": question}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        events.contains(&format!("You asked: {question}")),
        "{events}"
    );
    chat_tests::sse::meta_event(&events)
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

#[tokio::test(flavor = "multi_thread")]
async fn with_only_the_platforms_environment_the_app_serves_and_renews_every_credential() {
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
        .env("PGSSLMODE", "disable")
        .env("LAKEBASE_ENDPOINT", LAKEBASE_ENDPOINT)
        .env("DATABRICKS_SERVING_ENDPOINT_NAME", SERVING_ENDPOINT);
    let host = TestHost::launch(config).await;
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
