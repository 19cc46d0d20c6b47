//! The fuzz test: thousands of generated malformed requests (see
//! `generate`) against the live app. None may get a 5xx (the database is up),
//! an answer the description does not allow, or a non-JSON error; the host
//! must log no trap or panic; and the database must come out unchanged.
//! The one exception is the runtime's own: Spin answers a request with a
//! header value that is not UTF-8 with an empty 500 before any component
//! runs, and exactly that is expected of it.
//!
//! `GET /api/history` records its caller in `chat."User"` — legitimately, for
//! any identity. So users are compared apart: every user row from before must
//! still be there unchanged, and a new one must carry an identity that some
//! `GET /api/history` answered 200 for. `"Chat"`, `"Message"`, `"Vote"` and
//! `"Folder"` must be exactly as before.

mod generate;
mod prng;

use chat_tests::contract::client::{ApiClient, description};
use chat_tests::contract::openapi::Exchange;
use chat_tests::contract::seed::{Placement, Seeder, Snapshot, Visibility};
use chat_tests::contract::target::Target;
use chat_tests::runtime::Runtime;
use futures_util::StreamExt;
use generate::{FuzzRequest, World, generate};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

const SEED_VAR: &str = "CHAT_FUZZ_SEED";
const REQUESTS_VAR: &str = "CHAT_FUZZ_REQUESTS";
const DEFAULT_REQUESTS: u64 = 10_000;
/// In flight at once: enough to keep both cores and several instances busy.
const CONCURRENCY: usize = 12;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The whole run; it takes a fraction of this on a 2-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(150);
/// Violations shown in full; the rest are counted.
const SHOWN_VIOLATIONS: usize = 15;
/// Host log text that means a trap, a panic or a request the host could not
/// hand to a component.
const LOG_ALARMS: [&str; 5] = [
    "panicked",
    "wasm trap",
    "request failed",
    "stack overflow",
    "unreachable",
];

#[derive(Default)]
struct Outcome {
    statuses: BTreeMap<u16, usize>,
    /// How many answers broke the contract, by how.
    violation_kinds: BTreeMap<&'static str, usize>,
    violations: Vec<String>,
    /// Identity values some `GET /api/history` answered 200 for.
    recorded_identities: HashSet<String>,
    /// Requests the runtime answered itself as it is known to (see
    /// `Runtime::refuses_non_utf8_header_values`).
    refused_by_runtime: usize,
}

impl Outcome {
    fn violation(&mut self, kind: &'static str, label: &str, detail: &str) {
        *self.violation_kinds.entry(kind).or_default() += 1;
        if self.violations.len() < SHOWN_VIOLATIONS {
            self.violations
                .push(format!("{label}\n  {kind}: {}", abbreviate(detail, 400)));
        }
    }

    fn violation_count(&self) -> usize {
        self.violation_kinds.values().sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_break_nothing_and_change_nothing() {
    let seed = seed();
    let count = requests();
    eprintln!("fuzz: seed {seed} ({SEED_VAR}={seed} replays this run), {count} requests");
    let target = Target::exclusive().await;
    let seeder = Seeder::connect(&target.db_url).await;
    let world = seed_world(&seeder, &target).await;
    let before = seeder.snapshot().await;

    let started = Instant::now();
    let outcome = tokio::time::timeout(RUN_DEADLINE, run(&target, &world, seed, count))
        .await
        .unwrap_or_else(|_| panic!("fuzz seed {seed}: not done within {RUN_DEADLINE:?}"));
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz: {count} requests in {:.1} s ({:.0}/s) under {}; statuses {:?}; \
         {} with a non-UTF-8 header value refused by the runtime before the app",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        Runtime::selected().name(),
        outcome.statuses,
        outcome.refused_by_runtime
    );

    // Every finding is gathered first, so one kind cannot hide another.
    let mut findings = Vec::new();
    if outcome.violation_count() > 0 {
        findings.push(format!(
            "{} of {count} requests broke the contract {:?}; the first:\n{}",
            outcome.violation_count(),
            outcome.violation_kinds,
            outcome.violations.join("\n---\n")
        ));
    }
    findings.extend(database_changes(
        &before,
        &seeder.snapshot().await,
        &outcome,
    ));
    match target.host_log() {
        Some(log) => findings.extend(log_alarms(&log)),
        None => eprintln!("fuzz: external app, so its log is not checked"),
    }
    assert!(
        findings.is_empty(),
        "fuzz seed {seed}:\n{}",
        findings.join("\n\n")
    );
}

/// Host log lines that tell of a trap or a panic.
fn log_alarms(log: &str) -> Option<String> {
    let alarms: Vec<&str> = log
        .lines()
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            LOG_ALARMS.iter().any(|alarm| line.contains(alarm))
        })
        .take(SHOWN_VIOLATIONS)
        .collect();
    (!alarms.is_empty()).then(|| format!("the host logged traps or panics:\n{}", alarms.join("\n")))
}

