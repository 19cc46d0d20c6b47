//! Each component alone under wasmtime with chat-host's capabilities
//! (`chat_tests::solo`): no spin.toml file, no router, no HTTP server; the
//! component's own handler called in a store, as an embedder would. Each is
//! given what its `[component]` table in spin.toml gives it, a real
//! PostgreSQL where it needs one, and for chat-stream a scripted model
//! endpoint on loopback.

use anyhow::{Context, Result};
use bytes::Bytes;
use chat_domain::database::migrations;
use chat_tests::database::TestDatabase;
use chat_tests::seed::{Role, Seed, Visibility, When};
use chat_tests::solo::{SoloComponent, SoloResponse, request};
use chat_tests::upstream::{Script, ScriptedUpstream, Step};
use demo_rules::agent;
use http::{HeaderValue, Method};
use serde_json::{Value, json};
use uuid::Uuid;

const OWNER: &str = "owner@example.com";
const OTHER: &str = "other@example.com";
const DEV_USER: &str = "dev@example.com";
const ADMIN_TOKEN: &str = "solo-admin-token";
const SERVING_TOKEN: &str = "solo-serving-token";
/// spin.toml's Postgres entry: the server comes from `db_url`.
const ANY_POSTGRES: &str = "postgres://*:*";
const DEMO_AGENT_PATH: &str = "/serving-endpoints/demo-agent/invocations";

/// history, messages or chat-stream as spin.toml declares them: the
/// breaker's and journal's key-value store, Postgres, `db_url` and the dev
/// identity.
fn database_component(wasm_file: &str, id: &str, db_url: &str) -> Result<SoloComponent> {
    Ok(SoloComponent::new(wasm_file, id)?
        .key_value_store("default")
        .allowed_outbound_host(ANY_POSTGRES)
        .variable("db_url", db_url)
        .variable("dev_user_email", DEV_USER))
}

fn admin_schema(db_url: &str) -> Result<SoloComponent> {
    Ok(SoloComponent::new("admin_schema.wasm", "admin-schema")?
        .allowed_outbound_host(ANY_POSTGRES)
        .variable("db_url", db_url)
        .variable("admin_token", ADMIN_TOKEN))
}

/// A bodiless request, signed in as `email` by the gateway when given.
fn bodiless(method: Method, path: &str, email: Option<&str>) -> http::Request<Bytes> {
    let mut builder = request(method, path);
    if let Some(email) = email {
        builder = builder.header("x-forwarded-email", email);
    }
    builder.body(Bytes::new()).expect("a valid request")
}

fn get(path: &str, email: &str) -> http::Request<Bytes> {
    bodiless(Method::GET, path, Some(email))
}

/// A JSON POST, sized as an HTTP client sends it.
fn post_json(path: &str, email: Option<&str>, body: &Value) -> http::Request<Bytes> {
    let mut request = bodiless(Method::POST, path, email);
    let body = Bytes::from(body.to_string());
    let headers = request.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("content-length", body.len().into());
    *request.body_mut() = body;
    request
}

fn with_admin_token(method: Method, path: &str) -> http::Request<Bytes> {
    let mut request = bodiless(method, path, None);
    let bearer = format!("Bearer {ADMIN_TOKEN}").parse().unwrap();
    request.headers_mut().insert("authorization", bearer);
    request
}

/// A 200 JSON answer's body.
async fn ok_json(response: SoloResponse) -> Result<Value> {
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.json().await
}

/// The `error_code` of an MLflow error answer, which must have this status.
async fn error_code(response: SoloResponse, status: u16) -> Result<String> {
    assert_eq!(response.status, status);
    let body = response.json().await?;
    let code = body["error_code"]
        .as_str()
        .context("an MLflow error code")?;
    Ok(code.to_owned())
}

/// The sentence of an error answer, which must have this status and the
/// API's shape, `{"error": "<sentence>"}`.
async fn error_of(response: SoloResponse, status: u16) -> Result<String> {
    assert_eq!(response.status, status);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json().await?;
    assert_eq!(
        body.as_object().map(|fields| fields.len()),
        Some(1),
        "{body}"
    );
    let sentence = body["error"].as_str().context("an error sentence")?;
    Ok(sentence.to_owned())
}

