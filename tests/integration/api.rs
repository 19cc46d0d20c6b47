//! The chat API end to end: `GET /api/messages/:chatId`,
//! `DELETE /api/chat/:chatId` and `PATCH /api/chat/:chatId/visibility`, served
//! by chat-host from spin.toml against a real PostgreSQL. Rows are seeded and
//! checked with SQL, so every answer is compared with what the database holds.

use chat_tests::database::TestDatabase;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::seed::{Role, Seed, Visibility, Vote, When};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const OWNER: &str = "owner@example.com";
const OTHER: &str = "other@example.com";
const TWO_MIB: usize = 2 * 1024 * 1024;

/// A database nobody listens on: connecting is refused at once.
const UNREACHABLE_DB_URL: &str = "postgres://postgres@127.0.0.1:1/unreachable";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// `Value::Null` for an empty body.
    body: Value,
}

/// Sends a request as `email` (no identity headers when `None`). Every answer
/// with a body must be JSON, whatever its status.
async fn send(
    host: &TestHost,
    method: Method,
    path: &str,
    email: Option<&str>,
    body: Option<reqwest::Body>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method.clone(), host.url(path));
    if let Some(email) = email {
        request = request.header("x-forwarded-email", email);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        assert_eq!(
            headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{method} {path}: {status} {text}"
        );
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: {status}, not JSON: {text:?}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(host: &TestHost, path: &str, email: Option<&str>) -> Answer {
    send(host, Method::GET, path, email, None).await
}

async fn delete(host: &TestHost, path: &str, email: Option<&str>) -> Answer {
    send(host, Method::DELETE, path, email, None).await
}

async fn patch(
    host: &TestHost,
    path: &str,
    email: Option<&str>,
    body: impl Into<String>,
) -> Answer {
    send(host, Method::PATCH, path, email, Some(body.into().into())).await
}

/// Asks for `visibility` on `chat` with a well-formed body.
async fn request_visibility(
    host: &TestHost,
    chat: Uuid,
    email: Option<&str>,
    visibility: &str,
) -> Answer {
    let body = json!({ "visibility": visibility }).to_string();
    patch(host, &visibility_path(chat), email, body).await
}

fn messages_path(chat: Uuid) -> String {
    format!("/api/messages/{chat}")
}

fn chat_path(chat: Uuid) -> String {
    format!("/api/chat/{chat}")
}

fn visibility_path(chat: Uuid) -> String {
    format!("/api/chat/{chat}/visibility")
}

/// An error answer: the status, and `{"error": "<sentence>"}` and nothing else.
fn assert_error(answer: &Answer, status: StatusCode, context: &str) {
    assert_eq!(answer.status, status, "{context}: {}", answer.body);
    let message = answer.body["error"].as_str().unwrap_or_else(|| {
        panic!("{context}: no error sentence in {}", answer.body);
    });
    assert!(!message.is_empty(), "{context}");
    assert_eq!(answer.body.as_object().unwrap().len(), 1, "{context}");
}

/// How many rows of `table` belong to `chat` (`id` for Chat, `"chatId"` otherwise).
async fn rows_of(db: &TestDatabase, table: &str, chat: Uuid) -> i64 {
    let column = if table == "Chat" { "id" } else { r#""chatId""# };
    let sql = format!(r#"SELECT count(*) FROM chat."{table}" WHERE {column} = $1"#);
    db.column(&sql, &[&chat]).await[0]
}

/// The chat's rows, its messages and its votes.
async fn rows_of_chat(db: &TestDatabase, chat: Uuid) -> [i64; 3] {
    [
        rows_of(db, "Chat", chat).await,
        rows_of(db, "Message", chat).await,
        rows_of(db, "Vote", chat).await,
    ]
}

async fn visibility_of(db: &TestDatabase, chat: Uuid) -> String {
    let visibility: Vec<String> = db
        .column(
            r#"SELECT visibility FROM chat."Chat" WHERE id = $1"#,
            &[&chat],
        )
        .await;
    visibility.into_iter().next().expect("the chat")
}

/// A chat with two messages and a vote, for checking what a delete removes.
async fn chat_with_messages_and_vote(seed: &Seed<'_>, owner: &str, visibility: Visibility) -> Uuid {
    let chat = seed.chat(owner, visibility).await;
    seed.message(chat, Role::User, "hi")
        .at(When::SecondsInto2026(1.0))
        .await;
    let reply = seed
        .message(chat, Role::Assistant, "hello")
        .traced("tr-1")
        .at(When::SecondsInto2026(2.0))
        .await;
    seed.vote(chat, reply, Vote::Up).await;
    chat
}

/// The ids of a history page's chats, in order.
fn chat_ids(page: &Value) -> Vec<Uuid> {
    page["data"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|chat| chat["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn search_finds_the_callers_chats_by_title_or_message_words_newest_first() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let trip = seed
        .chat(OWNER, Visibility::Private)
        .titled("Trip to Lisbon")
        .at(When::SecondsInto2026(1.0))
        .await;
    seed.message(trip, Role::User, "We should book the flights soon")
        .at(When::SecondsInto2026(1.5))
        .await;
    let groceries = seed
        .chat(OWNER, Visibility::Private)
        .titled("Groceries")
        .at(When::SecondsInto2026(2.0))
        .await;
    seed.message(groceries, Role::User, "Apples, bread and cheese")
        .at(When::SecondsInto2026(2.5))
        .await;
    let work = seed
        .chat(OWNER, Visibility::Private)
        .titled("Work notes")
        .at(When::SecondsInto2026(3.0))
        .await;
    seed.message(work, Role::User, "Plan the week")
        .at(When::SecondsInto2026(3.2))
        .await;
    seed.message(work, Role::Assistant, "Your flight was delayed, so...")
        .at(When::SecondsInto2026(3.5))
        .await;
    let cheap = seed
        .chat(OWNER, Visibility::Private)
        .titled("Cheap flights")
        .at(When::SecondsInto2026(4.0))
        .await;
    let theirs = seed
        .chat(OTHER, Visibility::Private)
        .titled("Flight plans")
        .at(When::SecondsInto2026(5.0))
        .await;
    seed.message(theirs, Role::User, "flight flight flight")
        .at(When::SecondsInto2026(5.5))
        .await;

    let search = async |query: &str| {
        let answer = get(&host, &format!("/api/history?{query}"), Some(OWNER)).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {:?}", answer.body);
        answer.body
    };
    // English stems: "flight" finds "flights" and "flight", in titles and
    // in any message; the other user's chat is never found.
    let page = search("q=flight").await;
    assert_eq!(chat_ids(&page), [cheap, work, trip]);
    assert_eq!(page["hasMore"], false);
    // Keyset pages of a search, both ways.
    let first = search("q=flight&limit=2").await;
    assert_eq!(chat_ids(&first), [cheap, work]);
    assert_eq!(first["hasMore"], true);
    let older = search(&format!("q=flight&limit=2&starting_after={work}")).await;
    assert_eq!(chat_ids(&older), [trip]);
    assert_eq!(older["hasMore"], false);
    let newer = search(&format!("q=flight&limit=2&ending_before={trip}")).await;
    assert_eq!(chat_ids(&newer), [cheap, work]);
    // Several words must all be there (title or messages of one chat).
    assert_eq!(chat_ids(&search("q=lisbon+trip").await), [trip]);
    assert_eq!(chat_ids(&search("q=%22book+the+flights%22").await), [trip]);
    assert_eq!(
        chat_ids(&search("q=cheese+or+week").await),
        [work, groceries]
    );
    for nothing in ["q=submarine", "q=the", "q=%27%22%26%7C%21%28%29%3A%2A%5C"] {
        let page = search(nothing).await;
        assert_eq!(chat_ids(&page), Vec::<Uuid>::new(), "{nothing}");
        assert_eq!(page["hasMore"], false);
    }
    // Blank is no search at all.
    assert_eq!(
        chat_ids(&search("q=++").await),
        [cheap, work, groceries, trip]
    );
    let too_long = format!("/api/history?q={}", "w".repeat(201));
    assert_error(
        &get(&host, &too_long, Some(OWNER)).await,
        StatusCode::BAD_REQUEST,
        "a search of 201 characters",
    );
}

#[tokio::test]
async fn messages_come_oldest_first_with_parts_and_trace_ids() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = seed.chat(OWNER, Visibility::Private).await;
    // Inserted out of order: the answer follows "createdAt".
    let second = seed
        .message(chat, Role::Assistant, "hello")
        .traced("tr-1")
        .at(When::SecondsInto2026(20.5))
        .await;
    let first = seed
        .message(chat, Role::User, "hi")
        .at(When::SecondsInto2026(10.0))
        .await;
    let third = seed
        .message(chat, Role::User, "again")
        .at(When::SecondsInto2026(30.0))
        .await;

    let answer = get(&host, &messages_path(chat), Some(OWNER)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["source"], "live");
    let data = answer.body["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [first, second, third].map(|id| id.to_string()).to_vec()
    );
    assert_eq!(
        data[1],
        json!({
            "id": second.to_string(),
            "role": "assistant",
            "parts": [{"type": "text", "text": "hello"}],
            "traceId": "tr-1",
            "createdAt": "2026-01-01T00:00:20.500Z",
            "status": "complete",
            "vote": null
        })
    );
    assert_eq!(data[0]["traceId"], Value::Null);
    assert_eq!(data[0]["parts"], json!([{"type": "text", "text": "hi"}]));

    // A chat without messages is an empty live list.
    let empty = seed.chat(OWNER, Visibility::Private).await;
    let answer = get(&host, &messages_path(empty), Some(OWNER)).await;
    assert_eq!(
        answer.body,
        json!({"data": [], "source": "live", "hasMore": false})
    );
}

#[tokio::test]
async fn messages_written_in_one_transaction_keep_the_order_they_were_written_in() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = seed.chat(OWNER, Visibility::Private).await;
    // One transaction: every row gets the same CURRENT_TIMESTAMP. The ids
    // descend, so ordering by id would reverse them.
    let written: Vec<Uuid> = (0..6u128).map(|i| Uuid::from_u128(u128::MAX - i)).collect();
    let mut session = db.connect().await;
    let transaction = session.transaction().await.unwrap();
    let in_one = Seed::in_transaction(&transaction);
    for (i, id) in written.iter().enumerate() {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        in_one
            .message(chat, role, "")
            .id(*id)
            .parts(json!([]))
            .await;
    }
    transaction.commit().await.unwrap();
    // Moving the first two rows away and back (updates of an indexed column,
    // so new row versions at the end of the table) leaves neither the id nor
    // the physical order matching the order written.
    for hours in [1, -1] {
        session
            .execute(
                r#"UPDATE chat."Message" SET "createdAt" = "createdAt" + make_interval(hours => $1)
                   WHERE id IN ($2, $3)"#,
                &[&hours, &written[0], &written[1]],
            )
            .await
            .unwrap();
    }
    let shared: i64 = db
        .column(
            r#"SELECT count(DISTINCT "createdAt") FROM chat."Message" WHERE "chatId" = $1"#,
            &[&chat],
        )
        .await[0];
    assert_eq!(shared, 1);

    let answer = get(&host, &messages_path(chat), Some(OWNER)).await;
    let ids: Vec<String> = answer.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, written.iter().map(Uuid::to_string).collect::<Vec<_>>());
}

#[tokio::test]
async fn messages_are_for_the_owner_or_anyone_when_public() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let private = chat_with_messages_and_vote(&seed, OWNER, Visibility::Private).await;
    let public = chat_with_messages_and_vote(&seed, OWNER, Visibility::Public).await;

    let answer = get(&host, &messages_path(private), Some(OWNER)).await;
    assert_eq!(answer.body["data"].as_array().unwrap().len(), 2);
    let answer = get(&host, &messages_path(private), Some(OTHER)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "private chat, other user");
    let answer = get(&host, &messages_path(public), Some(OTHER)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer.body["source"], "live");

    let answer = get(&host, &messages_path(Uuid::new_v4()), Some(OWNER)).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "unknown chat");
    let answer = get(&host, &messages_path(public), None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "no identity");
}