async fn run(target: &Target, world: &World, seed: u64, count: u64) -> Outcome {
    let api = ApiClient::with_timeout(target.api.base_url(), REQUEST_TIMEOUT);
    // Spin refuses these itself and may close the connection after its
    // answer, unread body and all: they go on connections of their own.
    let refused_by_runtime =
        ApiClient::one_connection_per_request(target.api.base_url(), REQUEST_TIMEOUT);
    let answers = futures_util::stream::iter(0..count)
        .map(|index| {
            let request = generate(world, seed, index);
            let runtime_refuses = Runtime::selected().refuses_non_utf8_header_values()
                && has_non_utf8_header_value(&request);
            let api = if runtime_refuses {
                refused_by_runtime.clone()
            } else {
                api.clone()
            };
            async move {
                let built = build(&api, &request);
                (index, request, runtime_refuses, api.exchange(built).await)
            }
        })
        .buffer_unordered(CONCURRENCY);
    let mut outcome = Outcome::default();
    futures_util::pin_mut!(answers);
    while let Some((index, request, runtime_refuses, answer)) = answers.next().await {
        let label = format!(
            "request #{index} (seed {seed}): {} {} with {} header(s){} and {} body bytes",
            request.method,
            abbreviate(&request.path_and_query, 120),
            request.headers.len(),
            if runtime_refuses {
                " (one not UTF-8)"
            } else {
                ""
            },
            request.body.as_ref().map_or(0, Vec::len),
        );
        match answer {
            // The runtime answered without reading the body and closed the
            // connection under the rest of it.
            Err(_) if runtime_refuses && request.body.is_some() => {
                outcome.refused_by_runtime += 1;
            }
            Err(failure) => outcome.violation("no answer", &label, &failure),
            Ok(exchange) => judge(&mut outcome, &label, &request, runtime_refuses, &exchange),
        }
    }
    outcome
}

fn build(api: &ApiClient, request: &FuzzRequest) -> reqwest::Request {
    let mut builder = api.request(request.method.clone(), &request.path_and_query);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    builder.build()
}

/// Checks one answer; `runtime_refuses` says the runtime answers this
/// request itself (see `Runtime::refuses_non_utf8_header_values`).
fn judge(
    outcome: &mut Outcome,
    label: &str,
    request: &FuzzRequest,
    runtime_refuses: bool,
    exchange: &Exchange,
) {
    *outcome.statuses.entry(exchange.status).or_default() += 1;
    let body = String::from_utf8_lossy(&exchange.body[..exchange.body.len().min(300)]);
    let status = exchange.status;
    if runtime_refuses {
        // The runtime's own answer: no component saw the request.
        if status == 500 && exchange.body.is_empty() {
            outcome.refused_by_runtime += 1;
        } else {
            outcome.violation(
                "not the runtime's refusal of a non-UTF-8 header",
                label,
                &format!("{status} {body}"),
            );
        }
    } else if status >= 500 {
        outcome.violation(
            "5xx with the database up",
            label,
            &format!("{status} {body}"),
        );
    } else if let Err(violation) = description().check(exchange) {
        outcome.violation(
            "not as described",
            label,
            &format!("{violation}; body {body}"),
        );
    } else if status >= 400 && exchange.method != "HEAD" && !is_error_object(&exchange.body) {
        outcome.violation("no error object", label, &format!("{status} {body}"));
    }
    if exchange.status == 200 && exchange.method == "GET" && exchange.path == "/api/history" {
        outcome
            .recorded_identities
            .extend(request.identity_values.iter().cloned());
    }
}

