//! A stand-in for the part of MLflow's REST API that feedback delivery
//! calls (`chat_domain::feedback::assessment`), answering as the real server (3.x) does,
//! quirks included: the demo agent serves it so that with zero
//! configuration a rating reaches an "MLflow" too and can be read back, and
//! the test suites serve it in front of their own failures. Each trace's
//! assessments are kept as a JSON array under [`store_key`]; a trace exists
//! once it is logged ([`logged_trace`]).
//!
//! As the real server: a trace it does not hold is
//! `404 RESOURCE_DOES_NOT_EXIST` for a read, a create or an update; a trace
//! without assessments has no `assessments` key; a create omits a null
//! rationale; an update needs an `update_mask` string (400 without) and
//! applies the comma-separated paths it knows, exactly as written (others,
//! `" rationale"` with its space included, change nothing, still 200), a
//! masked field the body lacks being cleared and metadata merged; a delete
//! answers `200 {}` whether or not the assessment (or the trace) was there;
//! any other path is the web server's HTML 404 page.

use serde_json::{Value, json};

pub const PREFIX: &str = "/api/3.0/mlflow/";

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
        let position = |stored: &[Value], id: &str| {
            stored
                .iter()
                .position(|assessment| assessment["assessment_id"] == id)
        };
        match (self, stored) {
            (Self::Delete(_, id), Some(mut stored)) => match position(&stored, id) {
                Some(at) => {
                    stored.remove(at);
                    (200, json!({}), Some(stored))
                }
                None => (200, json!({}), None),
            },
            (Self::Delete(..), None) => (200, json!({}), None),
            (Self::Update(trace, _), None) => {
                not_found(format!("Trace with request_id '{trace}' not found"))
            }
            (Self::Trace(trace) | Self::Create(trace), None) => {
                not_found(format!("Trace with ID '{trace}' not found."))
            }
            (Self::Trace(trace), Some(stored)) => {
                let mut info = json!({
                    "trace_id": trace,
                    "trace_location": {"type": "MLFLOW_EXPERIMENT",
                        "mlflow_experiment": {"experiment_id": "0"}},
                    "request_time": timestamp(now_ms),
                    "state": "OK",
                    "trace_metadata": {},
                });
                if !stored.is_empty() {
                    info["assessments"] = json!(stored);
                }
                info["tags"] = json!({});
                (200, json!({"trace": {"trace_info": info}}), None)
            }
            (Self::Create(trace), Some(mut stored)) => {
                let Some(given) = body["assessment"].as_object() else {
                    return bad_request("Missing value for required parameter 'assessment'.");
                };
                let mut assessment = json!({
                    "assessment_id": new_id,
                    "assessment_name": given.get("assessment_name").cloned().unwrap_or(json!("")),
                    "trace_id": trace,
                    "source": given.get("source").cloned()
                        .unwrap_or(json!({"source_type": "SOURCE_TYPE_UNSPECIFIED"})),
                    "create_time": timestamp(now_ms),
                    "last_update_time": timestamp(now_ms),
                });
                for field in [
                    "feedback",
                    "expectation",
                    "rationale",
                    "metadata",
                    "overrides",
                ] {
                    if let Some(value) = given.get(field).filter(|value| !value.is_null()) {
                        assessment[field] = value.clone();
                    }
                }
                assessment["valid"] = json!(true);
                stored.push(assessment.clone());
                (200, json!({"assessment": assessment}), Some(stored))
            }
            (Self::Update(trace, id), Some(mut stored)) => {
                let mask = match &body["update_mask"] {
                    Value::Null => {
                        return bad_request("Missing value for required parameter 'update_mask'.");
                    }
                    Value::String(mask) => mask.as_str(),
                    // A mask in another form names no path it knows.
                    _ => "",
                };
                let Some(at) = position(&stored, id) else {
                    return not_found(format!(
                        "Assessment with ID '{id}' not found for trace '{trace}'"
                    ));
                };
                let given = &body["assessment"];
                for path in mask.split(',') {
                    update(&mut stored[at], path, given);
                }
                stored[at]["last_update_time"] = json!(timestamp(now_ms));
                let updated = stored[at].clone();
                (200, json!({"assessment": updated}), Some(stored))
            }
        }
    }
}