#[tokio::test]
async fn only_the_owner_deletes_and_the_messages_and_votes_go_with_the_chat() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let private = chat_with_messages_and_vote(&seed, OWNER, Visibility::Private).await;
    let public = chat_with_messages_and_vote(&seed, OWNER, Visibility::Public).await;
    let bystander = chat_with_messages_and_vote(&seed, OTHER, Visibility::Private).await;

    // Someone else's chat looks as if it did not exist, public or not.
    for chat in [private, public] {
        let answer = delete(&host, &chat_path(chat), Some(OTHER)).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "other user deletes");
        assert_eq!(rows_of_chat(&db, chat).await, [1, 2, 1]);
    }
    let answer = delete(&host, &chat_path(private), None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "no identity");
    assert_eq!(rows_of_chat(&db, private).await, [1, 2, 1]);

    let answer = delete(&host, &chat_path(private), Some(OWNER)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body, json!({"success": true}));
    assert_eq!(rows_of_chat(&db, private).await, [0, 0, 0]);
    assert_eq!(rows_of_chat(&db, public).await, [1, 2, 1]);
    assert_eq!(rows_of_chat(&db, bystander).await, [1, 2, 1]);

    let answer = delete(&host, &chat_path(private), Some(OWNER)).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "deleted twice");
    let answer = delete(&host, &chat_path(Uuid::new_v4()), Some(OWNER)).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "unknown chat");
}

