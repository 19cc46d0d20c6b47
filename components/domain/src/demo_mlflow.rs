//! The demo agent's stand-in for a workspace's MLflow assessments API (the
//! calls `assessment` makes), so that with zero configuration a rating
//! reaches an "MLflow" too and can be read back: each trace's assessments
//! are kept as a JSON array under [`store_key`] in the key-value store.

use serde_json::{Value, json};

pub const PREFIX: &str = "/api/3.0/mlflow/";

/// A call the stand-in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET traces/{trace}/info`: the trace with its assessments.
    Info(String),
    /// `POST traces/{trace}/assessments`
    Create(String),
    /// `PATCH traces/{trace}/assessments/{id}`
    Update(String, String),
    /// `DELETE traces/{trace}/assessments/{id}`
    Delete(String, String),
}

impl Route {
    /// The call `method` and `path` make; `None`: not one it answers.
    pub fn parse(method: &str, path: &str) -> Option<Self> {
        let rest = path.strip_prefix(PREFIX)?;
        let segments: Vec<&str> = rest.split('/').collect();
        let owned = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        match (method, segments.as_slice()) {
            ("GET", ["traces", trace, "info"]) => owned(trace).map(Self::Info),
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
            Self::Info(trace)
            | Self::Create(trace)
            | Self::Update(trace, _)
            | Self::Delete(trace, _) => trace,
        }
    }

    /// Carries the call out on the trace's `stored` assessments: the
    /// answer's status and JSON, and the assessments to store when they
    /// changed. `new_id` names a created assessment.
    pub fn apply(
        &self,
        body: &Value,
        mut stored: Vec<Value>,
        new_id: String,
    ) -> (u16, Value, Option<Vec<Value>>) {
        let position = |stored: &[Value], id: &str| {
            stored
                .iter()
                .position(|assessment| assessment["assessment_id"] == id)
        };
        match self {
            Self::Info(trace) => (
                200,
                json!({"trace": {"trace_info": {"trace_id": trace, "assessments": stored}}}),
                None,
            ),
            Self::Create(trace) => {
                let mut assessment = body["assessment"].clone();
                if !assessment.is_object() {
                    return bad_request("the body has no assessment");
                }
                assessment["assessment_id"] = json!(new_id);
                assessment["trace_id"] = json!(trace);
                stored.push(assessment.clone());
                (200, json!({"assessment": assessment}), Some(stored))
            }
            Self::Update(_, id) => {
                let Some(at) = position(&stored, id) else {
                    return not_found();
                };
                let mask = body["update_mask"].as_str().unwrap_or_default();
                for field in mask.split(',').filter(|field| !field.is_empty()) {
                    stored[at][field] = body["assessment"][field].clone();
                }
                let updated = stored[at].clone();
                (200, json!({"assessment": updated}), Some(stored))
            }
            Self::Delete(_, id) => {
                let Some(at) = position(&stored, id) else {
                    return not_found();
                };
                stored.remove(at);
                (200, json!({}), Some(stored))
            }
        }
    }
}

/// Where a trace's assessments are kept.
pub fn store_key(trace_id: &str) -> String {
    format!("demo-mlflow/{trace_id}")
}

fn not_found() -> (u16, Value, Option<Vec<Value>>) {
    let error = json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No such assessment."});
    (404, error, None)
}

fn bad_request(message: &str) -> (u16, Value, Option<Vec<Value>>) {
    let error = json!({"error_code": "INVALID_PARAMETER_VALUE", "message": message});
    (400, error, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_assessment_calls_only() {
        assert_eq!(
            Route::parse("GET", "/api/3.0/mlflow/traces/tr-1/info"),
            Some(Route::Info("tr-1".into()))
        );
        assert_eq!(
            Route::parse("PATCH", "/api/3.0/mlflow/traces/tr-1/assessments/a-1"),
            Some(Route::Update("tr-1".into(), "a-1".into()))
        );
        for (method, path) in [
            ("GET", "/api/3.0/mlflow/traces/tr-1/assessments"),
            ("POST", "/api/3.0/mlflow/traces//assessments"),
            ("DELETE", "/api/3.0/mlflow/traces/tr-1/assessments/"),
            ("POST", "/serving-endpoints/demo-agent/invocations"),
        ] {
            assert_eq!(Route::parse(method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn an_assessment_is_created_changed_listed_and_deleted() {
        let create = Route::Create("tr-1".into());
        let body = json!({"assessment": {"assessment_name": "user_feedback", "feedback": {"value": true}}});
        let (status, answer, stored) = create.apply(&body, Vec::new(), "a-1".into());
        assert_eq!(status, 200);
        assert_eq!(answer["assessment"]["assessment_id"], "a-1");
        let stored = stored.unwrap();

        let update = Route::Update("tr-1".into(), "a-1".into());
        let change = json!({"assessment": {"feedback": {"value": false}, "rationale": "No"}, "update_mask": "feedback,rationale"});
        let (status, _, stored) = update.apply(&change, stored, String::new());
        assert_eq!(status, 200);
        let stored = stored.unwrap();
        assert_eq!(stored[0]["feedback"]["value"], false);
        assert_eq!(stored[0]["rationale"], "No");

        let (status, info, unchanged) =
            Route::Info("tr-1".into()).apply(&Value::Null, stored.clone(), String::new());
        assert_eq!((status, unchanged), (200, None));
        assert_eq!(info["trace"]["trace_info"]["assessments"], json!(stored));

        let delete = Route::Delete("tr-1".into(), "a-1".into());
        let (status, _, stored) = delete.apply(&Value::Null, stored, String::new());
        assert_eq!((status, stored), (200, Some(Vec::new())));
        let (status, _, _) = delete.apply(&Value::Null, Vec::new(), String::new());
        assert_eq!(status, 404);
        assert_eq!(store_key("tr-1"), "demo-mlflow/tr-1");
    }
}