fn has_non_utf8_header_value(request: &FuzzRequest) -> bool {
    request
        .headers
        .iter()
        .any(|(_, value)| std::str::from_utf8(value).is_err())
}

/// Exactly `{"error": "<text>"}`.
fn is_error_object(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            object.len() == 1 && object.get("error").is_some_and(Value::is_string)
        }
        _ => false,
    }
}

/// What changed in the database that the requests had no right to change.
fn database_changes(before: &Snapshot, after: &Snapshot, outcome: &Outcome) -> Vec<String> {
    let mut changes = Vec::new();
    for (table, before, after) in [
        ("Chat", &before.chats, &after.chats),
        ("Message", &before.messages, &after.messages),
        ("Vote", &before.votes, &after.votes),
        ("Folder", &before.folders, &after.folders),
    ] {
        if before != after {
            changes.push(format!(
                "chat.\"{table}\" changed\n  gone: {:?}\n  new: {:?}",
                before.difference(after).collect::<Vec<_>>(),
                after.difference(before).collect::<Vec<_>>()
            ));
        }
    }
    let gone: Vec<&String> = before.users.difference(&after.users).collect();
    if !gone.is_empty() {
        changes.push(format!("user rows changed or vanished: {gone:?}"));
    }
    let unexplained: BTreeSet<&String> = after
        .users
        .difference(&before.users)
        .filter(|row| {
            let id = serde_json::from_str::<Value>(row).expect("a row as JSON")["id"].clone();
            !id.as_str()
                .is_some_and(|id| outcome.recorded_identities.contains(id))
        })
        .collect();
    if !unexplained.is_empty() {
        changes.push(format!(
            "users appeared that no successful GET /api/history named: {unexplained:?}"
        ));
    }
    changes
}

/// Two users, each with a folder: one with a public chat (archived) and a
/// private one (pinned, in their folder), one with one chat.
async fn seed_world(seeder: &Seeder, target: &Target) -> World {
    let run = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let owner = format!("fuzz-owner-{run}@contract.test");
    let stranger = format!("fuzz-stranger-{run}@contract.test");
    let owner_folder = seeder.folder(&owner, "Owner's folder").await;
    let stranger_folder = seeder.folder(&stranger, "Stranger's folder").await;
    let archived = Placement {
        archived: true,
        ..Placement::default()
    };
    let pinned_in_folder = Placement {
        pinned: true,
        folder: Some(owner_folder),
        ..Placement::default()
    };
    let public = seeder
        .placed_chat(&owner, Visibility::Public, archived)
        .await;
    let private = seeder
        .placed_chat(&owner, Visibility::Private, pinned_in_folder)
        .await;
    let stranger_chat = seeder.chat(&stranger, Visibility::Private).await;
    World {
        owner,
        stranger,
        owner_chats: [public, private],
        stranger_chat,
        owner_folder,
        stranger_folder,
        admin_token: target.admin_token_if_known().map(str::to_owned),
    }
}

/// The PRNG seed: [`SEED_VAR`] (decimal or 0x-hex), else a fresh one.
fn seed() -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{SEED_VAR}={text:?} is not a whole number"))
        }
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos() as u64,
    }
}

fn requests() -> u64 {
    std::env::var(REQUESTS_VAR).map_or(DEFAULT_REQUESTS, |text| {
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{REQUESTS_VAR}={text:?} is not a whole number"))
    })
}

fn abbreviate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}
