//! A stand-in for the part of MLflow's REST API that feedback delivery
//! calls (`crate::assessment`), answering as the real server (3.x) does,
//! quirks included: the demo agent serves it so that with zero
//! configuration a rating reaches an "MLflow" too and can be read back, and
//! the test suites serve it in front of their own failures. Each trace's
//! assessments are kept as a JSON array under [`store_key`]; a trace exists
//! once it is logged ([`logged_trace`]).
//!
//! As the real server: a trace it does not hold is
//! `404 RESOURCE_DOES_NOT_EXIST` for every call on it; a trace without
//! assessments has no `assessments` key; an update needs an `update_mask`
//! (400 without) and applies only the paths it knows (others change
//! nothing, still 200); a delete answers 200 whether or not the assessment
//! was there; any other path is the web server's HTML 404 page.

use serde_json::{Value, json};

pub const PREFIX: &str = "/api/3.0/mlflow/";

/// The fields an update mask may name, as the real server applies them.
const UPDATABLE: [&str; 5] = [
    "assessment_name",
    "feedback",
    "expectation",
    "rationale",
    "metadata",
];

/// A call the stand-in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET traces/{trace}`: the trace's info with its assessments.
    Trace(String),
    /// `POST traces/{trace}/assessments`
    Create(String),
    /// `PATCH traces/{trace}/assessments/{id}`
    Update(String, String),
    /// `DELETE traces/{trace}/assessments/{id}`
    Delete(String, String),
}

impl Route {
    /// The call `method` and `path` make; `None`: not one it answers (the
    /// caller answers [`not_a_route`]).
    pub fn parse(method: &str, path: &str) -> Option<Self> {
        let rest = path.strip_prefix(PREFIX)?;
        let segments: Vec<&str> = rest.split('/').collect();
        let owned = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        match (method, segments.as_slice()) {
            ("GET", ["traces", trace]) => owned(trace).map(Self::Trace),
            ("POST", ["traces", trace, "assessments"]) => owned(trace).map(Self::Create),
            ("PATCH", ["traces", trace, "assessments", id]) => {
                Some(Self::Update(owned(trace)?, owned(id)?))
            }
            ("DELETE", ["traces", trace, "assessments", id]) => {
                Some(Self::Delete(owned(trace)?, owned(id)?))
            }
            _ => None,
        }
    }

    pub fn trace_id(&self) -> &str {
        match self {
            Self::Trace(trace)
            | Self::Create(trace)
            | Self::Update(trace, _)
            | Self::Delete(trace, _) => trace,
        }
    }

    /// Carries the call out on the trace's `stored` assessments (`None`: no
    /// such trace): the answer's status and JSON, and the assessments to
    /// store when they changed. `new_id` names a created assessment, `now_ms`
    /// stamps it.
    pub fn apply(
        &self,
        body: &Value,
        stored: Option<Vec<Value>>,
        new_id: String,
        now_ms: u64,
    ) -> (u16, Value, Option<Vec<Value>>) {
        let Some(mut stored) = stored else {
            return no_such_trace(self.trace_id());
        };
        let position = |stored: &[Value], id: &str| {
            stored
                .iter()
                .position(|assessment| assessment["assessment_id"] == id)
        };
        match self {
            Self::Trace(trace) => {
                let mut info = json!({"trace_id": trace, "state": "OK"});
                if !stored.is_empty() {
                    info["assessments"] = json!(stored);
                }
                (200, json!({"trace": {"trace_info": info}}), None)
            }
            Self::Create(trace) => {
                let mut assessment = body["assessment"].clone();
                if !assessment.is_object() {
                    return bad_request("Missing value for required parameter 'assessment'.");
                }
                assessment["assessment_id"] = json!(new_id);
                assessment["trace_id"] = json!(trace);
                assessment["create_time"] = json!(timestamp(now_ms));
                assessment["last_update_time"] = json!(timestamp(now_ms));
                assessment["valid"] = json!(true);
                stored.push(assessment.clone());
                (200, json!({"assessment": assessment}), Some(stored))
            }
            Self::Update(_, id) => {
                let Some(mask) = body["update_mask"].as_str() else {
                    return bad_request("Missing value for required parameter 'update_mask'.");
                };
                let Some(at) = position(&stored, id) else {
                    return no_such_assessment(id);
                };
                for field in mask.split(',').map(str::trim) {
                    if UPDATABLE.contains(&field) {
                        stored[at][field] = body["assessment"][field].clone();
                    }
                }
                stored[at]["last_update_time"] = json!(timestamp(now_ms));
                let updated = stored[at].clone();
                (200, json!({"assessment": updated}), Some(stored))
            }
            Self::Delete(_, id) => match position(&stored, id) {
                Some(at) => {
                    stored.remove(at);
                    (200, json!({}), Some(stored))
                }
                None => (200, json!({}), None),
            },
        }
    }
}

/// Where a trace's assessments are kept.
pub fn store_key(trace_id: &str) -> String {
    format!("demo-mlflow/{trace_id}")
}

/// What [`store_key`] holds for a trace just logged: no assessments yet.
pub fn logged_trace() -> Vec<Value> {
    Vec::new()
}

/// The real server's answer to a path it has no route for: its web
/// server's HTML page, not MLflow's JSON.
pub const NOT_A_ROUTE: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n";

/// MLflow's timestamps: RFC 3339 in UTC with milliseconds.
fn timestamp(now_ms: u64) -> String {
    crate::timestamp::UtcDateTime::from_unix_millis(now_ms).to_string()
}

