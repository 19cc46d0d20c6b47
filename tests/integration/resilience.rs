//! Fault injection: the resilience contract played out against a real
//! PostgreSQL that the tests control (terminating sessions, restarting,
//! stopping and freezing the server, dropping a table), the app served by
//! chat-host or by Spin (see `chat_tests::runtime`), and a scripted model
//! endpoint.
//!
//! Every scenario ends by counting rows: what the client was shown (its
//! messages, and the replies `meta` confirmed) must be in the database
//! exactly once, nothing lost and nothing doubled.

use chat_tests::database::{ControlledDatabase, Sessions, TestDatabase};
use chat_tests::event_stream::EventStream;
use chat_tests::eventually;
use chat_tests::file_store::FileStore;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::redis_server::TestRedis;
use chat_tests::runtime::Runtime;
use chat_tests::upstream::{Script, ScriptedUpstream, Step};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

const USER: &str = "resilient@example.com";
/// How long a recovery may take: a cool-down (5 s) and a probe, with room
/// for a busy 2-core machine.
const RECOVERY: Duration = Duration::from_secs(30);
/// Longer than every timeout of the host (statement 30 s, checkout 10 s).
const CLIENT_PATIENCE: Duration = Duration::from_secs(90);

/// The trace id every scripted reply carries.
const TRACE_ID: &str = "tr-resilience";

/// A reply of `chunks` words, `pause` apart.
fn reply(chunks: usize, pause: Duration) -> Script {
    let mut steps = Vec::new();
    for n in 0..chunks {
        if !pause.is_zero() {
            steps.push(Step::Pause(pause));
        }
        let chunk = json!({
            "choices": [{"index": 0, "delta": {"content": format!("word{n} ")}}],
            "trace_id": TRACE_ID
        });
        steps.push(Step::Send(format!("data: {chunk}\n\n")));
    }
    steps.push(Step::Send("data: [DONE]\n\n".to_owned()));
    Script::stream(steps)
}

fn title() -> Script {
    Script::json_after(
        vec![],
        &json!({"choices": [{"message": {"content": "Resilience"}}]}),
    )
}

struct Rig {
    upstream: ScriptedUpstream,
    host: TestHost,
    http: reqwest::Client,
}

impl Rig {
    async fn start(db: &TestDatabase) -> Self {
        Self::start_with(db, |config| config).await
    }

    async fn start_with(
        db: &TestDatabase,
        configure: impl FnOnce(HostConfig) -> HostConfig,
    ) -> Self {
        chat_tests::start_cpu_hog_if_asked();
        let upstream = ScriptedUpstream::start().await;
        let config = HostConfig::new(&db.url)
            .variable("serving_endpoint_url", &upstream.url)
            .variable("serving_endpoint_origin", &upstream.origin);
        let config = configure(config);
        let host = TestHost::launch(config).await;
        let http = reqwest::Client::builder()
            .timeout(CLIENT_PATIENCE)
            .build()
            .unwrap();
        Self {
            upstream,
            host,
            http,
        }
    }

