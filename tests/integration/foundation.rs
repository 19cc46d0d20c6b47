//! The foundation end to end: chat-host serving the history and admin-schema
//! components over HTTP, against a real PostgreSQL.

use chat_tests::database::TestDatabase;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::seed::{Role, Seed, Status, Visibility, When};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "test-admin-token";

async fn start(db: &TestDatabase) -> TestHost {
    TestHost::start(HostConfig::new(&db.url).variable("admin_token", ADMIN_TOKEN))
}

async fn get(host: &TestHost, path: &str, email: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().get(host.url(path));
    if let Some(email) = email {
        request = request.header("x-forwarded-email", email);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
    };
    (status, body)
}

/// Inserts chats for `user` with the given createdAt values (seconds since
/// 2026-01-01), returning their ids in insertion order.
async fn seed_chats(db: &TestDatabase, user: &str, created: &[i64]) -> Vec<Uuid> {
    let seed = Seed::connect(db).await;
    let mut ids = Vec::new();
    for (i, seconds) in created.iter().enumerate() {
        let chat = seed
            .chat(user, Visibility::Private)
            .titled(&format!("chat {i}"))
            .at(When::SecondsInto2026(*seconds as f64))
            .await;
        ids.push(chat);
    }
    ids
}

fn ids_of(page: &Value) -> Vec<Uuid> {
    page["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|chat| chat["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn session_comes_from_gateway_headers_or_the_dev_identity() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;

    let response = reqwest::Client::new()
        .get(host.url("/api/session"))
        .header("x-forwarded-email", "ada@example.com")
        .header("x-forwarded-preferred-username", "Ada")
        .header("x-forwarded-user", "12345")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session: Value = response.json().await.unwrap();
    assert_eq!(
        session,
        json!({"user": {"id": "ada@example.com", "email": "ada@example.com", "name": "Ada"}, "authenticated": true})
    );

    let (status, body) = get(&host, "/api/session", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authentication required"),
        "{body}"
    );

    let dev =
        TestHost::start(HostConfig::new(&db.url).variable("dev_user_email", "dev@example.com"));
    let (status, body) = get(&dev, "/api/session", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user"]["id"], "dev@example.com");
    assert_eq!(body["authenticated"], false);
}

#[tokio::test]
async fn history_starts_empty_and_records_the_user() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, body) = get(&host, "/api/history", Some("new@example.com")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"data": [], "hasMore": false}));
    let users = db
        .connect()
        .await
        .query(r#"SELECT id, email FROM chat."User""#, &[])
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].get::<_, String>(0), "new@example.com");

    let (status, body) = get(&host, "/api/history", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn pagination_walks_both_ways_through_chats_that_share_a_timestamp() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let user = "pager@example.com";
    // 25 chats, five timestamps shared by five chats each.
    let created: Vec<i64> = (0..25).map(|i| i / 5).collect();
    seed_chats(&db, user, &created).await;
    let expected: Vec<Uuid> = db
        .column(
            r#"SELECT id FROM chat."Chat" WHERE "userId" = $1 ORDER BY "createdAt" DESC, id DESC"#,
            &[&user],
        )
        .await;

    // Forward, 7 at a time: every chat exactly once, newest first.
    let mut seen: Vec<Uuid> = Vec::new();
    let mut path = "/api/history?limit=7".to_owned();
    loop {
        let (status, page) = get(&host, &path, Some(user)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids = ids_of(&page);
        seen.extend(&ids);
        if !page["hasMore"].as_bool().unwrap() {
            break;
        }
        path = format!(
            "/api/history?limit=7&starting_after={}",
            ids.last().unwrap()
        );
    }
    assert_eq!(seen, expected);

    // Backward from the oldest chat: each page is the one just newer than the cursor.
    let oldest = expected.last().unwrap();
    let (status, page) = get(
        &host,
        &format!("/api/history?limit=7&ending_before={oldest}"),
        Some(user),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids_of(&page), expected[17..24].to_vec());
    assert_eq!(page["hasMore"], true);
    let (_, page) = get(
        &host,
        &format!("/api/history?limit=7&ending_before={}", expected[3]),
        Some(user),
    )
    .await;
    assert_eq!(ids_of(&page), expected[0..3].to_vec());
    assert_eq!(page["hasMore"], false);

    // Limits are clamped to 1..=100; the default is 20.
    let (_, page) = get(&host, "/api/history", Some(user)).await;
    assert_eq!(ids_of(&page).len(), 20);
    assert_eq!(page["hasMore"], true);
    let (_, page) = get(&host, "/api/history?limit=0", Some(user)).await;
    assert_eq!(ids_of(&page), expected[0..1].to_vec());
    let (_, page) = get(&host, "/api/history?limit=1000", Some(user)).await;
    assert_eq!(ids_of(&page), expected);
    assert_eq!(page["hasMore"], false);

    // Bad parameters are refused with a reason.
    for query in [
        "limit=ten",
        "starting_after=not-a-uuid",
        &format!("starting_after={oldest}&ending_before={oldest}"),
    ] {
        let (status, body) = get(&host, &format!("/api/history?{query}"), Some(user)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
}

#[tokio::test]
async fn users_never_see_each_others_chats() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let alice = seed_chats(&db, "alice@example.com", &[1, 2, 3]).await;
    let bob = seed_chats(&db, "bob@example.com", &[1, 2]).await;

    let (_, page) = get(&host, "/api/history", Some("alice@example.com")).await;
    let mut ids = ids_of(&page);
    ids.sort();
    let mut expected = alice.clone();
    expected.sort();
    assert_eq!(ids, expected);

    let (_, page) = get(&host, "/api/history", Some("bob@example.com")).await;
    assert_eq!(ids_of(&page).len(), 2);

    // Another user's chat is no cursor for Bob.
    let (status, body) = get(
        &host,
        &format!("/api/history?starting_after={}", alice[0]),
        Some("bob@example.com"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        ids_of(&get(&host, "/api/history", Some("bob@example.com")).await.1)
            .iter()
            .all(|id| bob.contains(id))
    );
}

#[tokio::test]
async fn a_history_read_records_its_caller_but_a_bad_cursor_records_nobody() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let alice = seed_chats(&db, "alice@example.com", &[1]).await;
    let carol = "carol@example.com";
    let recorded = async || {
        db.column::<String>(r#"SELECT email FROM chat."User" WHERE id = $1"#, &[&carol])
            .await
    };

    // Someone else's chat as her cursor: refused, and she is not recorded.
    let (status, body) = get(
        &host,
        &format!("/api/history?starting_after={}", alice[0]),
        Some(carol),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(recorded().await.is_empty());

    // Her first page (empty) records her, as every history read does.
    let (status, page) = get(&host, "/api/history", Some(carol)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(ids_of(&page).is_empty());
    assert_eq!(recorded().await, [carol]);
}

#[tokio::test]
async fn migrations_are_idempotent_and_safe_when_hosts_start_together() {
    let db = TestDatabase::create().await;
    // Two hosts start at the same moment against one empty database.
    let (first, second) = tokio::join!(
        tokio::task::spawn_blocking({
            let url = db.url.clone();
            move || TestHost::start(HostConfig::new(&url).variable("admin_token", ADMIN_TOKEN))
        }),
        tokio::task::spawn_blocking({
            let url = db.url.clone();
            move || TestHost::start(HostConfig::new(&url).variable("admin_token", ADMIN_TOKEN))
        }),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    for host in [&first, &second] {
        let lines = host.log_lines_containing("chat schema initialised");
        assert_eq!(lines.len(), 1, "{}", host.log());
    }
    let client = db.connect().await;
    let versions: Vec<i32> = db
        .column(
            "SELECT version FROM chat.schema_migrations ORDER BY version",
            &[],
        )
        .await;
    assert_eq!(versions.first(), Some(&1));
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "{versions:?}"
    );

    // Applying again changes nothing.
    let response = reqwest::Client::new()
        .post(first.url("/admin/schema/migrate"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["applied"], json!([]));
    assert_eq!(
        body["version"].as_i64(),
        versions.last().map(|v| i64::from(*v))
    );

    let (status, status_body) = {
        let response = reqwest::Client::new()
            .get(second.url("/admin/schema"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_body["pending"], json!([]));

    // A message holds one of the five statuses, and nothing else.
    let seed = Seed::on(&client);
    let chat = seed.chat("u", Visibility::Private).titled("t").await;
    for status in Status::ALL {
        seed.message(chat, Role::Assistant, "")
            .parts(json!([]))
            .status(status)
            .await;
    }
    // Raw: a status the app could never write, which the schema must refuse.
    let refused = seed
        .raw(
            r#"INSERT INTO chat."Message" (id, "chatId", role, parts, status)
               VALUES ($1, $2, 'assistant', '[]', 'paused')"#,
            &[&Uuid::new_v4(), &chat],
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
    );

    // Eight migrations racing on an empty schema: one applies, the rest wait
    // on the advisory lock and find nothing left to do.
    client
        .batch_execute("DROP SCHEMA chat CASCADE")
        .await
        .unwrap();
    let races = (0..8).map(|i| {
        let host = if i % 2 == 0 { &first } else { &second };
        reqwest::Client::new()
            .post(host.url("/admin/schema/migrate"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    });
    let mut applied = Vec::new();
    for response in futures_util::future::join_all(races).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        applied.extend(
            body["applied"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap()),
        );
    }
    assert_eq!(
        applied,
        versions.iter().map(|v| i64::from(*v)).collect::<Vec<_>>()
    );

    // The seed's tables and indexes exist exactly as named.
    let tables: Vec<String> = db
        .column(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'chat' ORDER BY 1",
            &[],
        )
        .await;
    for table in ["Chat", "Message", "User", "Vote"] {
        assert!(tables.iter().any(|t| t == table), "{tables:?}");
    }
    for index in ["idx_chat_user", "idx_message_chat"] {
        let found = client
            .query_opt(
                "SELECT 1 FROM pg_indexes WHERE schemaname = 'chat' AND indexname = $1",
                &[&index],
            )
            .await
            .unwrap();
        assert!(found.is_some(), "{index} missing");
    }
}

#[tokio::test]
async fn admin_routes_require_the_admin_token() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let client = reqwest::Client::new();
    let response = client.get(host.url("/admin/schema")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = client
        .get(host.url("/admin/schema"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Without a configured token the routes are closed to every caller (the
    // host migrates at start-up with a token only it knows).
    let closed = TestHost::start(HostConfig::new(&db.url));
    assert_eq!(
        closed.log_lines_containing("chat schema initialised").len(),
        1,
        "{}",
        closed.log()
    );
    for token in ["", "test-admin-token"] {
        let response = client
            .get(closed.url("/admin/schema"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let (status, body) = get(&host, "/nope", Some("a@example.com")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    let response = reqwest::Client::new()
        .delete(host.url("/api/history"))
        .header("x-forwarded-email", "a@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().contains_key("allow"));
}

/// Sends `method path` with `headers`, answering the status and the error
/// sentence, if any.
async fn request_with(
    host: &TestHost,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method.clone(), host.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if method == reqwest::Method::POST {
        let message = json!({"role": "user", "content": "hi", "id": Uuid::new_v4()});
        request = request.json(&json!({"id": Uuid::new_v4(), "messages": [message]}));
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_configured_gateway_secret_is_required_before_any_identity() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(
        HostConfig::new(&db.url)
            .variable("dev_user_email", "dev@example.com")
            .variable("gateway_secret_header", "X-Gateway-Secret")
            .variable("gateway_secret", "s3cret"),
    );
    let ada = ("x-forwarded-email", "ada@example.com");

    let refused: [&[(&str, &str)]; 4] = [
        &[],
        &[ada],
        &[ada, ("x-gateway-secret", "wrong")],
        &[ada, ("x-gateway-secret", "s3cret-and-more")],
    ];
    let chat = format!("/api/messages/{}", Uuid::new_v4());
    let delete = format!("/api/chat/{}", Uuid::new_v4());
    for headers in refused {
        for (method, path) in [
            (reqwest::Method::GET, "/api/session"),
            (reqwest::Method::GET, "/api/history"),
            (reqwest::Method::GET, chat.as_str()),
            (reqwest::Method::DELETE, delete.as_str()),
            (reqwest::Method::POST, "/api/chat"),
        ] {
            let (status, body) = request_with(&host, method.clone(), path, headers).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {headers:?}: {body}"
            );
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|error| error.contains("gateway")),
                "{body}"
            );
        }
    }
    let client = db.connect().await;
    let users: i64 = client
        .query_one(r#"SELECT count(*) FROM chat."User""#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "a refused request records no user");

    let with_secret = [ada, ("x-gateway-secret", "s3cret")];
    let (status, body) =
        request_with(&host, reqwest::Method::GET, "/api/session", &with_secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], "ada@example.com");
    let (status, body) = request_with(
        &host,
        reqwest::Method::GET,
        "/api/session",
        &with_secret[1..],
    )
    .await;
    assert_eq!(
        (status, &body["user"]["id"]),
        (StatusCode::OK, &json!("dev@example.com")),
        "{body}"
    );

    // The web UI's files need no identity and stay open.
    let (status, _) = request_with(&host, reqwest::Method::GET, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn every_component_that_identifies_callers_gets_the_gateway_secret() {
    let manifest = chat_manifest::Manifest::load(&chat_tests::repo_root().join("spin.toml"))
        .expect("spin.toml");
    let mut identifying = 0;
    for (name, component) in &manifest.components {
        if !component.variables.contains_key("dev_user_email") {
            continue;
        }
        identifying += 1;
        for variable in ["gateway_secret_header", "gateway_secret"] {
            assert!(
                component.variables.contains_key(variable),
                "component {name} identifies callers but does not get {variable}: it would let \
                 requests that bypass the gateway in"
            );
        }
    }
    assert!(
        identifying >= 3,
        "history, messages and chat-stream identify callers"
    );
}

/// What only `chat-host up` does; the Spin pass skips these
/// (`--skip chat_host_only::`).
#[tokio::test]
async fn the_health_route_answers_ok_as_spin_does() {
    let db = TestDatabase::create().await;
    let host = start(&db).await;
    let response = reqwest::get(host.url("/.well-known/spin/health"))
        .await
        .expect("GET the health route");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "OK");
}

mod chat_host_only {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    /// A copy of spin.toml in a directory of its own, its components taken
    /// from this repository's build, so `chat-host up` keeps its managed
    /// PostgreSQL (under `<dir>/.chat-host`) out of the repository.
    struct AppCopy(PathBuf);

    impl AppCopy {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("chat-app-{}", Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("creating the app directory");
            let repo = chat_tests::repo_root();
            let manifest = std::fs::read_to_string(repo.join("spin.toml"))
                .expect("spin.toml")
                .replace(
                    "source = \"target/",
                    &format!("source = \"{}/target/", repo.display()),
                );
            std::fs::write(dir.join("spin.toml"), manifest).expect("writing the manifest copy");
            Self(dir)
        }

        /// Zero configuration: no variable set at all.
        fn config(&self) -> HostConfig {
            let mut config = HostConfig::new("").manifest(self.0.join("spin.toml"));
            config.variables.clear();
            config
        }
    }

    impl Drop for AppCopy {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn metrics_are_served_on_their_own_listener() {
        let db = TestDatabase::create().await;
        let metrics_port = chat_tests::host::free_port();
        let metrics_address = format!("127.0.0.1:{metrics_port}");
        // One serving thread, so the same history instance serves both
        // requests and reports the first one's calls when the second begins.
        let config = HostConfig::new(&db.url)
            .variable("admin_token", ADMIN_TOKEN)
            .host_args(&["--threads", "1", "--metrics-listen", &metrics_address]);
        let host = TestHost::launch(config).await;
        for _ in 0..2 {
            assert_eq!(
                get(&host, "/api/history", Some("metrics@example.com"))
                    .await
                    .0,
                StatusCode::OK
            );
        }
        let body =
            json!({"messages": [{"role": "user", "content": "Count me", "id": Uuid::new_v4()}]});
        let stream = reqwest::Client::new()
            .post(host.url("/api/chat"))
            .header("x-forwarded-email", "metrics@example.com")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        let text = stream.text().await.unwrap();
        assert!(text.contains("[DONE]"), "{text}");

        let metrics_url = format!("http://{metrics_address}");
        let metrics = chat_tests::metrics::scrape(&metrics_address).await;
        let value = |series: &str| {
            chat_tests::metrics::sample(&metrics, series)
                .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        };
        assert_eq!(
            value(r#"chat_host_requests_total{route="/api/history",status="200"}"#),
            2.0
        );
        assert_eq!(
            value(r#"chat_host_response_head_seconds_count{route="/api/history"}"#),
            2.0
        );
        assert_eq!(
            value(r#"chat_host_requests_total{route="/api/chat",status="200"}"#),
            1.0
        );
        assert_eq!(value("chat_host_first_chunk_seconds_count"), 1.0);
        assert_eq!(value("chat_host_active_streams"), 0.0);
        assert!(
            value(r#"chat_host_host_calls_total{component="history",kind="postgres_statements"}"#)
                >= 1.0
        );
        assert!(value(r#"chat_host_host_calls_total{component="history",kind="requests"}"#) >= 2.0);
        assert!(value(r#"chat_host_db_connections{state="idle"}"#) >= 1.0);
        assert_eq!(value("chat_host_db_breakers_open"), 0.0);
        assert_eq!(value("chat_host_journal_depth"), 0.0);
        assert_eq!(value("chat_host_feedback_outbox_depth"), 0.0);
        assert_eq!(value("chat_host_draining"), 0.0);
        // A rating waiting for MLflow, as the feedback route leaves one
        // (raw: the outbox is the app's own queue, not something a user
        // makes, so the seeding API has no word for it).
        db.connect()
            .await
            .execute(
                r#"INSERT INTO chat."FeedbackOutbox" ("messageId", "traceId", "userEmail")
                   SELECT id, 'tr-metrics', 'metrics@example.com' FROM chat."Message"
                   WHERE role = 'assistant'"#,
                &[],
            )
            .await
            .unwrap();
        let metrics = chat_tests::metrics::scrape(&metrics_address).await;
        assert_eq!(
            chat_tests::metrics::sample(&metrics, "chat_host_feedback_outbox_depth"),
            Some(1.0),
            "{metrics}"
        );
        let ready = reqwest::get(format!("{metrics_url}/.well-known/chat-host/ready"))
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        // Not on the app's port.
        let public = reqwest::get(host.url("/metrics")).await.unwrap();
        assert!(!public.text().await.unwrap().contains("chat_host_"));
    }

    #[tokio::test]
    async fn with_json_logs_every_log_line_is_one_json_object() {
        let db = TestDatabase::create().await;
        let config = HostConfig::new(&db.url)
            .variable("admin_token", ADMIN_TOKEN)
            .host_args(&["--log-format", "json"]);
        let host = TestHost::launch(config).await;
        // What chat-host printed besides its logs: the address and routes.
        let log = host.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| {
                !line.starts_with("Serving http://")
                    && !line.starts_with("Available routes:")
                    && !line.starts_with("  ")
            })
            .collect();
        assert!(!lines.is_empty(), "{log}");
        for line in &lines {
            let entry: Value = serde_json::from_str(line)
                .unwrap_or_else(|_| panic!("not a JSON log line: {line:?}"));
            assert!(entry["timestamp"].is_string(), "{entry}");
            assert!(entry["level"].is_string(), "{entry}");
        }
        let schema = lines
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|entry| {
                entry["fields"]["message"]
                    .as_str()
                    .is_some_and(|message| message.starts_with("chat schema initialised"))
            })
            .unwrap_or_else(|| panic!("the start-up migration is logged: {log}"));
        assert_eq!(schema["level"], "INFO", "{schema}");
    }

    #[tokio::test]
    async fn the_automatic_dev_identity_needs_a_loopback_listener() {
        let on_loopback = AppCopy::new();
        let host = TestHost::launch(on_loopback.config()).await;
        let (status, body) = get(&host, "/api/session", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["user"]["id"], "dev@localhost");
        assert_eq!(body["authenticated"], false);

        let on_every_interface = AppCopy::new();
        let host =
            TestHost::launch(on_every_interface.config().listen_ip(Ipv4Addr::UNSPECIFIED)).await;
        let (status, body) = get(&host, "/api/session", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            !host
                .log_lines_containing("which is not a loopback address")
                .is_empty(),
            "chat-host says why there is no dev identity:\n{}",
            host.log()
        );
        let (status, body) = get(&host, "/api/session", Some("ada@example.com")).await;
        assert_eq!(
            (status, &body["user"]["id"]),
            (StatusCode::OK, &json!("ada@example.com"))
        );
    }
}
