//! Several chat-host replicas on one PostgreSQL and one Redis behind nginx,
//! all real processes on loopback: what a fleet behind a load balancer goes
//! through (a rolling restart), played while clients chat and page through
//! their history. The replies come from the app's own demo agent.

use chat_tests::database::TestDatabase;
use chat_tests::event_stream::EventStream;
use chat_tests::host::{HostConfig, TestHost, free_port};
use chat_tests::nginx::TestNginx;
use chat_tests::redis_server::TestRedis;
use chat_tests::runtime::Runtime;
use chat_tests::upstream::{Script, ScriptedUpstream, Step};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

const USER: &str = "fleet@example.com";
const REPLICAS: usize = 3;
/// Long enough for a replica to drain and start again on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// One chat turn a client completed through the load balancer.
struct Turn {
    chat: Uuid,
    question: Uuid,
    reply: Uuid,
}

/// What the clients saw: the turns that ended with `meta` and `[DONE]`,
/// the history pages, and every failure in words.
#[derive(Default)]
struct Seen {
    turns: Vec<Turn>,
    pages: usize,
    failures: Vec<String>,
}

async fn one_turn(http: &reqwest::Client, nginx: &TestNginx) -> Result<Turn, String> {
    let (chat, question) = (Uuid::new_v4(), Uuid::new_v4());
    let body = json!({"id": chat, "messages": [{"role": "user", "content": "Tell me about fleets", "id": question}]});
    let response = http
        .post(nginx.url("/api/chat"))
        .header("x-forwarded-email", USER)
        .json(&body)
        .send()
        .await
        .map_err(|error| format!("POST /api/chat: {error}"))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("POST /api/chat: {status} {text}"));
    }
    let events = EventStream::new(response).rest().await;
    let [.., meta, done] = events.as_slice() else {
        return Err(format!("a stream too short: {events:?}"));
    };
    let meta: Value = serde_json::from_str(meta).map_err(|_| format!("no meta: {events:?}"))?;
    if done != "[DONE]" || meta["type"] != "meta" {
        return Err(format!("the stream did not end well: {events:?}"));
    }
    let reply = meta["assistantMessageId"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| format!("no reply id: {meta}"))?;
    Ok(Turn {
        chat,
        question,
        reply,
    })
}

async fn one_page(http: &reqwest::Client, nginx: &TestNginx) -> Result<(), String> {
    let response = http
        .get(nginx.url("/api/history?limit=20"))
        .header("x-forwarded-email", USER)
        .send()
        .await
        .map_err(|error| format!("GET /api/history: {error}"))?;
    match response.status() {
        reqwest::StatusCode::OK => Ok(()),
        status => Err(format!(
            "GET /api/history: {status} {}",
            response.text().await.unwrap_or_default()
        )),
    }
}

fn require_chat_host() {
    assert_eq!(
        Runtime::selected(),
        Runtime::ChatHost,
        "the fleet is of chat-host replicas (their drain on SIGTERM is chat-host's)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_behind_nginx_fails_no_request_and_stores_every_reply_once() {
    require_chat_host();
    chat_tests::start_cpu_hog_if_asked();
    let db = TestDatabase::create().await;
    let redis = TestRedis::start();
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let metrics_addresses: Vec<String> = (0..REPLICAS)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let config = |index: usize| {
        HostConfig::new(&db.url)
            .runtime_config_file(redis.runtime_config())
            .port(ports[index])
            .host_args(&["--metrics-listen", &metrics_addresses[index]])
    };
    let mut replicas = Vec::new();
    for index in 0..REPLICAS {
        replicas.push(TestHost::launch(config(index)).await);
    }
    let nginx = Arc::new(TestNginx::start(&ports));

    // Two clients chat and two page through history until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (nginx, stop, completed) = (nginx.clone(), stop.clone(), completed.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap();
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) {
                if client < 2 {
                    match one_turn(&http, &nginx).await {
                        Ok(turn) => seen.turns.push(turn),
                        Err(failure) => seen.failures.push(failure),
                    }
                } else {
                    match one_page(&http, &nginx).await {
                        Ok(()) => seen.pages += 1,
                        Err(failure) => seen.failures.push(failure),
                    }
                }
                completed.fetch_add(1, Ordering::Relaxed);
            }
            seen
        }));
    }
    // Load flows before, between and after the restarts.
    let flowed = async |at_least: usize| {
        let target = completed.load(Ordering::Relaxed) + at_least;
        chat_tests::eventually("requests complete through nginx", PATIENCE, async || {
            (completed.load(Ordering::Relaxed) >= target).then_some(())
        })
        .await;
    };
    // As an orchestrator rolls a fleet, the next replica stops only once
    // the balancer sends requests to the one started again. nginx learns
    // that a replica is back only by trying it, up to 10 s after it last
    // failed to connect (`fail_timeout`); rolling faster would leave it no
    // replica it believes alive.
    let served_through_nginx = async |index: usize| {
        let address = &metrics_addresses[index];
        chat_tests::eventually(
            &format!("nginx sends requests to replica {index} again"),
            PATIENCE,
            async || {
                let metrics = chat_tests::metrics::scrape(address).await;
                chat_tests::metrics::sample(
                    &metrics,
                    r#"chat_host_requests_total{route="/api/history",status="200"}"#,
                )
            },
        )
        .await;
    };
    flowed(20).await;
    for index in 0..REPLICAS {
        replicas[index].terminate();
        let status = replicas[index].exited(PATIENCE).await;
        assert!(status.success(), "replica {index} exited with {status}");
        replicas[index] = TestHost::launch(config(index)).await;
        served_through_nginx(index).await;
        flowed(20).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = Seen::default();
    for client in clients {
        let mut one = client.await.unwrap();
        seen.turns.append(&mut one.turns);
        seen.pages += one.pages;
        seen.failures.append(&mut one.failures);
    }
    assert!(
        seen.failures.is_empty(),
        "{} failed requests: {:?}\nnginx: {}",
        seen.failures.len(),
        seen.failures,
        nginx.error_log()
    );

    // Every reply the clients were shown is stored once, complete, after
    // its question, and no question was stored twice (nothing was resent).
    let client = db.connect().await;
    for turn in &seen.turns {
        let rows = client
            .query(
                r#"SELECT id, role, status FROM chat."Message" WHERE "chatId" = $1 ORDER BY "createdAt", role DESC"#,
                &[&turn.chat],
            )
            .await
            .unwrap();
        let stored: Vec<(Uuid, String, String)> = rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        assert_eq!(
            stored,
            [
                (turn.question, "user".to_owned(), "complete".to_owned()),
                (turn.reply, "assistant".to_owned(), "complete".to_owned())
            ],
            "chat {}",
            turn.chat
        );
    }
    println!(
        "rolling restart of {REPLICAS} replicas behind nginx: {} turns and {} history pages, no failure",
        seen.turns.len(),
        seen.pages
    );
}

