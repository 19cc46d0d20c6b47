//! A stand-in for MLflow's REST API (the part the feedback component
//! calls), served by the scripted endpoint at its own origin under
//! `/api/3.0/mlflow/`: it answers as the real server does
//! (`demo_rules::mlflow`, checked against a real `mlflow server` by
//! the feedback suite), knows only the traces a test logged, and fails as a
//! test tells it to (an error status, a proxy's HTML page, a hang, a dropped
//! connection, or the work done and the connection dropped before the
//! answer).

use demo_rules::mlflow::Route;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

pub use demo_rules::mlflow::PREFIX;

/// How the next calls fail, one failure per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// MLflow's JSON error with this status.
    Status(u16),
    /// An HTML page with this status, as a proxy in front of MLflow (or
    /// something else at the configured origin) answers.
    Page(u16),
    /// The answer never comes.
    Hang,
    /// The connection closes without an answer; nothing was done.
    Drop,
    /// The call is carried out, then the connection closes unanswered.
    DoThenDrop,
}

/// One call, as it arrived.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub declared_length: Option<usize>,
    pub body_bytes: usize,
}

#[derive(Default)]
struct State {
    /// Each logged trace's assessments, oldest first.
    by_trace: BTreeMap<String, Vec<Value>>,
    created: usize,
    /// One entry per coming call; `None`: that call is answered.
    failures: VecDeque<Option<Failure>>,
    /// While set, every call without a scripted failure fails like this.
    outage: Option<Failure>,
    calls: Vec<Call>,
}

/// What the stand-in answers: a status and a JSON body, or a failure to
/// answer at all.
pub enum Answer {
    Json(u16, Value),
    Page(u16, &'static str),
    Hang,
    Drop,
}

/// What a reverse proxy answers for an address behind it that is down or
/// unknown: not MLflow's JSON.
const PROXY_PAGE: &str =
    "<html><head><title>Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>\n";

/// Keeps assessments the way the demo agent's MLflow does
/// (`demo_rules::mlflow`, in memory here), and fails on demand.
#[derive(Default)]
pub struct MlflowStandIn {
    state: Mutex<State>,
}

impl MlflowStandIn {
    /// Makes the trace exist, as an agent's tracing logs it; until then,
    /// every call on it is `404 RESOURCE_DOES_NOT_EXIST`.
    pub fn log_trace(&self, trace_id: &str) {
        self.state
            .lock()
            .unwrap()
            .by_trace
            .entry(trace_id.to_owned())
            .or_insert_with(demo_rules::mlflow::logged_trace);
    }

    /// The next calls fail like this, in order (`None`: that call is
    /// answered).
    pub fn fail_next(&self, failures: &[Option<Failure>]) {
        self.state.lock().unwrap().failures.extend(failures);
    }

    /// Every call fails like `failure` until [`Self::end_outage`].
    pub fn begin_outage(&self, failure: Failure) {
        self.state.lock().unwrap().outage = Some(failure);
    }

    pub fn end_outage(&self) {
        self.state.lock().unwrap().outage = None;
    }

    /// Every assessment it holds.
    pub fn assessments(&self) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state.by_trace.values().flatten().cloned().collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn answer(&self, call: Call, body: &[u8]) -> Answer {
        let mut state = self.state.lock().unwrap();
        let route = Route::parse(&call.method, &call.path);
        state.calls.push(call);
        let failure = state.failures.pop_front().flatten().or(state.outage);
        match failure {
            Some(Failure::Status(status)) => {
                return Answer::Json(
                    status,
                    json!({"error_code": "SCRIPTED", "message": "a scripted failure"}),
                );
            }
            Some(Failure::Page(status)) => return Answer::Page(status, PROXY_PAGE),
            Some(Failure::Hang) => return Answer::Hang,
            Some(Failure::Drop) => return Answer::Drop,
            Some(Failure::DoThenDrop) | None => {}
        }
        let Some(route) = route else {
            return Answer::Page(404, demo_rules::mlflow::NOT_A_ROUTE);
        };
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let trace = route.trace_id().to_owned();
        let stored = state.by_trace.get(&trace).cloned();
        state.created += 1;
        let new_id = format!("a-{}", state.created);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let (status, answer, changed) = route.apply(&body, stored, new_id, now_ms);
        if let Some(assessments) = changed {
            state.by_trace.insert(trace, assessments);
        }
        if failure == Some(Failure::DoThenDrop) {
            return Answer::Drop;
        }
        Answer::Json(status, answer)
    }
}