    async fn history(&self) -> (StatusCode, Value) {
        self.get("/api/history?limit=100").await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.host.url(path))
            .header("x-forwarded-email", USER)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: no answer: {error}"));
        let status = response.status();
        let body = response.bytes().await.expect("a body");
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("GET {path}: not JSON: {body:?}"))
        };
        (status, body)
    }

    /// The first turn of a new chat, with its title and a short reply scripted.
    async fn first_turn(&self, chat_id: Uuid, text: &str) -> Turn {
        self.upstream.expect_title(title());
        self.upstream.expect_reply(reply(2, Duration::ZERO));
        let turn = self.chat(chat_id, text).await;
        assert_eq!(turn.status, StatusCode::OK, "{}", turn.text);
        turn
    }

    /// One turn of a conversation; the upstream must have a reply scripted.
    async fn chat(&self, chat_id: Uuid, text: &str) -> Turn {
        let message_id = Uuid::new_v4();
        let response = self
            .http
            .post(self.host.url("/api/chat"))
            .header("x-forwarded-email", USER)
            .json(&json!({"id": chat_id, "messages": [{"role": "user", "content": text, "id": message_id}]}))
            .send()
            .await
            .expect("POST /api/chat answered");
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            return Turn {
                status,
                message_id,
                reply_id: None,
                text: body,
            };
        }
        let events = EventStream::new(response).rest().await;
        let mut text = String::new();
        let mut reply_id = None;
        for event in &events {
            let Ok(data) = serde_json::from_str::<Value>(event) else {
                continue;
            };
            if let Some(piece) = data["choices"][0]["delta"]["content"].as_str() {
                text.push_str(piece);
            }
            if data["type"] == "meta" {
                reply_id = data["assistantMessageId"]
                    .as_str()
                    .map(|id| id.parse().unwrap());
            }
        }
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "the stream ended properly: {events:?}"
        );
        Turn {
            status,
            message_id,
            reply_id,
            text,
        }
    }
}

/// What the client saw of one turn.
struct Turn {
    status: StatusCode,
    message_id: Uuid,
    /// The assistant message `meta` announced.
    reply_id: Option<Uuid>,
    text: String,
}

/// Every message id the database holds, and whether any id is there twice.
async fn stored_message_ids(db: &TestDatabase) -> BTreeSet<Uuid> {
    let ids: Vec<Uuid> = db.column(r#"SELECT id FROM chat."Message""#, &[]).await;
    let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a message stored twice");
    unique
}

/// What the client saw must be stored, once, with the reply's full text.
async fn assert_every_turn_stored(db: &TestDatabase, turns: &[Turn]) {
    let stored = stored_message_ids(db).await;
    let mut seen = BTreeSet::new();
    for turn in turns {
        seen.insert(turn.message_id);
        let reply = turn.reply_id.expect("meta named the reply");
        seen.insert(reply);
        let texts: Vec<String> = db
            .column(
                r#"SELECT parts::json->0->>'text' FROM chat."Message" WHERE id = $1"#,
                &[&reply],
            )
            .await;
        assert_eq!(
            texts,
            std::slice::from_ref(&turn.text),
            "the stored reply is what the client saw"
        );
    }
    let missing: Vec<_> = seen.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "messages the client saw are missing: {missing:?}"
    );
    assert_eq!(
        stored.len(),
        seen.len(),
        "the database holds exactly the messages the client saw"
    );
}

/// Sessions of the database waiting for a lock (held by the test).
async fn sessions_waiting_on_locks(db: &TestDatabase) -> i64 {
    db.column(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'",
        &[],
    )
    .await[0]
}

/// Waits until the database holds every message of `turns`: after an
/// outage the journal is written out by the background work (chat-host's
/// timer, or under Spin a ride on the history reads asked for here) once a
/// read has found the database back and closed the breaker; reads
/// themselves never replay it.
async fn wait_until_every_turn_is_written(rig: &Rig, db: &TestDatabase, turns: &[Turn]) {
    let messages = turns.len() * 2;
    eventually(
        "every turn written from the journal",
        RECOVERY,
        async || {
            let _ = rig.history().await;
            (stored_message_ids(db).await.len() >= messages).then_some(())
        },
    )
    .await;
}