#[tokio::test]
async fn only_the_owner_changes_visibility() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = seed.chat(OWNER, Visibility::Private).await;

    let answer = request_visibility(&host, chat, Some(OWNER), "public").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"success": true, "visibility": "public"})
    );
    assert_eq!(visibility_of(&db, chat).await, "public");

    // A public chat is readable by others, never re-shareable by them.
    let answer = request_visibility(&host, chat, Some(OTHER), "private").await;
    assert_error(&answer, StatusCode::FORBIDDEN, "other user");
    assert_eq!(visibility_of(&db, chat).await, "public");
    let answer = request_visibility(&host, chat, None, "private").await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "no identity");
    assert_eq!(visibility_of(&db, chat).await, "public");

    let answer = request_visibility(&host, chat, Some(OWNER), "private").await;
    assert_eq!(
        answer.body,
        json!({"success": true, "visibility": "private"})
    );
    assert_eq!(visibility_of(&db, chat).await, "private");

    let answer = request_visibility(&host, Uuid::new_v4(), Some(OWNER), "public").await;
    assert_error(&answer, StatusCode::NOT_FOUND, "unknown chat");
}

#[tokio::test]
async fn bad_visibility_bodies_are_refused_and_change_nothing() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = seed.chat(OWNER, Visibility::Private).await;
    let path = visibility_path(chat);

    let oversized_field = format!(r#"{{"visibility":"{}"}}"#, "p".repeat(512 * 1024));
    let cases: [(&str, String, &str); 10] = [
        (
            "malformed JSON",
            r#"{"visibility":"#.into(),
            "not valid JSON",
        ),
        ("empty body", String::new(), "empty"),
        (
            "wrong type",
            r#"{"visibility":1}"#.into(),
            "visibility must be",
        ),
        (
            "null",
            r#"{"visibility":null}"#.into(),
            "visibility must be",
        ),
        (
            "unknown value",
            r#"{"visibility":"shared"}"#.into(),
            "visibility must be",
        ),
        ("missing field", "{}".into(), "`visibility` is missing"),
        (
            "extra field",
            r#"{"visibility":"public","title":"x"}"#.into(),
            "`title`",
        ),
        (
            "duplicate field",
            r#"{"visibility":"private","visibility":"public"}"#.into(),
            "more than once",
        ),
        (
            "not an object",
            r#"["public"]"#.into(),
            "must be a JSON object",
        ),
        ("oversized field", oversized_field, "visibility must be"),
    ];
    for (case, body, says) in cases {
        let answer = patch(&host, &path, Some(OWNER), body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, case);
        let message = answer.body["error"].as_str().unwrap();
        assert!(message.contains(says), "{case}: {message}");
        assert!(message.len() < 300, "{case}: the answer repeats the input");
        assert_eq!(visibility_of(&db, chat).await, "private", "{case}");
    }

    // Over 1 MiB, whether announced by content-length or streamed without it.
    let huge = format!(
        r#"{{"visibility":"public","pad":"{}"}}"#,
        "x".repeat(TWO_MIB)
    );
    let answer = patch(&host, &path, Some(OWNER), huge.clone()).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "2 MiB body");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(64 * 1024)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let answer = send(&host, Method::PATCH, &path, Some(OWNER), Some(streamed)).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "2 MiB streamed body",
    );
    assert_eq!(visibility_of(&db, chat).await, "private");

    // No User row is written for a refused request.
    let users: i64 = db.column(r#"SELECT count(*) FROM chat."User""#, &[]).await[0];
    assert_eq!(users, 1);
}