/// A fresh database migrated by the admin-schema component.
async fn migrated_database() -> Result<TestDatabase> {
    let db = TestDatabase::create().await;
    let migrate = with_admin_token(Method::POST, "/admin/schema/migrate");
    ok_json(admin_schema(&db.url)?.call(migrate).await?).await?;
    Ok(db)
}

fn parse(event: &str) -> Result<Value> {
    serde_json::from_str(event).with_context(|| format!("an event that is not JSON: {event:?}"))
}

#[tokio::test]
async fn history_answers_sessions_and_refuses_what_it_does_not_serve() -> Result<()> {
    let history = database_component("history.wasm", "history", "")?;

    let session = ok_json(history.call(get("/api/session", "ada@example.com")).await?).await?;
    assert_eq!(session["user"]["email"], "ada@example.com");
    assert_eq!(session["authenticated"], true);

    // No gateway headers: the dev identity, read through spin:variables.
    let anonymous = bodiless(Method::GET, "/api/session", None);
    let session = ok_json(history.call(anonymous).await?).await?;
    assert_eq!(session["user"]["id"], DEV_USER);
    assert_eq!(session["authenticated"], false);

    let wrong_method = history
        .call(bodiless(Method::POST, "/api/history", None))
        .await?;
    assert_eq!(wrong_method.header("allow"), Some("GET"));
    error_of(wrong_method, 405).await?;

    let elsewhere = history.call(get("/api/elsewhere", OWNER)).await?;
    assert!(error_of(elsewhere, 404).await?.contains("/api/elsewhere"));
    Ok(())
}