async fn wait_for_live_history(rig: &Rig) -> Duration {
    let began = Instant::now();
    eventually("history is live again", RECOVERY, async || {
        (rig.history().await.0 == StatusCode::OK).then_some(())
    })
    .await;
    began.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_closed_by_the_server_are_replaced_without_anyone_noticing() {
    let db = TestDatabase::create().await;
    let rig = Rig::start(&db).await;
    let chat_id = Uuid::new_v4();
    rig.upstream.expect_title(title());
    let mut turns = Vec::new();
    let mut terminated = 0;
    let mut slowest = Duration::ZERO;
    for n in 0..200 {
        terminated += db.terminate_other_sessions(Sessions::Idle).await;
        let began = Instant::now();
        match n % 3 {
            0 => {
                rig.upstream.expect_reply(reply(2, Duration::ZERO));
                let turn = rig.chat(chat_id, &format!("message {n}")).await;
                assert_eq!(turn.status, StatusCode::OK, "chat {n}: {}", turn.text);
                turns.push(turn);
            }
            1 => {
                let (status, page) = rig.history().await;
                assert_eq!(status, StatusCode::OK, "history {n}: {page}");
                assert_eq!(page["data"].as_array().unwrap().len(), 1);
            }
            _ => {
                let (status, page) = rig.get(&format!("/api/messages/{chat_id}")).await;
                assert_eq!(status, StatusCode::OK, "messages {n}: {page}");
                assert_eq!(page["source"], "live");
            }
        }
        slowest = slowest.max(began.elapsed());
    }
    println!(
        "200 requests, {terminated} idle connections terminated before them; slowest request {slowest:?}"
    );
    assert!(
        terminated >= 150,
        "the server closed connections before most requests"
    );
    assert_every_turn_stored(&db, &turns).await;
    let log = rig.host.log();
    for sign_of_trouble in ["cold-start retry", "ephemeral mode", "[chat]"] {
        assert!(
            !log.contains(sign_of_trouble),
            "no backoff, no ephemeral mode, no component error: found {sign_of_trouble:?} in\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_terminated_mid_statement_are_retried_and_write_once() {
    let db = TestDatabase::create().await;
    let rig = Rig::start(&db).await;
    let chat_id = Uuid::new_v4();
    let mut turns = vec![rig.first_turn(chat_id, "first").await];

    // Hold the messages table, so reads and writes of it wait on the lock.
    let mut locker = db.connect().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute(r#"LOCK TABLE chat."Message" IN ACCESS EXCLUSIVE MODE"#)
        .await
        .unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (
                rig.http.clone(),
                rig.host.url(&format!("/api/messages/{chat_id}")),
            );
            tokio::spawn(async move {
                let response = http
                    .get(url)
                    .header("x-forwarded-email", USER)
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for _ in 0..4 {
        rig.upstream.expect_reply(reply(2, Duration::ZERO));
    }
    let rig = std::sync::Arc::new(rig);
    let writers: Vec<_> = (0..4)
        .map(|n| {
            let rig = rig.clone();
            tokio::spawn(async move { rig.chat(chat_id, &format!("blocked {n}")).await })
        })
        .collect();
    let waiting = eventually("8 statements wait on the lock", RECOVERY, async || {
        let waiting = sessions_waiting_on_locks(&db).await;
        (waiting >= 8).then_some(waiting)
    })
    .await;
    let terminated = db.terminate_other_sessions(Sessions::WaitingOnLocks).await;
    lock.commit().await.unwrap();

    for reader in readers {
        let (status, page) = reader.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["source"], "live");
        assert!(page["data"].as_array().unwrap().len() >= 2, "{page}");
    }
    for writer in writers {
        let turn = writer.await.unwrap();
        assert_eq!(turn.status, StatusCode::OK, "{}", turn.text);
        turns.push(turn);
    }
    println!(
        "{waiting} statements waited on the lock; {terminated} sessions terminated under them; all 8 requests succeeded"
    );
    assert!(terminated >= 8, "every waiting statement lost its session");
    assert_every_turn_stored(&db, &turns).await;
    let rig = std::sync::Arc::into_inner(rig).expect("the writers are done");
    assert!(
        !rig.host.log().contains("ephemeral mode"),
        "a lost session is not an outage"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fast_restart_while_chats_stream_loses_nothing() {
    let mut server = ControlledDatabase::start().await;
    let rig = Rig::start(&server.db).await;
    let chats: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    for _ in &chats {
        rig.upstream.expect_title(title());
        // 20 words, the second half held back until the database is back:
        // the restart lands in the middle of every reply.
        let mut steps = reply(20, Duration::from_millis(50)).steps;
        let halfway = steps.len() / 2;
        steps.insert(halfway, Step::AwaitAck(1));
        rig.upstream.expect_reply(Script::stream(steps));
    }
    let rig = std::sync::Arc::new(rig);
    let streams: Vec<_> = chats
        .iter()
        .map(|&chat_id| {
            let rig = rig.clone();
            tokio::spawn(async move { rig.chat(chat_id, "tell me something long").await })
        })
        .collect();
    let reading = {
        let rig = rig.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let until = Instant::now() + Duration::from_secs(6);
            while Instant::now() < until {
                statuses.push(rig.history().await.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            statuses
        })
    };
    eventually("every reply is halfway through", RECOVERY, async || {
        (rig.upstream.awaiting_ack() == chats.len()).then_some(())
    })
    .await;
    let server = tokio::task::spawn_blocking(move || {
        server
            .cluster
            .restart_fast()
            .expect("restarting PostgreSQL");
        server
    })
    .await
    .unwrap();
    assert_eq!(
        (rig.upstream.awaiting_ack(), rig.upstream.replies_finished()),
        (chats.len(), 0),
        "the restart happened while every reply was streaming"
    );
    rig.upstream.acknowledge(1);
    let mut turns = Vec::new();
    for stream in streams {
        let turn = stream.await.unwrap();
        assert_eq!(turn.status, StatusCode::OK, "no 5xx on chat: {}", turn.text);
        assert_eq!(
            turn.text.split_whitespace().count(),
            20,
            "the whole reply streamed"
        );
        turns.push(turn);
    }
    let statuses = reading.await.unwrap();
    let live = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let ephemeral = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(
        live + ephemeral,
        statuses.len(),
        "history either succeeds or answers 204: {statuses:?}"
    );
    let recovered_in = wait_for_live_history(&rig).await;
    println!(
        "{} chats streamed through a fast restart; {} history reads: {live} live, {ephemeral} ephemeral; live again {recovered_in:?} after the streams ended",
        turns.len(),
        statuses.len()
    );
    wait_until_every_turn_is_written(&rig, &server.db, &turns).await;
    assert_every_turn_stored(&server.db, &turns).await;
    let (_, page) = rig.history().await;
    assert_eq!(page["data"].as_array().unwrap().len(), chats.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn down_at_start_the_app_chats_ephemerally_and_catches_up_when_the_database_comes() {
    let mut server = ControlledDatabase::start().await;
    server.cluster.stop().unwrap();
    let rig = Rig::start(&server.db).await;
    assert!(
        rig.host.log().contains("chat schema not initialised"),
        "the host says the schema could not be set up:\n{}",
        rig.host.log()
    );

    let (status, _) = rig.history().await;
    assert_eq!(status, StatusCode::NO_CONTENT, "ephemeral: no history");
    let chat_id = Uuid::new_v4();
    let mut turns = Vec::new();
    for n in 0..3 {
        rig.upstream.expect_reply(reply(3, Duration::ZERO));
        if n == 0 {
            rig.upstream.expect_title(title());
        }
        let turn = rig.chat(chat_id, &format!("outage message {n}")).await;
        assert_eq!(
            turn.status,
            StatusCode::OK,
            "chat works without the database"
        );
        assert!(turn.reply_id.is_some(), "meta still comes");
        turns.push(turn);
    }
    let (status, page) = rig.get(&format!("/api/messages/{chat_id}")).await;
    assert_eq!((status, &page["source"]), (StatusCode::OK, &json!("mock")));

    let server = tokio::task::spawn_blocking(move || {
        server.cluster.start_again().expect("starting PostgreSQL");
        server
    })
    .await
    .unwrap();
    let took = wait_for_live_history(&rig).await;
    wait_until_every_turn_is_written(&rig, &server.db, &turns).await;
    println!("history live {took:?} after PostgreSQL started; 3 turns written from the journal");
    assert_every_turn_stored(&server.db, &turns).await;
    // The title was kept after the turn's messages, so it is written after
    // them, by the same replay.
    let page = eventually("the kept title written", RECOVERY, async || {
        let (_, page) = rig.history().await;
        (page["data"][0]["title"] == "Resilience").then_some(page)
    })
    .await;
    assert_eq!(page["data"][0]["id"], json!(chat_id));
    let (_, messages) = rig.get(&format!("/api/messages/{chat_id}")).await;
    let texts: Vec<&str> = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["parts"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 6);
    assert_eq!(texts[0], "outage message 0");
    assert_eq!(
        texts[2], "outage message 1",
        "the order of the outage is kept"
    );
    assert!(rig.host.log().contains("leaving ephemeral mode"));
}

/// Scenarios that test chat-host's own pool: its statement timeout, its
/// breaker and its checkout wait. Spin's Postgres pool has none of these
/// (see README, "What each runtime gives the app"), so the Spin pass skips
/// this module.
/// Two replicas on one database and one Redis store: a turn journaled
/// through the first while the database is down is written by the second
/// once it is back, while the first stands by untouched.
#[tokio::test(flavor = "multi_thread")]
async fn a_journal_in_redis_written_through_one_replica_is_replayed_by_another() {
    let mut server = ControlledDatabase::start().await;
    server.cluster.stop().unwrap();
    let redis = TestRedis::start();
    let runtime_config = redis.runtime_config();
    let first = Rig::start_with(&server.db, |config| {
        config.runtime_config_file(&runtime_config)
    })
    .await;
    let chat_id = Uuid::new_v4();
    first.upstream.expect_title(title());
    first.upstream.expect_reply(reply(3, Duration::ZERO));
    let turn = first.chat(chat_id, "journaled in Redis").await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.text);
    eventually(
        "the message, the reply and the title wait in Redis",
        RECOVERY,
        async || (redis.keys("journal/").len() == 3).then_some(()),
    )
    .await;

    let (_server, _replica) = start_again_and_replay(server, &runtime_config, &turn).await;
    eventually("the journal emptied", RECOVERY, async || {
        redis.keys("journal/").is_empty().then_some(())
    })
    .await;
    drop(first);
    println!("1 turn journaled in Redis through one replica, written by the other");
}

mod chat_host_only {
    use super::*;

    fn require_chat_host() {
        assert_eq!(
            Runtime::selected(),
            Runtime::ChatHost,
            "this scenario tests what only chat-host provides (pool and Redis timeouts); under Spin run with --skip chat_host_only::"
        );
    }

    /// Redis stopped and started again while requests come: every request
    /// still succeeds (the components go on without their shared state) and
    /// every turn is stored; chat-host says so once per outage. Not under
    /// Spin 4.1: its Redis store has no deadline, and with Redis stopped a
    /// reply stream waited on it past the client's 90 s.
    /// A database password that changes while the app runs (Lakebase's
    /// tokens do, hourly): read from a file, or printed by a command, for
    /// every new connection. The old password stops working the moment it
    /// changes, so the turns after it prove the new one was read.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_password_that_rotates_is_read_again_for_each_new_connection() {
        require_chat_host();
        let server = ControlledDatabase::start().await;
        let admin = server.db.connect().await;
        admin
            .batch_execute(
                "CREATE ROLE rotating LOGIN PASSWORD 'first'; ALTER DATABASE chat OWNER TO rotating;",
            )
            .await
            .unwrap();
        server.require_password_for("rotating").await;
        let dir = std::env::temp_dir().join(format!("chat-pw-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let password_file = dir.join("password");
        std::fs::write(&password_file, "first\n").unwrap();
        let url = server
            .db
            .url
            .replacen("postgres://postgres@", "postgres://rotating@", 1);
        let as_rotating = TestDatabase {
            name: server.db.name.clone(),
            url,
        };
        let wrong =
            as_rotating
                .url
                .replacen("postgres://rotating@", "postgres://rotating:wrong@", 1);
        assert!(
            tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
                .await
                .is_err(),
            "the server checks the role's password"
        );
        let password_option = password_file.display().to_string();
        let rig = Rig::start_with(&as_rotating, |config| {
            config.host_args(&["--db-password-file", &password_option])
        })
        .await;
        let mut turns = vec![rig.first_turn(Uuid::new_v4(), "first password").await];

        let rotate = async |password: &str| {
            admin
                .execute(&format!("ALTER ROLE rotating PASSWORD '{password}'"), &[])
                .await
                .unwrap();
            std::fs::write(&password_file, format!("{password}\n")).unwrap();
            // Open connections keep working; new ones must use the new password.
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rotating'",
                    &[],
                )
                .await
                .unwrap();
        };
        rotate("second").await;
        turns.push(rig.first_turn(Uuid::new_v4(), "second password").await);
        assert_eq!(rig.history().await.0, StatusCode::OK);
        drop(rig);

        let command = format!("cat '{}'", password_file.display());
        let rig = Rig::start_with(&as_rotating, |config| {
            config.host_args(&["--db-password-command", &command])
        })
        .await;
        rotate("third").await;
        turns.push(rig.first_turn(Uuid::new_v4(), "third password").await);
        assert_every_turn_stored(&server.db, &turns).await;
        std::fs::remove_dir_all(dir).unwrap();
        println!("3 turns across two password changes, from a file and from a command");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn with_redis_stopped_and_started_again_requests_succeed_and_nothing_is_lost() {
        require_chat_host();
        let server = ControlledDatabase::start().await;
        let mut redis = TestRedis::start();
        let runtime_config = redis.runtime_config();
        let rig = Rig::start_with(&server.db, |config| {
            config.runtime_config_file(&runtime_config)
        })
        .await;
        let mut turns = vec![rig.first_turn(Uuid::new_v4(), "before").await];

        redis.stop();
        for n in 0..3 {
            turns.push(
                rig.first_turn(Uuid::new_v4(), &format!("without Redis {n}"))
                    .await,
            );
            assert_eq!(rig.history().await.0, StatusCode::OK);
        }
        redis.start_again();
        for n in 0..3 {
            turns.push(
                rig.first_turn(Uuid::new_v4(), &format!("Redis back {n}"))
                    .await,
            );
            assert_eq!(rig.history().await.0, StatusCode::OK);
        }
        // Turns go on until one finds Redis answering again (for a second
        // after a failure, operations do not try).
        eventually("the log says Redis answers again", RECOVERY, async || {
            if rig.host.log().contains("answers again") {
                return Some(());
            }
            turns.push(rig.first_turn(Uuid::new_v4(), "until Redis answers").await);
            None
        })
        .await;
        let outages = rig.host.log_lines_containing("is out of reach (");
        assert_eq!(outages.len(), 1, "logged once per outage: {outages:?}");
        assert_every_turn_stored(&server.db, &turns).await;
        println!(
            "{} turns, 3 of them with Redis stopped: all stored once",
            turns.len()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_stuck_database_fails_requests_cleanly_and_recovers() {
        require_chat_host();
        let server = ControlledDatabase::start().await;
        let rig = Rig::start(&server.db).await;
        let chat_id = Uuid::new_v4();
        let mut turns = vec![rig.first_turn(chat_id, "before").await];
        assert_eq!(rig.history().await.0, StatusCode::OK);

        server.cluster.freeze().unwrap();
        let began = Instant::now();
        let messages_path = format!("/api/messages/{chat_id}");
        let (history, messages) = tokio::join!(rig.history(), rig.get(&messages_path));
        let first_answers = began.elapsed();
        assert_eq!(history.0, StatusCode::NO_CONTENT, "{}", history.1);
        assert_eq!(messages.1["source"], "mock");
        let began = Instant::now();
        rig.upstream.expect_reply(reply(2, Duration::ZERO));
        let during = rig.chat(chat_id, "while stuck").await;
        assert_eq!(during.status, StatusCode::OK);
        turns.push(during);
        let (deleted, body) = {
            let response = rig
                .http
                .delete(rig.host.url(&format!("/api/chat/{chat_id}")))
                .header("x-forwarded-email", USER)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        };
        assert_eq!(deleted, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("unavailable"),
            "{body}"
        );
        let while_open = began.elapsed();

        server.cluster.thaw().unwrap();
        let recovered_in = wait_for_live_history(&rig).await;
        println!(
            "stuck database: first answers after {first_answers:?} (the statement timeout), \
             then chat + delete in {while_open:?} (breaker open); live {recovered_in:?} after thawing"
        );
        wait_until_every_turn_is_written(&rig, &server.db, &turns).await;
        assert_every_turn_stored(&server.db, &turns).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_exhausted_pool_answers_503_within_the_wait_timeout() {
        require_chat_host();
        let db = TestDatabase::create().await;
        // One serving thread, so one pool holds all 32 connections (with
        // more, each thread's share fills on its own, as the kernel spreads
        // the requests).
        let rig = std::sync::Arc::new(
            Rig::start_with(&db, |config| config.host_args(&["--threads", "1"])).await,
        );
        assert_eq!(rig.history().await.0, StatusCode::OK);
        let mut locker = db.connect().await;
        let lock = locker.transaction().await.unwrap();
        lock.batch_execute(r#"LOCK TABLE chat."Chat" IN ACCESS EXCLUSIVE MODE"#)
            .await
            .unwrap();
        // More requests than the pool has connections (32), all stuck on the lock.
        let requests: Vec<_> = (0..40)
            .map(|_| {
                let rig = rig.clone();
                tokio::spawn(async move { rig.history().await })
            })
            .collect();
        let busy = eventually("the pool is exhausted", RECOVERY, async || {
            let waiting = sessions_waiting_on_locks(&db).await;
            (waiting >= 32).then_some(waiting)
        })
        .await;
        // Those beyond the pool give up after the checkout wait (10 s), while
        // the lock still holds every connection.
        let beyond_the_pool = requests.len() - 32;
        eventually(
            "the requests beyond the pool give up",
            RECOVERY,
            async || {
                let done = requests
                    .iter()
                    .filter(|request| request.is_finished())
                    .count();
                (done >= beyond_the_pool).then_some(())
            },
        )
        .await;
        lock.commit().await.unwrap();
        let mut statuses = Vec::new();
        for request in requests {
            let (status, body) = request.await.unwrap();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
            }
            statuses.push(status);
        }
        let served = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
            .count();
        println!(
            "{busy} requests held every connection; of 40: {served} served, {refused} got 503 busy"
        );
        assert_eq!(served + refused, 40, "{statuses:?}");
        assert!(
            refused >= 8,
            "the requests beyond the pool were refused: {statuses:?}"
        );
        assert!(served >= 32, "the waiting ones were served: {statuses:?}");
        assert!(
            !rig.host.log().contains("ephemeral mode"),
            "busy is not down"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_table_is_a_clear_error_tried_once() {
    let db = TestDatabase::create().await;
    let rig = Rig::start(&db).await;
    let chat_id = Uuid::new_v4();
    rig.first_turn(chat_id, "hello").await;
    db.connect()
        .await
        .batch_execute(
            r#"DROP TABLE chat."FeedbackOutbox"; DROP TABLE chat."Vote"; DROP TABLE chat."Message""#,
        )
        .await
        .unwrap();

    let (status, body) = rig.get(&format!("/api/messages/{chat_id}")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("database operation failed"), "{error}");
    assert!(
        !error.contains("42P01"),
        "no internals in the answer: {error}"
    );
    let logged = rig.host.log_lines_containing("42P01");
    assert!(!logged.is_empty(), "the log names the SQLSTATE");
    println!("1 request: 500 {error:?}; log: {}", logged[0]);
    let log = rig.host.log();
    assert!(
        !log.contains("cold-start retry"),
        "an application error is not retried"
    );
    assert_eq!(
        rig.history().await.0,
        StatusCode::OK,
        "an application error is no outage: no ephemeral mode"
    );
}

/// Starts PostgreSQL again and a host on the store `runtime_config` names,
/// which writes the journaled `turn` once it finds the database back.
async fn start_again_and_replay(
    mut server: ControlledDatabase,
    runtime_config: &std::path::Path,
    turn: &Turn,
) -> (ControlledDatabase, Rig) {
    let server = tokio::task::spawn_blocking(move || {
        server.cluster.start_again().expect("starting PostgreSQL");
        server
    })
    .await
    .unwrap();
    let rig = Rig::start_with(&server.db, |config| {
        config.runtime_config_file(runtime_config)
    })
    .await;
    wait_for_live_history(&rig).await;
    let turns = std::slice::from_ref(turn);
    wait_until_every_turn_is_written(&rig, &server.db, turns).await;
    assert_every_turn_stored(&server.db, turns).await;
    (server, rig)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_in_a_durable_store_survives_a_host_crash() {
    let mut server = ControlledDatabase::start().await;
    server.cluster.stop().unwrap();
    let store = FileStore::new();
    let runtime_config = store.runtime_config();
    let mut rig = Rig::start_with(&server.db, |config| {
        config.runtime_config_file(&runtime_config)
    })
    .await;
    let chat_id = Uuid::new_v4();
    rig.upstream.expect_title(title());
    rig.upstream.expect_reply(reply(3, Duration::ZERO));
    let turn = rig.chat(chat_id, "kept across a crash").await;
    assert_eq!(turn.status, StatusCode::OK);
    // The title is named beside the reply and may land after the stream
    // ended: the crash comes once all three wait in the journal.
    let journal_entries = |kept: &[(String, String)]| {
        kept.iter()
            .filter(|(key, _)| key.starts_with("journal/"))
            .count()
    };
    eventually(
        "the message, the reply and the title wait in the journal",
        RECOVERY,
        async || (journal_entries(&store.entries()) == 3).then_some(()),
    )
    .await;
    rig.host.kill();
    let reply_id = turn.reply_id.expect("meta named the reply");
    let kept = store.entries();
    assert_eq!(journal_entries(&kept), 3, "{kept:?}");
    let reply_record = |kept: &[(String, String)]| {
        kept.iter()
            .find(|(key, _)| *key == format!("reply/{reply_id}"))
            .map(|(_, value)| serde_json::from_str::<Value>(value).expect("a JSON record"))
    };
    let record = reply_record(&kept).expect("the reply's record is kept for feedback");
    assert_eq!(record["trace_id"], TRACE_ID, "{record}");
    assert_eq!(record["chat_id"], chat_id.to_string(), "{record}");

    let (server, rig) = start_again_and_replay(server, &runtime_config, &turn).await;
    // The title is written after the messages, by the same replay.
    eventually("the journal emptied", RECOVERY, async || {
        let _ = rig.history().await;
        (journal_entries(&store.entries()) == 0).then_some(())
    })
    .await;
    let traces: Vec<Option<String>> = server
        .db
        .column(
            r#"SELECT "traceId" FROM chat."Message" WHERE id = $1"#,
            &[&reply_id],
        )
        .await;
    assert_eq!(traces, [Some(TRACE_ID.to_owned())]);
    drop(rig);
    let left = store.entries();
    assert!(
        left.iter().all(|(key, _)| !key.starts_with("journal/")),
        "written entries leave the store: {left:?}"
    );
    assert!(
        reply_record(&left).is_some(),
        "the reply's record stays, to rate it in a later outage: {left:?}"
    );
    println!(
        "1 turn journaled, host killed, database started, new host: both messages stored once"
    );
}