#[tokio::test]
async fn wrong_methods_ids_and_paths_get_json_errors() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = chat_with_messages_and_vote(&seed, OWNER, Visibility::Public).await;

    let wrong_methods = [
        (
            messages_path(chat),
            "GET",
            [Method::POST, Method::DELETE, Method::PATCH],
        ),
        (
            chat_path(chat),
            "DELETE",
            [Method::GET, Method::POST, Method::PATCH],
        ),
        (
            visibility_path(chat),
            "PATCH",
            [Method::GET, Method::PUT, Method::DELETE],
        ),
        (
            "/api/chat".to_owned(),
            "POST",
            [Method::GET, Method::PUT, Method::DELETE],
        ),
    ];
    for (path, allowed, methods) in wrong_methods {
        for method in methods {
            let answer = send(&host, method.clone(), &path, Some(OWNER), None).await;
            let context = format!("{method} {path}");
            assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, &context);
            assert_eq!(answer.headers["allow"], allowed, "{context}");
        }
    }
    assert_eq!(rows_of_chat(&db, chat).await, [1, 2, 1]);

    for (method, path) in [
        (Method::GET, "/api/messages/not-a-uuid"),
        (
            Method::GET,
            "/api/messages/123e4567e89b12d3a456426614174000",
        ),
        (Method::DELETE, "/api/chat/42"),
        (Method::PATCH, "/api/chat/%7Bnot-a-uuid%7D/visibility"),
        (Method::GET, "/api/history?starting_after=not-a-uuid"),
    ] {
        let answer = send(&host, method.clone(), path, Some(OWNER), None).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            &format!("{method} {path}"),
        );
    }

    for path in [
        "/api/messages".to_owned(),
        "/api/messages/".to_owned(),
        format!("/api/messages/{chat}/more"),
        "/api/chat/".to_owned(),
        format!("/api/chat/{chat}/name"),
        format!("/api/chat/{chat}/visibility/"),
    ] {
        let answer = get(&host, &path, Some(OWNER)).await;
        assert_error(&answer, StatusCode::NOT_FOUND, &path);
    }

    // A body over the limit is refused on every route, before anything else.
    for (method, path) in [
        (Method::GET, messages_path(chat)),
        (Method::DELETE, chat_path(chat)),
    ] {
        let body = reqwest::Body::from(vec![b' '; TWO_MIB]);
        let answer = send(&host, method.clone(), &path, Some(OWNER), Some(body)).await;
        assert_error(
            &answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{method} {path}"),
        );
    }
    assert_eq!(rows_of_chat(&db, chat).await, [1, 2, 1]);
}

#[tokio::test]
async fn an_unreachable_database_gives_mock_messages_and_refuses_writes() {
    let host = TestHost::start(HostConfig::new(UNREACHABLE_DB_URL));
    let chat = Uuid::new_v4();

    let answer = get(&host, &messages_path(chat), Some(OWNER)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"data": [], "source": "mock", "hasMore": false})
    );

    // Access cannot be checked, so writes fail closed.
    let answer = delete(&host, &chat_path(chat), Some(OWNER)).await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "DELETE");
    let answer = request_visibility(&host, chat, Some(OWNER), "public").await;
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "PATCH");

    // Caller errors are still told apart from the outage.
    let answer = patch(
        &host,
        &visibility_path(chat),
        Some(OWNER),
        r#"{"visibility":1}"#,
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad body");
    let answer = get(&host, &messages_path(chat), None).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "no identity");
    let answer = get(&host, "/api/messages/nope", Some(OWNER)).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad id");

    let answer = get(&host, "/api/history", Some(OWNER)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
}