/// `count` words, one every 100 ms, then the end.
fn slow_reply(count: usize) -> Script {
    let mut steps = Vec::new();
    for n in 1..=count {
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": format!("w{n} ")}}]});
        steps.push(Step::Send(format!("data: {chunk}\n\n")));
        steps.push(Step::Pause(Duration::from_millis(100)));
    }
    steps.push(Step::Send("data: [DONE]\n\n".to_owned()));
    Script::stream(steps)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_stream_leaves_the_others_untouched_and_its_question_stored() {
    require_chat_host();
    chat_tests::start_cpu_hog_if_asked();
    let db = TestDatabase::create().await;
    let redis = TestRedis::start();
    let upstream = ScriptedUpstream::start().await;
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let mut replicas = Vec::new();
    for &port in &ports {
        let config = HostConfig::new(&db.url)
            .variable("serving_endpoint_url", &upstream.url)
            .variable("serving_endpoint_origin", &upstream.origin)
            .runtime_config_file(redis.runtime_config())
            .port(port);
        replicas.push(TestHost::launch(config).await);
    }
    let nginx = TestNginx::start(&ports);

    // A four-second reply streams from each replica.
    let mut streams = Vec::new();
    for replica in &replicas {
        upstream.expect_reply(slow_reply(40));
        let (chat, question) = (Uuid::new_v4(), Uuid::new_v4());
        let body = json!({"id": chat, "messages": [{"role": "user", "content": "Stay with me", "id": question}]});
        let response = reqwest::Client::new()
            .post(replica.url("/api/chat"))
            .header("x-forwarded-email", USER)
            .json(&body)
            .send()
            .await
            .expect("POST /api/chat");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        streams.push((chat, question, EventStream::new(response)));
    }
    // Past the first checkpoint (two seconds in) on the replica to be killed.
    for _ in 0..25 {
        streams[0].2.next().await.expect("a chunk");
    }
    replicas[0].kill();

    for (chat, question, events) in streams.drain(1..) {
        let events = events.rest().await;
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        let stored = db.stored_messages(chat).await;
        let summary: Vec<(Uuid, &str)> = stored
            .iter()
            .map(|message| (message.id, message.status.as_str()))
            .collect();
        assert_eq!(summary.len(), 2, "{stored:?}");
        assert_eq!(summary[0], (question, "complete"));
        assert_eq!(summary[1].1, "complete");
    }
    let (chat, question, _) = streams.remove(0);
    let stored = db.stored_messages(chat).await;
    assert_eq!(
        stored.len(),
        2,
        "the question and the checkpoint: {stored:?}"
    );
    assert_eq!(
        (stored[0].id, stored[0].status.as_str()),
        (question, "complete")
    );
    assert_eq!(stored[1].status, "streaming", "{stored:?}");
    assert!(
        stored[1].text.split_whitespace().count() >= 10,
        "the first checkpoint: {:?}",
        stored[1].text
    );
    // The balancer goes around the dead replica.
    let http = reqwest::Client::new();
    for _ in 0..REPLICAS * 3 {
        one_page(&http, &nginx)
            .await
            .unwrap_or_else(|failure| panic!("{failure}\nnginx: {}", nginx.error_log()));
    }
}