/// Applies one update-mask `path` as the real server does: a path it does
/// not know changes nothing; a known field the body lacks is cleared.
fn update(assessment: &mut Value, path: &str, given: &Value) {
    match path {
        "assessment_name" | "rationale" => {
            assessment[path] = json!(given[path].as_str().unwrap_or_default());
        }
        "feedback" | "expectation" => {
            assessment[path] = json!({"value": given[path]["value"]});
        }
        "metadata" => {
            let mut merged = assessment["metadata"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if let Some(added) = given["metadata"].as_object() {
                merged.extend(added.clone());
            }
            assessment["metadata"] = Value::Object(merged);
        }
        _ => {}
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
    chat_domain::database::timestamp::UtcDateTime::from_unix_millis(now_ms).to_string()
}

fn not_found(message: String) -> (u16, Value, Option<Vec<Value>>) {
    let error = json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": message,
        "sqlstate": "KAM00", "error_class": "RESOURCE_NOT_FOUND"});
    (404, error, None)
}

fn bad_request(message: &str) -> (u16, Value, Option<Vec<Value>>) {
    let message =
        format!("{message} See the API docs for more information about request parameters.");
    let error = json!({"error_code": "INVALID_PARAMETER_VALUE", "message": message,
        "sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"});
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
    fn a_trace_not_logged_is_a_404_mlflow_error_but_for_a_delete() {
        for route in [
            Route::Trace("tr-9".into()),
            Route::Create("tr-9".into()),
            Route::Update("tr-9".into(), "a".into()),
        ] {
            let body = json!({"assessment": {}, "update_mask": "rationale"});
            let (status, answer, changed) = route.apply(&body, None, "a-1".into(), NOW);
            assert_eq!((status, changed), (404, None), "{route:?}");
            assert_eq!(answer["error_code"], "RESOURCE_DOES_NOT_EXIST");
            assert_eq!(answer["error_class"], "RESOURCE_NOT_FOUND");
        }
        let delete = Route::Delete("tr-9".into(), "a".into());
        assert_eq!(
            delete.apply(&Value::Null, None, String::new(), NOW),
            (200, json!({}), None)
        );
    }

    #[test]
    fn a_create_keeps_what_was_given_and_omits_a_null_rationale() {
        let body = json!({"assessment": {"trace_id": "tr-other", "assessment_name": "user_feedback",
            "source": {"source_type": "HUMAN", "source_id": "a@example.com"},
            "feedback": {"value": true}, "rationale": null, "metadata": {"k": "v"}}});
        let (_, answer, _) =
            Route::Create("tr-1".into()).apply(&body, Some(logged_trace()), "a-1".into(), NOW);
        let assessment = &answer["assessment"];
        assert_eq!(assessment["trace_id"], "tr-1", "the path's trace wins");
        assert!(assessment.get("rationale").is_none(), "{assessment}");
        assert_eq!(assessment["valid"], true);
        assert_eq!(assessment["create_time"], "2023-11-14T22:13:20.000Z");
        let (status, answer, _) =
            Route::Create("tr-1".into()).apply(&json!({}), Some(logged_trace()), "a".into(), NOW);
        assert_eq!(
            (status, &answer["error_code"]),
            (400, &json!("INVALID_PARAMETER_VALUE"))
        );
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
        let stored = vec![json!({"assessment_id": "a-1", "feedback": {"value": true},
            "rationale": "Yes", "metadata": {"m": "1"}})];
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
        // A path with a space is another path; a masked field the body
        // lacks is cleared; metadata is merged.
        let (_, answer, _) = update.apply(
            &json!({"assessment": {"feedback": {"value": false}, "metadata": {"n": "2"}},
                "update_mask": "feedback, rationale,metadata"}),
            Some(stored.clone()),
            String::new(),
            NOW,
        );
        assert_eq!(answer["assessment"]["feedback"]["value"], false);
        assert_eq!(
            answer["assessment"]["rationale"], "Yes",
            "\" rationale\" is no path"
        );
        assert_eq!(
            answer["assessment"]["metadata"],
            json!({"m": "1", "n": "2"})
        );
        let (_, answer, _) = update.apply(
            &json!({"assessment": {}, "update_mask": "rationale,feedback"}),
            Some(stored.clone()),
            String::new(),
            NOW,
        );
        assert_eq!(answer["assessment"]["rationale"], "");
        assert_eq!(answer["assessment"]["feedback"], json!({"value": null}));
        let (status, _, _) = Route::Update("tr-1".into(), "a-9".into()).apply(
            &json!({"update_mask": "feedback"}),
            Some(stored),
            String::new(),
            NOW,
        );
        assert_eq!(status, 404);
    }
}
