//! Ratings reach MLflow, and are never lost on the way: the app served by
//! chat-host (or Spin) on a real PostgreSQL, its serving endpoint's origin
//! answered by the MLflow stand-in of `chat_tests::mlflow`, which keeps
//! assessments as MLflow does and fails on demand. Deliveries run after
//! feedback requests; every wait is on what the stand-in or the database
//! shows.

use chat_tests::database::{ControlledDatabase, TestDatabase};
use chat_tests::file_store::FileStore;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::mlflow::Failure;
use chat_tests::upstream::{Script, ScriptedUpstream, Step};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const OWNER: &str = "owner@example.com";
const APP_TOKEN: &str = "app-serving-token";
/// Long enough for anything the tests wait for on a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// Starts a host, and the CPU hog when asked (this is a fault suite: it
/// runs again with every core busy, as tests/run.sh does).
async fn launch(config: HostConfig) -> TestHost {
    chat_tests::start_cpu_hog_if_asked();
    TestHost::launch(config).await
}

struct Rig {
    db: TestDatabase,
    upstream: ScriptedUpstream,
    host: TestHost,
}

/// A chat of the owner's with a question and a reply traced as `trace_id`.
struct Rated {
    chat: Uuid,
    reply: Uuid,
    trace_id: String,
}

impl Rig {
    async fn start() -> Self {
        let db = TestDatabase::create().await;
        let upstream = ScriptedUpstream::start().await;
        let config = HostConfig::new(&db.url)
            .variable("serving_endpoint_url", &upstream.url)
            .variable("serving_endpoint_origin", &upstream.origin)
            .variable("serving_token", APP_TOKEN)
            // A hung MLflow call gives up soon.
            .variable("serving_timeout_seconds", "2");
        let host = launch(config).await;
        Self { db, upstream, host }
    }

    async fn chat_with_reply(&self, trace_id: Option<&str>) -> Rated {
        let client = self.db.connect().await;
        let (chat, question, reply) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        client
            .execute(
                r#"INSERT INTO chat."Chat" (id, title, "userId") VALUES ($1, 'Rated', $2)"#,
                &[&chat, &OWNER],
            )
            .await
            .unwrap();
        for (id, role, trace) in [(question, "user", None), (reply, "assistant", trace_id)] {
            client
                .execute(
                    r#"INSERT INTO chat."Message" (id, "chatId", role, parts, "traceId")
                       VALUES ($1, $2, $3, '[{"type":"text","text":"…"}]', $4)"#,
                    &[&id, &chat, &role, &trace],
                )
                .await
                .unwrap();
        }
        Rated {
            chat,
            reply,
            trace_id: trace_id.unwrap_or_default().to_owned(),
        }
    }