fn no_such_trace(trace_id: &str) -> (u16, Value, Option<Vec<Value>>) {
    let message = format!("Trace with ID {trace_id} not found.");
    let error = json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message});
    (404, error, None)
}

fn no_such_assessment(id: &str) -> (u16, Value, Option<Vec<Value>>) {
    let message = format!("Assessment with ID '{id}' not found");
    let error = json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message});
    (404, error, None)
}

fn bad_request(message: &str) -> (u16, Value, Option<Vec<Value>>) {
    let error = json!({"error_code": "INVALID_PARAMETER_VALUE", "message": message});
    (400, error, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn routes_are_the_calls_delivery_makes() {
        assert_eq!(
            Route::parse("GET", "/api/3.0/mlflow/traces/tr-1"),
            Some(Route::Trace("tr-1".into()))
        );
        assert_eq!(
            Route::parse("PATCH", "/api/3.0/mlflow/traces/tr-1/assessments/a-1"),
            Some(Route::Update("tr-1".into(), "a-1".into()))
        );
        for (method, path) in [
            ("GET", "/api/3.0/mlflow/traces/tr-1/info"),
            ("GET", "/api/3.0/mlflow/traces/tr-1/assessments"),
            ("POST", "/api/3.0/mlflow/traces//assessments"),
            ("DELETE", "/api/3.0/mlflow/traces/tr-1/assessments/"),
            ("POST", "/serving-endpoints/demo-agent/invocations"),
        ] {
            assert_eq!(Route::parse(method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn every_call_on_a_trace_not_logged_is_a_404_mlflow_error() {
        for route in [
            Route::Trace("tr-9".into()),
            Route::Create("tr-9".into()),
            Route::Update("tr-9".into(), "a".into()),
            Route::Delete("tr-9".into(), "a".into()),
        ] {
            let (status, answer, changed) = route.apply(&json!({}), None, "a-1".into(), NOW);
            assert_eq!((status, changed), (404, None), "{route:?}");
            assert_eq!(answer["error_code"], "RESOURCE_DOES_NOT_EXIST");
        }
    }

    #[test]
    fn an_assessment_is_created_changed_read_and_deleted() {
        let create = Route::Create("tr-1".into());
        let body = json!({"assessment": {"assessment_name": "user_feedback", "feedback": {"value": true}}});
        let (status, answer, stored) = create.apply(&body, Some(logged_trace()), "a-1".into(), NOW);
        assert_eq!(status, 200);
        assert_eq!(answer["assessment"]["assessment_id"], "a-1");
        assert_eq!(answer["assessment"]["trace_id"], "tr-1");
        let stored = stored.unwrap();

        let update = Route::Update("tr-1".into(), "a-1".into());
        let change = json!({"assessment": {"feedback": {"value": false}, "rationale": "No"}, "update_mask": "feedback,rationale"});
        let (status, answer, stored) = update.apply(&change, Some(stored), String::new(), NOW);
        assert_eq!(status, 200);
        assert_eq!(answer["assessment"]["feedback"]["value"], false);
        let stored = stored.unwrap();
        assert_eq!(stored[0]["rationale"], "No");

        let (status, trace, unchanged) = Route::Trace("tr-1".into()).apply(
            &Value::Null,
            Some(stored.clone()),
            String::new(),
            NOW,
        );
        assert_eq!((status, unchanged), (200, None));
        assert_eq!(trace["trace"]["trace_info"]["assessments"], json!(stored));

        let delete = Route::Delete("tr-1".into(), "a-1".into());
        let (status, _, stored) = delete.apply(&Value::Null, Some(stored), String::new(), NOW);
        assert_eq!((status, stored.clone()), (200, Some(Vec::new())));
        // Deleted again: still 200. Read: no `assessments` key at all.
        let (status, _, _) = delete.apply(&Value::Null, stored.clone(), String::new(), NOW);
        assert_eq!(status, 200);
        let (_, trace, _) =
            Route::Trace("tr-1".into()).apply(&Value::Null, stored, String::new(), NOW);
        assert!(
            trace["trace"]["trace_info"].get("assessments").is_none(),
            "{trace}"
        );
        assert_eq!(store_key("tr-1"), "demo-mlflow/tr-1");
    }

    #[test]
    fn an_update_needs_a_mask_and_applies_only_the_paths_it_knows() {
        let stored = vec![json!({"assessment_id": "a-1", "feedback": {"value": true}})];
        let update = Route::Update("tr-1".into(), "a-1".into());
        let (status, answer, _) = update.apply(
            &json!({"assessment": {"feedback": {"value": false}}}),
            Some(stored.clone()),
            String::new(),
            NOW,
        );
        assert_eq!(
            (status, answer["error_code"].as_str()),
            (400, Some("INVALID_PARAMETER_VALUE"))
        );
        let (status, answer, _) = update.apply(
            &json!({"assessment": {"feedback": {"value": false}}, "update_mask": "feedback.value"}),
            Some(stored.clone()),
            String::new(),
            NOW,
        );
        assert_eq!(status, 200);
        assert_eq!(answer["assessment"]["feedback"]["value"], true, "unchanged");
        let (status, _, _) = Route::Update("tr-1".into(), "a-9".into()).apply(
            &json!({"update_mask": "feedback"}),
            Some(stored),
            String::new(),
            NOW,
        );
        assert_eq!(status, 404);
    }
}