#[tokio::test]
async fn history_migrates_a_fresh_database_and_lists_the_callers_chats() -> Result<()> {
    let db = TestDatabase::create().await;
    let history = database_component("history.wasm", "history", &db.url)?;

    // The first request finds no schema and creates it.
    let page = ok_json(history.call(get("/api/history", OWNER)).await?).await?;
    assert_eq!(page, json!({"data": [], "hasMore": false}));
    let versions: Vec<i32> = db
        .column("SELECT version FROM chat.schema_migrations", &[])
        .await;
    assert_eq!(versions.len(), migrations::MIGRATIONS.len());
    let users: Vec<String> = db.column(r#"SELECT id FROM chat."User""#, &[]).await;
    assert_eq!(users, [OWNER], "the caller is recorded");

    let seed = Seed::connect(&db).await;
    let older = seed
        .chat(OWNER, Visibility::Private)
        .titled("Older")
        .at(When::SecondsInto2026(60.0))
        .await;
    let newer = seed
        .chat(OWNER, Visibility::Private)
        .titled("Newer")
        .at(When::SecondsInto2026(120.0))
        .await;
    seed.chat(OTHER, Visibility::Private)
        .titled("Not yours")
        .at(When::SecondsInto2026(180.0))
        .await;
    let page = ok_json(history.call(get("/api/history", OWNER)).await?).await?;
    let listed: Vec<Value> = page["data"]
        .as_array()
        .context("a list of chats")?
        .iter()
        .map(|chat| json!([chat["id"], chat["title"], chat["visibility"]]))
        .collect();
    assert_eq!(
        listed,
        [
            json!([newer, "Newer", "private"]),
            json!([older, "Older", "private"])
        ],
        "the caller's chats, newest first"
    );
    assert_eq!(page["hasMore"], false);
    Ok(())
}

#[tokio::test]
async fn messages_shows_a_chat_to_its_owner_and_to_nobody_else() -> Result<()> {
    let db = migrated_database().await?;
    let seed = Seed::connect(&db).await;
    let chat = seed
        .chat(OWNER, Visibility::Private)
        .titled("Geography")
        .at(When::SecondsInto2026(0.0))
        .await;
    let question = seed.message(chat, Role::User, "Capital of France?").await;
    let answer = seed
        .message(chat, Role::Assistant, "Paris.")
        .traced("tr-paris")
        .await;
    let messages = database_component("messages.wasm", "messages", &db.url)?;
    let path = format!("/api/messages/{chat}");

    let page = ok_json(messages.call(get(&path, OWNER)).await?).await?;
    assert_eq!(page["source"], "live");
    let shown: Vec<Value> = page["data"]
        .as_array()
        .context("a list of messages")?
        .iter()
        .map(|message| {
            json!([
                message["id"],
                message["role"],
                message["parts"],
                message["traceId"]
            ])
        })
        .collect();
    assert_eq!(
        shown,
        [
            json!([question, "user", [{"type": "text", "text": "Capital of France?"}], null]),
            json!([answer, "assistant", [{"type": "text", "text": "Paris."}], "tr-paris"]),
        ]
    );

    error_of(messages.call(get(&path, OTHER)).await?, 403).await?;
    let unknown = format!("/api/messages/{}", Uuid::new_v4());
    error_of(messages.call(get(&unknown, OWNER)).await?, 404).await?;
    let malformed = messages
        .call(get("/api/messages/not-a-uuid", OWNER))
        .await?;
    error_of(malformed, 400).await?;

    // Once public, anyone may read it.
    db.connect()
        .await
        .execute(
            r#"UPDATE chat."Chat" SET visibility = 'public' WHERE id = $1"#,
            &[&chat],
        )
        .await?;
    let page = ok_json(messages.call(get(&path, OTHER)).await?).await?;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    Ok(())
}

#[tokio::test]
async fn admin_schema_reports_and_migrates_for_token_holders_only() -> Result<()> {
    let db = TestDatabase::create().await;
    let admin = admin_schema(&db.url)?;
    let every_version: Vec<u32> = migrations::MIGRATIONS.iter().map(|m| m.version).collect();
    let latest = migrations::latest_version();

    let no_token = admin
        .call(bodiless(Method::GET, "/admin/schema", None))
        .await?;
    error_of(no_token, 401).await?;
    let mut wrong_token = bodiless(Method::GET, "/admin/schema", None);
    let wrong = "Bearer not-the-token".parse()?;
    wrong_token.headers_mut().insert("authorization", wrong);
    error_of(admin.call(wrong_token).await?, 401).await?;

    let status = with_admin_token(Method::GET, "/admin/schema");
    let status = ok_json(admin.call(status).await?).await?;
    assert_eq!(
        status,
        json!({"version": 0, "latest": latest, "pending": every_version})
    );

    let migrate = with_admin_token(Method::POST, "/admin/schema/migrate");
    let report = ok_json(admin.call(migrate).await?).await?;
    assert_eq!(report, json!({"applied": every_version, "version": latest}));
    let tables: Vec<String> = db
        .column(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'chat' ORDER BY table_name",
            &[],
        )
        .await;
    assert_eq!(
        tables,
        [
            "Chat",
            "FeedbackOutbox",
            "Folder",
            "Message",
            "User",
            "Vote",
            "schema_migrations"
        ]
    );

    let status = with_admin_token(Method::GET, "/admin/schema");
    let status = ok_json(admin.call(status).await?).await?;
    assert_eq!(
        status,
        json!({"version": latest, "latest": latest, "pending": []})
    );
    let migrate_again = with_admin_token(Method::POST, "/admin/schema/migrate");
    let report = ok_json(admin.call(migrate_again).await?).await?;
    assert_eq!(report, json!({"applied": [], "version": latest}));

    let wrong_method = admin
        .call(with_admin_token(Method::GET, "/admin/schema/migrate"))
        .await?;
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    error_of(wrong_method, 405).await?;
    Ok(())
}

#[tokio::test]
async fn ui_serves_the_page_and_its_assets_with_etags() -> Result<()> {
    let ui = SoloComponent::new("ui.wasm", "ui")?;

    let page = ui.call(get("/", OWNER)).await?;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page_etag = page.header("etag").context("the page's ETag")?.to_owned();
    let html = page.text().await?;
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains(r#"src="/assets/app.js""#), "{html}");

    // A deep link is the same page.
    let deep_link = ui
        .call(get(&format!("/chat/{}", Uuid::new_v4()), OWNER))
        .await?;
    assert_eq!(deep_link.status, 200);
    assert_eq!(deep_link.header("etag"), Some(page_etag.as_str()));

    let script = ui.call(get("/assets/app.js", OWNER)).await?;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(script.header("cache-control"), Some("no-cache"));
    let etag = script
        .header("etag")
        .context("the asset's ETag")?
        .to_owned();
    assert_ne!(etag, page_etag);
    assert!(!script.body().await?.is_empty());

    let mut revalidation = get("/assets/app.js", OWNER);
    revalidation
        .headers_mut()
        .insert("if-none-match", etag.parse()?);
    let unchanged = ui.call(revalidation).await?;
    assert_eq!(unchanged.status, 304);
    assert_eq!(unchanged.header("etag"), Some(etag.as_str()));
    assert!(unchanged.body().await?.is_empty());

    let missing = ui.call(get("/assets/missing.js", OWNER)).await?;
    assert!(error_of(missing, 404).await?.contains("/assets/missing.js"));
    Ok(())
}

/// What a `"stream": true` invocation of the demo agent answers.
fn streamed_invocation(path: &str, question: &str) -> http::Request<Bytes> {
    let body = json!({"messages": [{"role": "user", "content": question}], "stream": true});
    post_json(path, None, &body)
}

/// The text the delta events stream, each event's piece at `pointer`.
fn streamed_text(deltas: &[String], pointer: &str) -> Result<String> {
    deltas
        .iter()
        .map(|event| {
            let event = parse(event)?;
            let piece = event.pointer(pointer).and_then(Value::as_str);
            piece
                .map(str::to_owned)
                .with_context(|| format!("no text at {pointer} in {event}"))
        })
        .collect()
}

/// An MLflow-style trace id: `tr-` and 32 hex digits.
fn assert_trace_id(trace_id: &Value) {
    let hex = trace_id.as_str().and_then(|id| id.strip_prefix("tr-"));
    assert!(
        hex.is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        "not a trace id: {trace_id}"
    );
}

#[tokio::test]
async fn demo_agent_streams_its_reply_word_by_word_in_both_formats() -> Result<()> {
    let agent = SoloComponent::new("demo_agent.wasm", "demo-agent")?;
    let question = "What is the capital of France?";
    let reply = agent::reply_text(question);

    // Chat-completions chunks, read as they come: one write per word.
    let mut response = agent
        .call(streamed_invocation(DEMO_AGENT_PATH, question))
        .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let mut events = Vec::new();
    while let Some(chunk) = response.next_chunk().await? {
        let chunk = std::str::from_utf8(&chunk)?;
        let event = chunk
            .strip_prefix("data: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .filter(|data| !data.contains("\n\n"))
            .with_context(|| format!("a chunk that is not exactly one event: {chunk:?}"))?;
        events.push(event.to_owned());
    }
    let [deltas @ .., last, done] = events.as_slice() else {
        panic!("too few events: {events:?}");
    };
    assert_eq!(
        deltas.len(),
        agent::pieces(&reply).len(),
        "one event per word"
    );
    assert_eq!(streamed_text(deltas, "/choices/0/delta/content")?, reply);
    let last = parse(last)?;
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_trace_id(&last["databricks_output"]["trace"]["info"]["trace_id"]);
    assert_eq!(done, "[DONE]");

    // Responses API events.
    let path = format!("{DEMO_AGENT_PATH}?format=responses");
    let events = agent
        .call(streamed_invocation(&path, question))
        .await?
        .events()
        .await?;
    let [deltas @ .., completed, done] = events.as_slice() else {
        panic!("too few events: {events:?}");
    };
    assert_eq!(streamed_text(deltas, "/delta")?, reply);
    let completed = parse(completed)?;
    assert_eq!(completed["type"], "response.completed");
    assert_trace_id(&completed["trace_id"]);
    assert_eq!(done, "[DONE]");
    Ok(())
}

#[tokio::test]
async fn demo_agent_titles_a_chat_at_once_and_takes_only_posts() -> Result<()> {
    let agent = SoloComponent::new("demo_agent.wasm", "demo-agent")?;
    let title_request = json!({"messages": [
        {"role": "system", "content": "Name this chat."},
        {"role": "user", "content": "What is the capital of France?"}
    ]});
    let answer = ok_json(
        agent
            .call(post_json(DEMO_AGENT_PATH, None, &title_request))
            .await?,
    )
    .await?;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "What is the capital of France"
    );

    let wrong_method = agent
        .call(bodiless(Method::GET, DEMO_AGENT_PATH, None))
        .await?;
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    error_of(wrong_method, 405).await?;
    Ok(())
}

#[tokio::test]
async fn demo_agent_keeps_the_assessments_it_receives_as_mlflow_does() -> Result<()> {
    // Each call a fresh instance: what it keeps is in the key-value store.
    let agent = SoloComponent::new("demo_agent.wasm", "demo-agent")?.key_value_store("default");
    // A reply logs its trace in the demo MLflow; before, no call knows it.
    let unknown = agent
        .call(bodiless(
            Method::GET,
            "/api/3.0/mlflow/traces/tr-nobody",
            None,
        ))
        .await?;
    assert_eq!(error_code(unknown, 404).await?, "RESOURCE_DOES_NOT_EXIST");
    let title_request = json!({"messages": [{"role": "user", "content": "Trace me"}]});
    let answer = ok_json(
        agent
            .call(post_json(DEMO_AGENT_PATH, None, &title_request))
            .await?,
    )
    .await?;
    let trace_id = answer["databricks_output"]["trace"]["info"]["trace_id"]
        .as_str()
        .context("the reply's trace id")?
        .to_owned();
    let traces = format!("/api/3.0/mlflow/traces/{trace_id}");
    // The trace's assessments; a trace without any has no such key.
    let assessments = async || -> Result<Value> {
        let answer = ok_json(agent.call(bodiless(Method::GET, &traces, None)).await?).await?;
        Ok(answer["trace"]["trace_info"]["assessments"].clone())
    };
    assert_eq!(assessments().await?, Value::Null);

    let assessment = json!({"assessment": {
        "assessment_name": "user_feedback",
        "source": {"source_type": "HUMAN", "source_id": "ada@example.com"},
        "feedback": {"value": true},
    }});
    let created = ok_json(
        agent
            .call(post_json(
                &format!("{traces}/assessments"),
                None,
                &assessment,
            ))
            .await?,
    )
    .await?;
    let id = created["assessment"]["assessment_id"]
        .as_str()
        .context("an assessment id")?
        .to_owned();
    assert_eq!(assessments().await?[0]["feedback"]["value"], true);

    let mut change = post_json(
        &format!("{traces}/assessments/{id}"),
        None,
        &json!({"assessment": {"feedback": {"value": false}}, "update_mask": "feedback"}),
    );
    *change.method_mut() = Method::PATCH;
    ok_json(agent.call(change).await?).await?;
    let kept = assessments().await?;
    assert_eq!(kept.as_array().map(Vec::len), Some(1));
    assert_eq!(kept[0]["feedback"]["value"], false);
    assert_eq!(kept[0]["assessment_id"], id.as_str());

    // Deleted, and deleted again: 200 both times, as the real server answers.
    for _ in 0..2 {
        let delete = bodiless(Method::DELETE, &format!("{traces}/assessments/{id}"), None);
        ok_json(agent.call(delete).await?).await?;
    }
    assert_eq!(assessments().await?, Value::Null);
    // A path the real server has no route for is its web server's HTML page.
    let no_route = agent
        .call(bodiless(Method::GET, &format!("{traces}/info"), None))
        .await?;
    assert_eq!(no_route.status, 404);
    assert!(
        no_route
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "an HTML page"
    );
    Ok(())
}

fn chat_chunk(text: &str) -> Value {
    json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})
}