    async fn rate(&self, rated: &Rated, up: bool, comment: Option<&str>) {
        let body = json!({"chatId": rated.chat, "messageId": rated.reply, "isUpvoted": up, "comment": comment});
        let response = reqwest::Client::new()
            .put(self.host.url("/api/feedback"))
            .header("x-forwarded-email", OWNER)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn withdraw(&self, rated: &Rated) {
        let response = reqwest::Client::new()
            .delete(
                self.host
                    .url(&format!("/api/feedback/{}/{}", rated.chat, rated.reply)),
            )
            .header("x-forwarded-email", OWNER)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// A feedback request, which delivers whatever is due after answering.
    async fn nudge(&self, rated: &Rated) {
        let response = reqwest::Client::new()
            .get(self.host.url(&format!("/api/feedback/{}", rated.chat)))
            .header("x-forwarded-email", OWNER)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// The outbox row of the reply: pending, attempts, last error, refused.
    async fn outbox(&self, rated: &Rated) -> Option<(bool, i32, Option<String>, bool)> {
        let rows = self
            .db
            .connect()
            .await
            .query(
                r#"SELECT pending, attempts, "lastError", "failedAt" IS NOT NULL
                   FROM chat."FeedbackOutbox" WHERE "messageId" = $1"#,
                &[&rated.reply],
            )
            .await
            .unwrap();
        rows.first()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
    }

    /// Makes a retry waiting out its backoff due now (the clock moved on).
    async fn make_due(&self, rated: &Rated) {
        self.db
            .connect()
            .await
            .execute(
                r#"UPDATE chat."FeedbackOutbox" SET "nextAttemptAt" = CURRENT_TIMESTAMP - interval '1 second'
                   WHERE "messageId" = $1"#,
                &[&rated.reply],
            )
            .await
            .unwrap();
    }

    /// The assessments of the reply's trace in the stand-in.
    fn assessments(&self, rated: &Rated) -> Vec<Value> {
        self.upstream
            .mlflow
            .assessments()
            .into_iter()
            .filter(|assessment| assessment["trace_id"] == rated.trace_id.as_str())
            .collect()
    }

    /// Waits until the outbox row is delivered (no longer pending) and
    /// answers the trace's assessments then.
    async fn delivered(&self, rated: &Rated) -> Vec<Value> {
        chat_tests::eventually("the rating delivered", PATIENCE, async || {
            match self.outbox(rated).await {
                Some((false, _, _, false)) => Some(()),
                _ => None,
            }
        })
        .await;
        self.assessments(rated)
    }

    /// Waits until a delivery failed and is waiting to be retried.
    async fn retry_waiting(&self, rated: &Rated, attempts: i32) -> String {
        chat_tests::eventually("a failed delivery recorded", PATIENCE, async || match self
            .outbox(rated)
            .await
        {
            Some((true, found, Some(error), false)) if found >= attempts => Some(error),
            _ => None,
        })
        .await
    }
}

fn value_of(assessment: &Value) -> (&Value, &Value) {
    (&assessment["feedback"]["value"], &assessment["rationale"])
}

#[tokio::test]
async fn a_rating_reaches_mlflow_once_and_changes_update_that_assessment() {
    let rig = Rig::start().await;
    let rated = rig.chat_with_reply(Some("tr-feedback-1")).await;

    rig.rate(&rated, false, Some("Too vague")).await;
    let [assessment] = &rig.delivered(&rated).await[..] else {
        panic!("one assessment: {:?}", rig.assessments(&rated));
    };
    assert_eq!(assessment["assessment_name"], "user_feedback");
    assert_eq!(
        assessment["source"],
        json!({"source_type": "HUMAN", "source_id": OWNER})
    );
    assert_eq!(value_of(assessment), (&json!(false), &json!("Too vague")));
    assert_eq!(
        assessment["metadata"]["chat_history.message_id"],
        rated.reply.to_string()
    );
    let first_id = assessment["assessment_id"].clone();
    for call in rig.upstream.mlflow.calls() {
        assert_eq!(
            call.authorization.as_deref(),
            Some("Bearer app-serving-token")
        );
        assert_eq!(call.declared_length, Some(call.body_bytes), "{call:?}");
    }

    // Three changes in a row: one assessment, the last value.
    rig.rate(&rated, true, None).await;
    rig.rate(&rated, false, None).await;
    rig.rate(&rated, true, Some("Right after all")).await;
    let [assessment] = &rig.delivered(&rated).await[..] else {
        panic!("still one assessment: {:?}", rig.assessments(&rated));
    };
    assert_eq!(assessment["assessment_id"], first_id);
    assert_eq!(
        value_of(assessment),
        (&json!(true), &json!("Right after all"))
    );

    // Withdrawn: the assessment goes.
    rig.withdraw(&rated).await;
    assert_eq!(rig.delivered(&rated).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_rating_made_while_mlflow_fails_reaches_it_exactly_once_when_it_answers_again() {
    let rig = Rig::start().await;
    // Each way MLflow can fail: an error status, no answer at all, the
    // connection dropped, and the work done but its answer lost.
    for (n, failure) in [
        Failure::Status(500),
        Failure::Hang,
        Failure::Drop,
        Failure::DoThenDrop,
    ]
    .into_iter()
    .enumerate()
    {
        let rated = rig.chat_with_reply(Some(&format!("tr-down-{n}"))).await;
        // The look-up is answered (nothing there yet), then the create fails.
        rig.upstream.mlflow.fail_next(&[None, Some(failure)]);
        rig.rate(&rated, true, Some("Good")).await;
        let error = rig.retry_waiting(&rated, 1).await;
        assert!(!error.is_empty(), "{failure:?}");
        assert!(rig.outbox(&rated).await.unwrap().0, "still pending");

        // MLflow answers again; the retry's backoff is over.
        rig.make_due(&rated).await;
        rig.nudge(&rated).await;
        let assessments = rig.delivered(&rated).await;
        assert_eq!(assessments.len(), 1, "{failure:?}: {assessments:?}");
        assert_eq!(value_of(&assessments[0]), (&json!(true), &json!("Good")));
    }
}

#[tokio::test]
async fn a_refusal_for_good_is_recorded_and_not_retried() {
    let rig = Rig::start().await;
    let refused = rig.chat_with_reply(Some("tr-unknown")).await;
    rig.upstream
        .mlflow
        .fail_next(&[None, Some(Failure::Status(400))]);
    rig.rate(&refused, true, None).await;
    let outbox = chat_tests::eventually("the refusal recorded", PATIENCE, async || {
        rig.outbox(&refused).await.filter(|row| row.3)
    })
    .await;
    assert!(!outbox.0, "no longer pending");
    assert!(outbox.2.unwrap().contains("400"));
    let calls = rig.upstream.mlflow.calls().len();

    // Another rating is delivered after it; the refused one is not tried again.
    let later = rig.chat_with_reply(Some("tr-later")).await;
    rig.rate(&later, false, None).await;
    assert_eq!(rig.delivered(&later).await.len(), 1);
    let tried_again = rig.upstream.mlflow.calls()[calls..]
        .iter()
        .any(|call| call.path.contains("tr-unknown"));
    assert!(!tried_again, "{:?}", rig.upstream.mlflow.calls());

    // A new vote on it is a new attempt.
    rig.rate(&refused, false, None).await;
    assert_eq!(rig.delivered(&refused).await.len(), 1);
}

#[tokio::test]
async fn a_reply_without_a_trace_is_rated_without_mlflow() {
    let rig = Rig::start().await;
    let rated = rig.chat_with_reply(None).await;
    rig.rate(&rated, true, None).await;
    rig.nudge(&rated).await;
    assert_eq!(rig.outbox(&rated).await, None);
    let votes: Vec<bool> = rig
        .db
        .column(
            r#"SELECT "isUpvoted" FROM chat."Vote" WHERE "messageId" = $1"#,
            &[&rated.reply],
        )
        .await;
    assert_eq!(votes, [true]);
}

#[tokio::test]
async fn with_zero_configuration_a_rating_reaches_the_demo_agents_mlflow() {
    let db = TestDatabase::create().await;
    // No serving settings: the built-in demo agent answers, for MLflow too.
    let host = launch(HostConfig::new(&db.url)).await;
    let chat = Uuid::new_v4();
    let meta = ask(&host, chat, "Hello").await;
    let reply = meta["assistantMessageId"].as_str().unwrap();
    assert!(meta["traceId"].is_string(), "{meta}");

    let response = reqwest::Client::new()
        .put(host.url("/api/feedback"))
        .header("x-forwarded-email", OWNER)
        .json(&json!({"chatId": chat, "messageId": reply, "isUpvoted": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let reply = Uuid::parse_str(reply).unwrap();
    let assessment_id = chat_tests::eventually("the rating delivered", PATIENCE, async || {
        let rows = db
            .connect()
            .await
            .query(
                r#"SELECT "assessmentId" FROM chat."FeedbackOutbox"
                   WHERE "messageId" = $1 AND NOT pending AND "failedAt" IS NULL"#,
                &[&reply],
            )
            .await
            .unwrap();
        rows.first().and_then(|row| row.get::<_, Option<String>>(0))
    })
    .await;
    assert!(assessment_id.starts_with("demo-"), "{assessment_id}");
}

/// How long a recovering database may take to be used again (the breaker's
/// cool-down, then a probe).
const RECOVERY: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn without_the_database_a_kept_reply_is_rated_into_mlflow_and_its_vote_waits_in_the_journal()
{
    let mut server = ControlledDatabase::start().await;
    let upstream = ScriptedUpstream::start().await;
    let config = HostConfig::new(&server.db.url)
        .variable("serving_endpoint_url", &upstream.url)
        .variable("serving_endpoint_origin", &upstream.origin)
        .variable("serving_token", APP_TOKEN);
    let host = launch(config).await;
    server.cluster.stop().unwrap();

    // A reply streamed in ephemeral mode: its record is kept for feedback.
    let chunk = json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "Offline answer."}}],
        "databricks_output": {"trace": {"info": {"trace_id": "tr-offline"}}},
    });
    upstream.expect_reply(Script::stream(vec![
        Step::Send(format!("data: {chunk}\n\n")),
        Step::Send("data: [DONE]\n\n".to_owned()),
    ]));
    let chat = Uuid::new_v4();
    let reply = ask(&host, chat, "Still there?").await["assistantMessageId"]
        .as_str()
        .map(|id| Uuid::parse_str(id).unwrap())
        .expect("meta names the reply");
    let rated = Rated {
        chat,
        reply,
        trace_id: "tr-offline".to_owned(),
    };
    let put = |email: &str, message: Uuid| {
        reqwest::Client::new()
            .put(host.url("/api/feedback"))
            .header("x-forwarded-email", email)
            .json(&json!({"chatId": chat, "messageId": message, "isUpvoted": true, "comment": "Right"}))
            .send()
    };

    // Rated: 200, and MLflow has it at once.
    assert_eq!(put(OWNER, reply).await.unwrap().status(), StatusCode::OK);
    let mlflow = &upstream.mlflow;
    let assessment = chat_tests::eventually("MLflow has the rating", PATIENCE, async || {
        let mut found = mlflow.assessments();
        found.retain(|assessment| assessment["trace_id"] == rated.trace_id.as_str());
        (found.len() == 1).then(|| found.remove(0))
    })
    .await;
    assert_eq!(value_of(&assessment), (&json!(true), &json!("Right")));
    // Someone else's rating is refused; a reply without a kept record
    // cannot be checked: 503, nothing kept.
    assert_eq!(
        put("other@example.com", reply).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(OWNER, Uuid::new_v4()).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The database is back: the journal replays the vote, and the outbox
    // finds the assessment already made instead of making a second.
    let server = tokio::task::spawn_blocking(move || {
        server.cluster.start_again().expect("starting PostgreSQL");
        server
    })
    .await
    .unwrap();
    chat_tests::eventually("the vote replayed", RECOVERY, async || {
        let _ = reqwest::Client::new()
            .get(host.url("/api/history"))
            .header("x-forwarded-email", OWNER)
            .send()
            .await;
        let client = tokio_postgres::connect(&server.db.url, tokio_postgres::NoTls)
            .await
            .ok()
            .map(|(client, connection)| {
                tokio::spawn(connection);
                client
            })?;
        let rows = client
            .query(
                r#"SELECT "isUpvoted" FROM chat."Vote" WHERE "messageId" = $1"#,
                &[&reply],
            )
            .await
            .ok()?;
        rows.first()
            .map(|row| row.get::<_, bool>(0))
            .filter(|up| *up)
    })
    .await;
    chat_tests::eventually("the outbox delivered", PATIENCE, async || {
        let _ = reqwest::Client::new()
            .get(host.url(&format!("/api/feedback/{chat}")))
            .header("x-forwarded-email", OWNER)
            .send()
            .await;
        let rows = server
            .db
            .connect()
            .await
            .query(
                r#"SELECT 1 FROM chat."FeedbackOutbox"
                   WHERE "messageId" = $1 AND NOT pending AND "failedAt" IS NULL"#,
                &[&reply],
            )
            .await
            .unwrap();
        (!rows.is_empty()).then_some(())
    })
    .await;
    let mut assessments = mlflow.assessments();
    assessments.retain(|assessment| assessment["trace_id"] == "tr-offline");
    assert_eq!(assessments.len(), 1, "exactly one: {assessments:?}");
    assert_eq!(assessments[0]["assessment_id"], assessment["assessment_id"]);
}

/// Asks `question` in `chat` as the owner and answers the reply's meta event.
async fn ask(host: &TestHost, chat: Uuid, question: &str) -> Value {
    let events = reqwest::Client::new()
        .post(host.url("/api/chat"))
        .header("x-forwarded-email", OWNER)
        .json(&json!({"id": chat, "messages": [{"role": "user", "content": question}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    events
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|event| event["type"] == "meta")
        .unwrap_or_else(|| panic!("no meta event in {events:?}"))
}

#[tokio::test]
async fn expired_reply_records_are_removed_from_the_store() {
    let store = FileStore::new();
    let db = TestDatabase::create().await;
    let upstream = ScriptedUpstream::start().await;
    let config = || {
        HostConfig::new(&db.url)
            .variable("serving_endpoint_url", &upstream.url)
            .variable("serving_endpoint_origin", &upstream.origin)
            .runtime_config_file(store.runtime_config())
    };
    // A first host opens the store, so its file and table exist; the
    // records below are written while no host runs.
    let first = launch(config()).await;
    let history = reqwest::Client::new()
        .get(first.url("/api/history"))
        .header("x-forwarded-email", OWNER)
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), StatusCode::OK);
    drop(first);
    let (stale, fresh) = (Uuid::new_v4(), Uuid::new_v4());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (id, kept_at) in [(stale, 0), (fresh, now_ms)] {
        let record = json!({"chat_id": Uuid::new_v4(), "owner": OWNER, "trace_id": "tr-old", "kept_at": kept_at});
        store.insert(&format!("reply/{id}"), record.to_string().as_bytes());
    }
    let host = launch(config()).await;

    // A traced reply: kept, and the stale record removed beside it.
    let chunk = json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": "Fresh."}}],
        "databricks_output": {"trace": {"info": {"trace_id": "tr-fresh"}}},
    });
    upstream.expect_reply(Script::stream(vec![
        Step::Send(format!("data: {chunk}\n\n")),
        Step::Send("data: [DONE]\n\n".to_owned()),
    ]));
    let reply = ask(&host, Uuid::new_v4(), "Anything new?").await["assistantMessageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys = || -> Vec<String> { store.entries().into_iter().map(|(key, _)| key).collect() };
    let left = chat_tests::eventually("the stale record removed", PATIENCE, async || {
        let left = keys();
        (!left.contains(&format!("reply/{stale}"))).then_some(left)
    })
    .await;
    assert!(left.contains(&format!("reply/{fresh}")), "{left:?}");
    assert!(left.contains(&format!("reply/{reply}")), "{left:?}");
    assert!(
        left.iter().any(|key| key == "reply-records-pruned-at"),
        "{left:?}"
    );
    drop(host);
}
