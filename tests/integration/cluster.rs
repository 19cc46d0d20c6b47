//! Several chat-host replicas on one PostgreSQL and one Redis behind nginx,
//! all real processes on loopback: what a fleet behind a load balancer goes
//! through (a rolling restart, a replica killed, Redis and then the database
//! gone for a while), played while clients chat and page through their
//! history. The replies come from the app's own demo agent.

use chat_tests::database::{ControlledDatabase, TestDatabase};
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

/// Two clients chatting and two paging through history through nginx,
/// each as fast as it can, until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    /// Requests completed so far, chat turns and history pages.
    completed: Arc<[AtomicUsize; 2]>,
    clients: Vec<tokio::task::JoinHandle<Seen>>,
}

const TURNS: usize = 0;
const PAGES: usize = 1;

impl Load {
    fn start(nginx: &Arc<TestNginx>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let mut clients = Vec::new();
        for client in 0..4 {
            let (nginx, stop, completed) = (nginx.clone(), stop.clone(), completed.clone());
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap();
                let mut seen = Seen::default();
                let kind = if client < 2 { TURNS } else { PAGES };
                while !stop.load(Ordering::Relaxed) {
                    if kind == TURNS {
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
                    completed[kind].fetch_add(1, Ordering::Relaxed);
                }
                seen
            }));
        }
        Self {
            stop,
            completed,
            clients,
        }
    }

    /// Waits until two more chat turns and twenty more pages have
    /// completed (each one, failed or not).
    async fn flowed(&self) {
        let now = |kind: usize| self.completed[kind].load(Ordering::Relaxed);
        let (turns, pages) = (now(TURNS) + 2, now(PAGES) + 20);
        chat_tests::eventually("requests complete through nginx", PATIENCE, async || {
            (now(TURNS) >= turns && now(PAGES) >= pages).then_some(())
        })
        .await;
    }

    /// Stops the clients and answers what they saw, failing the test (with
    /// nginx's log) if any request failed.
    async fn finish(self, nginx: &TestNginx) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Seen::default();
        for client in self.clients {
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
        seen
    }
}

/// Every reply the clients were shown is stored once, complete, after its
/// question, and no question was stored twice (nothing was resent).
async fn assert_stored_once(db: &TestDatabase, turns: &[Turn]) {
    let client = db.connect().await;
    for turn in turns {
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
}

/// A replica on `port` sharing `db` and `redis`.
fn replica_config(db: &TestDatabase, redis: &TestRedis, port: u16) -> HostConfig {
    HostConfig::new(&db.url)
        .runtime_config_file(redis.runtime_config())
        .port(port)
}

/// Replicas on `ports`, each configured further by `more` (given its index).
async fn launch_replicas(
    db: &TestDatabase,
    redis: &TestRedis,
    ports: &[u16],
    more: impl Fn(HostConfig, usize) -> HostConfig,
) -> Vec<TestHost> {
    let mut replicas = Vec::new();
    for (index, &port) in ports.iter().enumerate() {
        let config = more(replica_config(db, redis, port), index);
        replicas.push(TestHost::launch(config).await);
    }
    replicas
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
    let with_metrics = |config: HostConfig, index: usize| {
        config.host_args(&["--metrics-listen", &metrics_addresses[index]])
    };
    let mut replicas = launch_replicas(&db, &redis, &ports, with_metrics).await;
    let nginx = Arc::new(TestNginx::start(&ports));

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
    // Load flows before, between and after the restarts.
    let load = Load::start(&nginx);
    load.flowed().await;
    for index in 0..REPLICAS {
        replicas[index].terminate();
        let status = replicas[index].exited(PATIENCE).await;
        assert!(status.success(), "replica {index} exited with {status}");
        let config = with_metrics(replica_config(&db, &redis, ports[index]), index);
        replicas[index] = TestHost::launch(config).await;
        served_through_nginx(index).await;
        load.flowed().await;
    }
    let seen = load.finish(&nginx).await;
    assert_stored_once(&db, &seen.turns).await;
    println!(
        "rolling restart of {REPLICAS} replicas behind nginx: {} turns and {} history pages, no failure",
        seen.turns.len(),
        seen.pages
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stopped_and_started_under_load_behind_nginx_fails_no_request_and_loses_nothing() {
    require_chat_host();
    chat_tests::start_cpu_hog_if_asked();
    let db = TestDatabase::create().await;
    let mut redis = TestRedis::start();
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let replicas = launch_replicas(&db, &redis, &ports, |config, _| config).await;
    let nginx = Arc::new(TestNginx::start(&ports));

    let load = Load::start(&nginx);
    load.flowed().await;
    redis.stop();
    each_logged(&replicas, "is out of reach").await;
    load.flowed().await;
    redis.start_again();
    each_logged(&replicas, "answers again").await;
    load.flowed().await;
    let seen = load.finish(&nginx).await;
    assert_stored_once(&db, &seen.turns).await;
    println!(
        "Redis stopped and started under load behind nginx: {} turns and {} history pages, no failure",
        seen.turns.len(),
        seen.pages
    );
}

/// Waits until every replica has logged a line containing `words` (each
/// finds an outage, and its end, through the requests nginx sends it).
async fn each_logged(replicas: &[TestHost], words: &str) {
    for (index, replica) in replicas.iter().enumerate() {
        chat_tests::eventually(
            &format!("replica {index} logs {words:?}"),
            PATIENCE,
            async || (!replica.log_lines_containing(words).is_empty()).then_some(()),
        )
        .await;
    }
}

/// Turns taken through nginx while the database is down wait in the shared
/// journal; replicas that never saw them (the fleet replaced while the
/// database was away) write them once it returns.
#[tokio::test(flavor = "multi_thread")]
async fn a_journal_written_through_the_fleet_while_the_database_is_down_is_replayed_by_new_replicas()
 {
    require_chat_host();
    let mut server = ControlledDatabase::start().await;
    let redis = TestRedis::start();
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let mut replicas = launch_replicas(&server.db, &redis, &ports, |config, _| config).await;
    let nginx = TestNginx::start(&ports);
    let http = reqwest::Client::new();
    // One page first, so the schema is in place before the outage.
    one_page(&http, &nginx).await.unwrap();

    server.cluster.stop().expect("stopping PostgreSQL");
    let mut turns = Vec::new();
    for _ in 0..REPLICAS * 2 {
        turns.push(
            one_turn(&http, &nginx)
                .await
                .unwrap_or_else(|failure| panic!("{failure}\nnginx: {}", nginx.error_log())),
        );
    }
    chat_tests::eventually(
        "every question and reply waits in Redis",
        PATIENCE,
        async || (redis.keys("journal/").len() >= turns.len() * 2).then_some(()),
    )
    .await;
    for (index, replica) in replicas.iter_mut().enumerate() {
        replica.terminate();
        let status = replica.exited(PATIENCE).await;
        assert!(status.success(), "replica {index} exited with {status}");
    }

    let server = tokio::task::spawn_blocking(move || {
        server.cluster.start_again().expect("starting PostgreSQL");
        server
    })
    .await
    .unwrap();
    let _replicas = launch_replicas(&server.db, &redis, &ports, |config, _| config).await;
    chat_tests::eventually("the journal emptied", PATIENCE, async || {
        // Pages through nginx give the new replicas requests to replay on.
        let _ = one_page(&http, &nginx).await;
        redis.keys("journal/").is_empty().then_some(())
    })
    .await;
    assert_stored_once(&server.db, &turns).await;
    println!(
        "{} turns journaled through nginx while the database was down, written by new replicas",
        turns.len()
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
