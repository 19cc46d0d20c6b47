//! A stand-in for MLflow's assessments API (the part the feedback component
//! calls), served by the scripted endpoint at its own origin under
//! `/api/3.0/mlflow/`: it keeps assessments as MLflow does, and fails as a
//! test tells it to (an error status, a hang, a dropped connection, or the
//! work done and the connection dropped before the answer).

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

pub const PREFIX: &str = "/api/3.0/mlflow/";

/// How the next calls fail, one failure per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Status(u16),
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
    /// By assessment id.
    assessments: BTreeMap<String, Value>,
    created: usize,
    /// One entry per coming call; `None`: that call is answered.
    failures: VecDeque<Option<Failure>>,
    calls: Vec<Call>,
}

/// What the stand-in answers: a status and a JSON body, or a failure to
/// answer at all.
pub enum Answer {
    Json(u16, Value),
    Hang,
    Drop,
}

#[derive(Default)]
pub struct MlflowStandIn {
    state: Mutex<State>,
}

impl MlflowStandIn {
    /// The next calls fail like this, in order (`None`: that call is
    /// answered).
    pub fn fail_next(&self, failures: &[Option<Failure>]) {
        self.state.lock().unwrap().failures.extend(failures);
    }

    /// Every assessment it holds, oldest first.
    pub fn assessments(&self) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        let mut all: Vec<Value> = state.assessments.values().cloned().collect();
        all.sort_by_key(|assessment| assessment["create_order"].as_u64());
        all
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn answer(&self, call: Call, body: &[u8]) -> Answer {
        let mut state = self.state.lock().unwrap();
        let (method, path) = (call.method.clone(), call.path.clone());
        state.calls.push(call);
        let failure = state.failures.pop_front().flatten();
        match failure {
            Some(Failure::Status(status)) => {
                return Answer::Json(
                    status,
                    json!({"error_code": "SCRIPTED", "message": "a scripted failure"}),
                );
            }
            Some(Failure::Hang) => return Answer::Hang,
            Some(Failure::Drop) => return Answer::Drop,
            Some(Failure::DoThenDrop) | None => {}
        }
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let segments: Vec<&str> = path.trim_start_matches(PREFIX).split('/').collect();
        let answer = match (method.as_str(), segments.as_slice()) {
            ("GET", ["traces", trace, "info"]) => {
                let assessments: Vec<Value> = state
                    .assessments
                    .values()
                    .filter(|assessment| assessment["trace_id"] == *trace)
                    .cloned()
                    .collect();
                Answer::Json(
                    200,
                    json!({"trace": {"trace_info": {"trace_id": trace, "assessments": assessments}}}),
                )
            }
            ("POST", ["traces", trace, "assessments"]) => {
                state.created += 1;
                let id = format!("a-{}", state.created);
                let mut assessment = body["assessment"].clone();
                assessment["assessment_id"] = json!(id);
                assessment["trace_id"] = json!(trace);
                assessment["create_order"] = json!(state.created);
                state.assessments.insert(id, assessment.clone());
                Answer::Json(200, json!({"assessment": assessment}))
            }
            ("PATCH", ["traces", _, "assessments", id]) => match state.assessments.get_mut(*id) {
                Some(assessment) => {
                    let mask = body["update_mask"].as_str().unwrap_or_default();
                    for field in mask.split(',').filter(|field| !field.is_empty()) {
                        assessment[field] = body["assessment"][field].clone();
                    }
                    Answer::Json(200, json!({"assessment": assessment.clone()}))
                }
                None => not_found(),
            },
            ("DELETE", ["traces", _, "assessments", id]) => match state.assessments.remove(*id) {
                Some(_) => Answer::Json(200, json!({})),
                None => not_found(),
            },
            _ => not_found(),
        };
        if failure == Some(Failure::DoThenDrop) {
            return Answer::Drop;
        }
        answer
    }
}

fn not_found() -> Answer {
    Answer::Json(
        404,
        json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"}),
    )
}