/// A write with the given extra headers and, when `body` is given, that body
/// with its content type; answers the status and the error sentence, if any.
async fn write(
    host: &TestHost,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, impl Into<reqwest::Body>)>,
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .request(method, host.url(path))
        .header("x-forwarded-email", OWNER);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn cross_site_and_non_json_writes_are_refused_and_change_nothing() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = chat_with_messages_and_vote(&seed, OWNER, Visibility::Private).await;
    let public = || {
        Some((
            "application/json",
            json!({"visibility": "public"}).to_string(),
        ))
    };
    let own_origin = host.url("");
    let own_origin = own_origin.trim_end_matches('/');

    // What a cross-site HTML form can send: a JSON text as text/plain.
    let new_chat = Uuid::new_v4();
    let form_body = json!({"id": new_chat, "messages": [{"role": "user", "content": "spend tokens", "id": Uuid::new_v4()}]});
    let (status, error) = write(
        &host,
        Method::POST,
        "/api/chat",
        &[],
        Some(("text/plain", form_body.to_string())),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{error}");
    assert!(error.contains("application/json"), "{error}");
    // The same sent chunked, with no Content-Length: the runtime never shows
    // the component a Transfer-Encoding, so the body must be caught as read.
    let chunks = [Ok::<_, std::io::Error>(form_body.to_string().into_bytes())];
    let chunked = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, error) = write(
        &host,
        Method::POST,
        "/api/chat",
        &[],
        Some(("text/plain", chunked)),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "chunked: {error}"
    );
    assert_eq!(
        rows_of(&db, "Chat", new_chat).await,
        0,
        "no chat was created"
    );

    let refused: [(
        &str,
        Method,
        String,
        Vec<(&str, &str)>,
        Option<(&str, String)>,
        StatusCode,
    ); 6] = [
        (
            "a form-encoded visibility change",
            Method::PATCH,
            visibility_path(chat),
            vec![],
            Some((
                "application/x-www-form-urlencoded",
                "visibility=public".into(),
            )),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a JSON body without a content type",
            Method::PATCH,
            visibility_path(chat),
            vec![],
            Some(("", json!({"visibility": "public"}).to_string())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "Sec-Fetch-Site: cross-site",
            Method::PATCH,
            visibility_path(chat),
            vec![("sec-fetch-site", "cross-site")],
            public(),
            StatusCode::FORBIDDEN,
        ),
        (
            "a foreign Origin",
            Method::PATCH,
            visibility_path(chat),
            vec![("origin", "https://evil.example")],
            public(),
            StatusCode::FORBIDDEN,
        ),
        (
            "a bodiless delete from a foreign Origin",
            Method::DELETE,
            chat_path(chat),
            vec![("origin", "https://evil.example")],
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "a delete from a sandboxed frame",
            Method::DELETE,
            chat_path(chat),
            vec![("origin", "null")],
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    for (case, method, path, headers, body, expected) in refused {
        let (status, error) = write(&host, method, &path, &headers, body).await;
        assert_eq!(status, expected, "{case}: {error}");
        assert!(!error.is_empty(), "{case}: an error sentence");
        assert_eq!(
            visibility_of(&db, chat).await,
            "private",
            "{case} changed nothing"
        );
        assert_eq!(
            rows_of_chat(&db, chat).await,
            [1, 2, 1],
            "{case} deleted nothing"
        );
    }

    // The web UI: same origin, as the browser names it, directly or through a gateway.
    let (status, error) = write(
        &host,
        Method::PATCH,
        &visibility_path(chat),
        &[("origin", own_origin), ("sec-fetch-site", "same-origin")],
        Some((
            "application/json; charset=utf-8",
            json!({"visibility": "public"}).to_string(),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "same origin: {error}");
    assert_eq!(visibility_of(&db, chat).await, "public");
    let through_gateway = [
        ("origin", "https://chat.example.com"),
        ("x-forwarded-host", "chat.example.com"),
        ("x-forwarded-proto", "https"),
    ];
    let private = Some((
        "application/json",
        json!({"visibility": "private"}).to_string(),
    ));
    let (status, error) = write(
        &host,
        Method::PATCH,
        &visibility_path(chat),
        &through_gateway,
        private,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "through the gateway: {error}");
    assert_eq!(visibility_of(&db, chat).await, "private");

    // Through Databricks Apps' proxy, which terminates TLS and forwards the
    // host but no scheme (its documented header set), from the app's page:
    // with and without Sec-Fetch-Site (older browsers send none).
    let databricks_apps = [
        ("origin", "https://chat-123.aws.databricksapps.com"),
        ("x-forwarded-host", "chat-123.aws.databricksapps.com"),
        ("x-forwarded-preferred-username", "owner"),
        ("x-real-ip", "203.0.113.9"),
        ("x-request-id", "5e1a2b3c"),
    ];
    for (visibility, sec_fetch_site) in [("public", Some("same-origin")), ("private", None)] {
        let mut headers = databricks_apps.to_vec();
        headers.extend(sec_fetch_site.map(|site| ("sec-fetch-site", site)));
        let body = Some((
            "application/json",
            json!({ "visibility": visibility }).to_string(),
        ));
        let (status, error) =
            write(&host, Method::PATCH, &visibility_path(chat), &headers, body).await;
        assert_eq!(status, StatusCode::OK, "through Databricks Apps: {error}");
        assert_eq!(visibility_of(&db, chat).await, visibility);
    }
    // Another app on the platform's domain is another site.
    let mut neighbour = databricks_apps.to_vec();
    neighbour[0] = ("origin", "https://other-456.aws.databricksapps.com");
    let body = Some((
        "application/json",
        json!({"visibility": "public"}).to_string(),
    ));
    let (status, _) = write(
        &host,
        Method::PATCH,
        &visibility_path(chat),
        &neighbour,
        body,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(visibility_of(&db, chat).await, "private");

    // A client that is not a browser sends no Origin; a delete needs no body.
    let no_body = None::<(&str, String)>;
    let (status, error) = write(&host, Method::DELETE, &chat_path(chat), &[], no_body).await;
    assert_eq!(status, StatusCode::OK, "{error}");
    assert_eq!(rows_of_chat(&db, chat).await, [0, 0, 0]);
}

/// The text of each message of a messages page, in the order given.
fn texts_of(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("a data array")
        .iter()
        .map(|message| {
            message["parts"][0]["text"]
                .as_str()
                .expect("a text part")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_long_chat_is_read_in_bounded_pages_newest_first_each_oldest_first() {
    const MESSAGES: usize = 100_000;
    let db = TestDatabase::create().await;
    let host = TestHost::launch(HostConfig::new(&db.url)).await;
    let seed = Seed::connect(&db).await;
    let chat = seed.chat(OWNER, Visibility::Private).await;
    // Two messages per second, so each pair shares its "createdAt" and only
    // the insertion order tells them apart. A raw statement: the server
    // generates the 100,000 rows in one, where seeding them one by one
    // would take minutes.
    seed.raw(
        r#"INSERT INTO chat."Message" (id, "chatId", role, parts, "createdAt")
               SELECT gen_random_uuid(), $1,
                      CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END,
                      json_build_array(json_build_object('type', 'text', 'text', 'm' || i)),
                      TIMESTAMP '2026-01-01' + make_interval(secs => (i / 2)::float8)
               FROM generate_series(0, $2::int - 1) AS i ORDER BY i"#,
        &[&chat, &(MESSAGES as i32)],
    )
    .await
    .unwrap();
    let expected =
        |range: std::ops::Range<usize>| range.map(|i| format!("m{i}")).collect::<Vec<_>>();

    let first = get(&host, &messages_path(chat), Some(OWNER)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        texts_of(&first.body),
        expected(MESSAGES - 1000..MESSAGES),
        "the newest 1000, oldest first"
    );
    assert_eq!(first.body["hasMore"], true);
    let clamped = get(
        &host,
        &format!("{}?limit=5000", messages_path(chat)),
        Some(OWNER),
    )
    .await;
    assert_eq!(texts_of(&clamped.body).len(), 1000, "limit is at most 1000");

    // Walk back to the first message, a page at a time.
    let mut walked = texts_of(&first.body);
    let mut page = first.body;
    while page["hasMore"] == true {
        let oldest = page["data"][0]["id"].as_str().unwrap().to_owned();
        let next = get(
            &host,
            &format!("{}?ending_before={oldest}", messages_path(chat)),
            Some(OWNER),
        )
        .await;
        assert_eq!(next.status, StatusCode::OK, "{}", next.body);
        let mut texts = texts_of(&next.body);
        assert!(!texts.is_empty() && texts.len() <= 1000);
        texts.append(&mut walked);
        walked = texts;
        page = next.body;
    }
    assert_eq!(
        walked,
        expected(0..MESSAGES),
        "every message once, in order"
    );

    let small = get(
        &host,
        &format!("{}?limit=3", messages_path(chat)),
        Some(OWNER),
    )
    .await;
    assert_eq!(texts_of(&small.body), expected(MESSAGES - 3..MESSAGES));

    // A cursor that is not a message of this chat is refused.
    let elsewhere = seed.chat(OWNER, Visibility::Private).await;
    let foreign = seed
        .message(elsewhere, Role::User, "hi")
        .at(When::SecondsInto2026(1.0))
        .await;
    for cursor in [foreign, Uuid::new_v4()] {
        let answer = get(
            &host,
            &format!("{}?ending_before={cursor}", messages_path(chat)),
            Some(OWNER),
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "a cursor from elsewhere");
    }
}

/// The titles of a history answer's `field` (`data` or `pinned`), in order.
fn titles(page: &Value, field: &str) -> Vec<String> {
    page[field]
        .as_array()
        .map(|chats| {
            chats
                .iter()
                .map(|chat| chat["title"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn cursor_of_last(page: &Value) -> String {
    let last = page["data"].as_array().unwrap().last().unwrap();
    last["cursor"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_history_lists_recent_activity_first_and_pages_stay_stable_while_chats_move() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let mut chats = Vec::new();
    for minute in 0..12 {
        // Created in the opposite order of their activity: the order is
        // the activity's.
        let chat = seed
            .chat(OWNER, Visibility::Private)
            .titled(&format!("c{minute}"))
            .at(When::SecondsInto2026(f64::from(100 - minute)))
            .active_at(When::SecondsInto2026(f64::from(1000 + 60 * minute)))
            .await;
        chats.push(chat);
    }
    let first = get(&host, "/api/history?limit=5", Some(OWNER)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        titles(&first.body, "data"),
        ["c11", "c10", "c9", "c8", "c7"]
    );
    assert_eq!(first.body["hasMore"], true);
    assert_eq!(
        first.body["data"][0]["lastActivityAt"],
        "2026-01-01T00:27:40.000Z"
    );

    // While the client reads, c9 (listed) and c3 (not yet) are continued.
    let connection = db.connect().await;
    for (chat, minutes) in [(chats[9], 1), (chats[3], 2)] {
        connection
            .execute(
                r#"UPDATE chat."Chat" SET "lastActivityAt" = TIMESTAMP '2026-06-01' + make_interval(mins => $2) WHERE id = $1"#,
                &[&chat, &minutes],
            )
            .await
            .unwrap();
    }
    let mut listed = titles(&first.body, "data");
    let mut cursor = cursor_of_last(&first.body);
    loop {
        let page = get(
            &host,
            &format!("/api/history?limit=5&starting_after={cursor}"),
            Some(OWNER),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        listed.extend(titles(&page.body, "data"));
        if page.body["hasMore"] == false {
            break;
        }
        cursor = cursor_of_last(&page.body);
    }
    // No chat twice; every chat that did not move exactly once; c3, which
    // moved above the pages already read, is for the next first page.
    assert_eq!(
        listed,
        [
            "c11", "c10", "c9", "c8", "c7", "c6", "c5", "c4", "c2", "c1", "c0"
        ]
    );
    let again = get(&host, "/api/history?limit=3", Some(OWNER)).await;
    assert_eq!(titles(&again.body, "data"), ["c3", "c9", "c11"]);

    // The seed's cursor, a chat id, pages from where that chat is now.
    let by_id = get(
        &host,
        &format!("/api/history?limit=3&starting_after={}", chats[9]),
        Some(OWNER),
    )
    .await;
    assert_eq!(titles(&by_id.body, "data"), ["c11", "c10", "c8"]);
    // A cursor that is no page's and no chat id is refused, naming it.
    let refused = get(&host, "/api/history?starting_after=12.x", Some(OWNER)).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "a malformed cursor");
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .starts_with("starting_after must be")
    );
}

async fn send_json(
    host: &TestHost,
    method: Method,
    path: &str,
    email: &str,
    body: Value,
) -> Answer {
    send(
        host,
        method,
        path,
        Some(email),
        Some(body.to_string().into()),
    )
    .await
}

#[tokio::test]
async fn owners_pin_archive_and_file_their_chats_and_no_one_else_can() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let chat = |title: &'static str, at: f64| {
        seed.chat(OWNER, Visibility::Public)
            .titled(title)
            .at(When::SecondsInto2026(at))
    };
    let (a, b, c) = (
        chat("a", 1.0).await,
        chat("b", 2.0).await,
        chat("c", 3.0).await,
    );
    seed.message(b, Role::User, "Flights to Lisbon").await;
    let theirs = seed.chat(OTHER, Visibility::Public).titled("theirs").await;
    let list =
        async |query: &str, who: &str| get(&host, &format!("/api/history{query}"), Some(who)).await;

    // Pinned chats come apart, on the first page only.
    let pinned = send_json(
        &host,
        Method::PATCH,
        &format!("/api/chat/{a}/pinned"),
        OWNER,
        json!({"pinned": true}),
    )
    .await;
    assert_eq!(pinned.body, json!({"success": true, "pinned": true}));
    let page = list("", OWNER).await;
    assert_eq!(titles(&page.body, "pinned"), ["a"]);
    assert_eq!(titles(&page.body, "data"), ["c", "b"]);
    assert_eq!(page.body["pinned"][0]["pinned"], true);
    assert_eq!(
        titles(
            &list(&format!("?limit=1&starting_after={b}"), OWNER)
                .await
                .body,
            "pinned"
        ),
        Vec::<String>::new()
    );

    // Archived chats leave the list for the archive; a search may look there.
    let archived = send_json(
        &host,
        Method::PATCH,
        &format!("/api/chat/{b}/archived"),
        OWNER,
        json!({"archived": true}),
    )
    .await;
    assert_eq!(archived.body, json!({"success": true, "archived": true}));
    assert_eq!(titles(&list("", OWNER).await.body, "data"), ["c"]);
    let archive = list("?archived=only", OWNER).await;
    assert_eq!(titles(&archive.body, "data"), ["b"]);
    assert_eq!(archive.body["data"][0]["archived"], true);
    assert_eq!(
        titles(&list("?q=lisbon", OWNER).await.body, "data"),
        Vec::<String>::new()
    );
    assert_eq!(
        titles(
            &list("?q=lisbon&archived=include", OWNER).await.body,
            "data"
        ),
        ["b"]
    );
    // Its address still opens it.
    assert_eq!(
        get(&host, &messages_path(b), Some(OWNER)).await.status,
        StatusCode::OK
    );
    send_json(
        &host,
        Method::PATCH,
        &format!("/api/chat/{b}/archived"),
        OWNER,
        json!({"archived": false}),
    )
    .await;
    assert_eq!(titles(&list("", OWNER).await.body, "data"), ["c", "b"]);

    // A folder of one's own holds chats one level deep; deleting it keeps them.
    let created = send_json(
        &host,
        Method::POST,
        "/api/folders",
        OWNER,
        json!({"name": " Work "}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        (
            created.body["name"].as_str(),
            created.body["position"].as_i64()
        ),
        (Some("Work"), Some(0))
    );
    let folder = created.body["id"].as_str().unwrap().to_owned();
    let second = send_json(
        &host,
        Method::POST,
        "/api/folders",
        OWNER,
        json!({"name": "Home"}),
    )
    .await;
    assert_eq!(second.body["position"], 1);
    let filed = send_json(
        &host,
        Method::PATCH,
        &format!("/api/chat/{c}/folder"),
        OWNER,
        json!({"folderId": folder}),
    )
    .await;
    assert_eq!(filed.body, json!({"success": true, "folderId": folder}));
    assert_eq!(titles(&list("", OWNER).await.body, "data"), ["b"]);
    let in_folder = list(&format!("?folder={folder}"), OWNER).await;
    assert_eq!(titles(&in_folder.body, "data"), ["c"]);
    assert_eq!(in_folder.body["data"][0]["folderId"], folder.as_str());
    let folders = get(&host, "/api/folders", Some(OWNER)).await;
    let names: Vec<&str> = folders.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Work", "Home"]);
    let moved = send_json(
        &host,
        Method::PATCH,
        &format!("/api/folders/{folder}"),
        OWNER,
        json!({"position": 5, "name": "Job"}),
    )
    .await;
    assert_eq!(
        (moved.body["name"].as_str(), moved.body["position"].as_i64()),
        (Some("Job"), Some(5))
    );

    // Nobody else sees, changes or uses the owner's folders and order.
    assert_error(
        &list(&format!("?folder={folder}"), OTHER).await,
        StatusCode::NOT_FOUND,
        "another's folder",
    );
    assert_error(
        &send_json(
            &host,
            Method::PATCH,
            &format!("/api/chat/{theirs}/folder"),
            OTHER,
            json!({"folderId": folder}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "filing in another's folder",
    );
    for (method, body) in [
        (Method::PATCH, json!({"name": "Mine"})),
        (Method::DELETE, Value::Null),
    ] {
        let answer = if body.is_null() {
            send(
                &host,
                method,
                &format!("/api/folders/{folder}"),
                Some(OTHER),
                None,
            )
            .await
        } else {
            send_json(
                &host,
                method,
                &format!("/api/folders/{folder}"),
                OTHER,
                body,
            )
            .await
        };
        assert_error(&answer, StatusCode::NOT_FOUND, "another's folder");
    }
    for (path, body) in [
        ("pinned", json!({"pinned": true})),
        ("archived", json!({"archived": true})),
        ("folder", json!({"folderId": null})),
    ] {
        let answer = send_json(
            &host,
            Method::PATCH,
            &format!("/api/chat/{a}/{path}"),
            OTHER,
            body,
        )
        .await;
        assert_error(&answer, StatusCode::FORBIDDEN, path);
    }
    let other_view = list("", OTHER).await;
    assert_eq!(
        (
            titles(&other_view.body, "data"),
            other_view.body.get("pinned")
        ),
        (vec!["theirs".to_owned()], None)
    );
    assert_eq!(
        get(&host, "/api/folders", Some(OTHER)).await.body,
        json!({"data": []})
    );

    let deleted = send(
        &host,
        Method::DELETE,
        &format!("/api/folders/{folder}"),
        Some(OWNER),
        None,
    )
    .await;
    assert_eq!(deleted.body, json!({"success": true}));
    assert_eq!(titles(&list("", OWNER).await.body, "data"), ["c", "b"]);
    let state: Vec<bool> = db
        .column(
            r#"SELECT "pinnedAt" IS NOT NULL FROM chat."Chat" WHERE id = $1"#,
            &[&a],
        )
        .await;
    assert_eq!(
        state,
        [true],
        "nothing the other user asked changed the pin"
    );
}

#[tokio::test]
async fn pins_and_folders_have_limits_and_bad_bodies_change_nothing() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    for _ in 0..50 {
        seed.chat(OWNER, Visibility::Private).pinned().await;
    }
    let unpinned = seed.chat(OWNER, Visibility::Private).await;
    let pin = send_json(
        &host,
        Method::PATCH,
        &format!("/api/chat/{unpinned}/pinned"),
        OWNER,
        json!({"pinned": true}),
    )
    .await;
    assert_error(&pin, StatusCode::CONFLICT, "the 51st pin");
    assert_eq!(
        get(&host, "/api/history", Some(OWNER)).await.body["pinned"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
    for body in [
        json!({"pinned": "yes"}),
        json!({"pinned": true, "extra": 1}),
        json!({}),
    ] {
        let answer = send_json(
            &host,
            Method::PATCH,
            &format!("/api/chat/{unpinned}/pinned"),
            OWNER,
            body.clone(),
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, &body.to_string());
    }
    for body in [json!({"folderId": "work"}), json!({"folderId": 3})] {
        let answer = send_json(
            &host,
            Method::PATCH,
            &format!("/api/chat/{unpinned}/folder"),
            OWNER,
            body.clone(),
        )
        .await;
        assert_error(&answer, StatusCode::BAD_REQUEST, &body.to_string());
    }
    for body in [
        json!({"name": ""}),
        json!({"name": "a\nb"}),
        json!({"name": "x".repeat(101)}),
        json!({"label": "x"}),
    ] {
        let answer = send_json(&host, Method::POST, "/api/folders", OWNER, body.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, &body.to_string());
    }
    let unknown = Uuid::new_v4();
    assert_error(
        &send_json(
            &host,
            Method::PATCH,
            &format!("/api/chat/{unpinned}/folder"),
            OWNER,
            json!({"folderId": unknown}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "an unknown folder",
    );
    let folders: Vec<i64> = db
        .column(r#"SELECT count(*) FROM chat."Folder""#, &[])
        .await;
    let pins: Vec<i64> = db.column(r#"SELECT count(*) FROM chat."Chat" WHERE "pinnedAt" IS NOT NULL OR "folderId" IS NOT NULL"#, &[]).await;
    assert_eq!((folders, pins), (vec![0], vec![50]));
    let connection = db.connect().await;
    connection
        .execute(
            r#"INSERT INTO chat."Folder" ("userId", name, position) SELECT $1, 'f' || n, n FROM generate_series(1, 100) AS n"#,
            &[&OWNER],
        )
        .await
        .unwrap();
    let too_many = send_json(
        &host,
        Method::POST,
        "/api/folders",
        OWNER,
        json!({"name": "One more"}),
    )
    .await;
    assert_error(&too_many, StatusCode::CONFLICT, "the 101st folder");
}

#[tokio::test]
async fn owners_delete_several_chats_or_all_and_never_anyone_elses() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url));
    let seed = Seed::connect(&db).await;
    let [one, two, three] = [
        chat_with_messages_and_vote(&seed, OWNER, Visibility::Private).await,
        chat_with_messages_and_vote(&seed, OWNER, Visibility::Public).await,
        chat_with_messages_and_vote(&seed, OWNER, Visibility::Private).await,
    ];
    let theirs = chat_with_messages_and_vote(&seed, OTHER, Visibility::Public).await;
    let deleted = send_json(
        &host,
        Method::POST,
        "/api/history/delete",
        OWNER,
        json!({"chatIds": [one, two, theirs, Uuid::new_v4()]}),
    )
    .await;
    assert_eq!(deleted.body, json!({"success": true, "deleted": 2}));
    for (chat, left) in [
        (one, [0, 0, 0]),
        (two, [0, 0, 0]),
        (three, [1, 2, 1]),
        (theirs, [1, 2, 1]),
    ] {
        assert_eq!(rows_of_chat(&db, chat).await, left, "{chat}");
    }
    for body in [
        json!({"chatIds": []}),
        json!({"all": false}),
        json!({"chatIds": ["x"]}),
    ] {
        let refused = send_json(
            &host,
            Method::POST,
            "/api/history/delete",
            OWNER,
            body.clone(),
        )
        .await;
        assert_error(&refused, StatusCode::BAD_REQUEST, &body.to_string());
    }
    let all = send_json(
        &host,
        Method::POST,
        "/api/history/delete",
        OWNER,
        json!({"all": true}),
    )
    .await;
    assert_eq!(all.body, json!({"success": true, "deleted": 1}));
    assert_eq!(rows_of_chat(&db, three).await, [0, 0, 0]);
    assert_eq!(
        rows_of_chat(&db, theirs).await,
        [1, 2, 1],
        "another user's chat stays"
    );
}

#[tokio::test]
async fn chats_inactive_past_retention_are_deleted_in_the_background_but_never_pinned_ones() {
    let db = TestDatabase::create().await;
    let host = TestHost::start(HostConfig::new(&db.url).variable("retention_days", "30"));
    let seed = Seed::connect(&db).await;
    // Times on the database's clock, which the sweep reads: the data is
    // placed in time rather than the clock moved.
    let days_ago = |days: f64| When::SecondsFromNow(-86_400.0 * days);
    let stale = seed
        .chat(OWNER, Visibility::Private)
        .titled("stale")
        .at(days_ago(40.0))
        .await;
    seed.message(stale, Role::User, "An old question")
        .at(days_ago(40.0))
        .await;
    seed.chat(OWNER, Visibility::Private)
        .titled("pinned")
        .at(days_ago(40.0))
        .pinned()
        .await;
    seed.chat(OTHER, Visibility::Private)
        .titled("continued")
        .at(days_ago(40.0))
        .active_at(days_ago(29.0))
        .await;
    // The background work runs on chat-host's timer; under Spin it rides on
    // history requests.
    chat_tests::eventually(
        "the stale chat deleted",
        std::time::Duration::from_secs(60),
        async || {
            get(&host, "/api/history", Some(OWNER)).await;
            (rows_of_chat(&db, stale).await == [0, 0, 0]).then_some(())
        },
    )
    .await;
    let left: Vec<String> = db
        .column(r#"SELECT title FROM chat."Chat" ORDER BY title"#, &[])
        .await;
    assert_eq!(left, ["continued", "pinned"]);
}