fn frame(chunk: &Value) -> Step {
    Step::Send(format!("data: {chunk}\n\n"))
}

#[tokio::test]
async fn chat_stream_relays_each_chunk_as_it_comes_and_stores_the_conversation() -> Result<()> {
    let db = TestDatabase::create().await;
    let upstream = ScriptedUpstream::start().await;
    let chat_stream = database_component("chat_stream.wasm", "chat-stream", &db.url)?
        .allowed_outbound_host(&upstream.origin)
        .variable("serving_endpoint_url", &upstream.url)
        .variable("serving_token", SERVING_TOKEN);
    let chunks = [
        chat_chunk("Paris "),
        chat_chunk("is the "),
        json!({
            "choices": [{"index": 0, "delta": {"content": "capital."}, "finish_reason": "stop"}],
            "databricks_output": {"trace": {"info": {"trace_id": "tr-paris"}}}
        }),
    ];
    // Each chunk waits until the test has seen the one before, so the reply
    // completes only if chat-stream passes every chunk on as it comes.
    upstream.expect_reply(Script::stream(vec![
        frame(&chunks[0]),
        Step::AwaitAck(1),
        frame(&chunks[1]),
        Step::AwaitAck(2),
        frame(&chunks[2]),
        Step::Send("data: [DONE]\n\n".to_owned()),
    ]));
    let title =
        json!({"choices": [{"message": {"role": "assistant", "content": "Capital of France"}}]});
    upstream.expect_title(Script::json_after(Vec::new(), &title));
    let (chat, question) = (Uuid::new_v4(), Uuid::new_v4());
    let body = json!({"id": chat, "messages": [
        {"role": "user", "content": "What is the capital of France?", "id": question}
    ]});

    let mut response = chat_stream
        .call(post_json("/api/chat", Some(OWNER), &body))
        .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    for (seen, chunk) in chunks.iter().enumerate() {
        let event = response
            .next_event()
            .await?
            .context("the stream ended early")?;
        assert_eq!(parse(&event)?, *chunk);
        upstream.acknowledge(seen + 1);
    }
    // The rest, once chat-stream's every task (the title too) has ended.
    let rest = response.events().await?;
    let [meta, done] = rest.as_slice() else {
        panic!("expected the meta event and [DONE]: {rest:?}");
    };
    assert_eq!(done, "[DONE]");
    let meta = parse(meta)?;
    assert_eq!(meta["type"], "meta");
    assert_eq!(meta["traceId"], "tr-paris");
    assert!(
        meta.get("chatId").is_none(),
        "the client named the chat: {meta}"
    );
    let reply: Uuid = meta["assistantMessageId"]
        .as_str()
        .context("the reply's id")?
        .parse()?;

    let stored: Vec<_> = db
        .stored_messages(chat)
        .await
        .into_iter()
        .map(|m| (m.id, m.role, m.text, m.trace_id, m.status))
        .collect();
    let complete = "complete".to_owned();
    assert_eq!(
        stored,
        [
            (
                question,
                "user".to_owned(),
                "What is the capital of France?".to_owned(),
                None,
                complete.clone()
            ),
            (
                reply,
                "assistant".to_owned(),
                "Paris is the capital.".to_owned(),
                Some("tr-paris".to_owned()),
                complete
            ),
        ]
    );
    let chats: Vec<String> = db
        .column(
            r#"SELECT "userId" || ': ' || title FROM chat."Chat" WHERE id = $1"#,
            &[&chat],
        )
        .await;
    assert_eq!(chats, [format!("{OWNER}: Capital of France")]);

    let received = upstream.received();
    let streamed = received
        .iter()
        .find(|request| request.is_streaming())
        .context("the reply request")?;
    assert_eq!(
        streamed.body,
        json!({"messages": [{"role": "user", "content": "What is the capital of France?"}], "stream": true})
    );
    assert_eq!(streamed.authorization(), Some("Bearer solo-serving-token"));
    Ok(())
}
