//! Ratings reach MLflow as a feedback assessment on the reply's trace, and
//! are never lost on the way: each rating (or withdrawal) of a traced reply
//! is written, in the same statement as the vote, to an outbox row in the
//! database that holds the state MLflow should have. Due rows are delivered
//! by background work (`crate::background`): one claimed at a time, leased
//! so that no two deliveries of a row run at once, and the outcome recorded:
//! done, tried again later, or refused for good.
//!
//! The calls are MLflow's REST API as the real server serves it (3.x):
//! read the trace with its assessments (`GET /api/3.0/mlflow/traces/{id}`),
//! create (`POST .../assessments`, the body wrapped in `"assessment"`),
//! update (`PATCH .../assessments/{aid}` with an `update_mask`) and delete.
//! Delivery is idempotent: a row that has no assessment id yet first looks
//! for the assessment this vote made (by the message id in its metadata), so
//! a create whose answer was lost never yields a second assessment.
//!
//! What an answer means is read from its status *and* its body, because
//! the real server's statuses alone mislead: MLflow logs traces
//! asynchronously, so a trace is `404 RESOURCE_DOES_NOT_EXIST` for a few
//! seconds after its id was streamed ("not yet", while the reply is young);
//! a 404 that is not MLflow's JSON comes from something else at that address
//! (a proxy, a wrong origin) and is a misconfiguration, never a verdict; a
//! 401 or 403 says the credentials are wrong, not the rating; an update
//! answers 200 even when its mask named nothing it applies, so the answer's
//! values are checked; and a delete answers 200 whether or not the
//! assessment was there.

use crate::database::sql::{Row, SqlParam, Statement};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The assessment's name, as the seed's template names it.
pub const ASSESSMENT_NAME: &str = "user_feedback";
/// The metadata key that ties an assessment to the rated message.
pub const MESSAGE_ID_METADATA: &str = "chat_history.message_id";
/// MLflow's error code for a trace or assessment it does not hold.
const DOES_NOT_EXIST: &str = "RESOURCE_DOES_NOT_EXIST";
/// How long after a reply its trace may still be on its way to MLflow,
/// when `mlflow_trace_wait_seconds` is not set.
pub const DEFAULT_TRACE_WAIT: Duration = Duration::from_secs(600);
const MAX_TRACE_WAIT_SECONDS: u64 = 7 * 24 * 3600;

/// MLflow is down, slow or busy: tried again after 5 s, doubling, at most
/// this long, so ratings arrive within a minute of an outage's end (and a
/// delivery that succeeds makes every row waiting on an outage due at once).
const LONGEST_OUTAGE_RETRY: Duration = Duration::from_secs(30);
/// Wrong credentials or a wrong address: nothing changes until an operator
/// (or a token's rotation) does, so these wait longer.
const LONGEST_MISCONFIGURATION_RETRY: Duration = Duration::from_secs(600);
/// A trace not logged yet usually lands within seconds.
const FIRST_NOT_YET_RETRY: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Added to a delivery's longest run for its lease.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Claims the next due row: pending, due, not leased to another delivery,
/// and (when `$1` is set) of that user only; leased for `$2` seconds.
/// Selects, in order: "messageId", "traceId", "userEmail", "isUpvoted",
/// comment, "assessmentId", revision, attempts, and the rated reply's age
/// in seconds by the database's clock.
const CLAIM_DUE: &str = r#"UPDATE chat."FeedbackOutbox"
SET "leasedUntil" = CURRENT_TIMESTAMP + make_interval(secs => $2::bigint)
WHERE "messageId" IN (
  SELECT "messageId" FROM chat."FeedbackOutbox"
  WHERE pending AND "nextAttemptAt" <= CURRENT_TIMESTAMP
    AND ("leasedUntil" IS NULL OR "leasedUntil" <= CURRENT_TIMESTAMP)
    AND ($1::text IS NULL OR "userEmail" = $1::text)
  ORDER BY "nextAttemptAt"
  LIMIT 1
  FOR UPDATE SKIP LOCKED)
RETURNING "messageId", "traceId", "userEmail", "isUpvoted", comment, "assessmentId", revision,
  attempts::bigint,
  (SELECT floor(EXTRACT(EPOCH FROM LOCALTIMESTAMP - reply."createdAt"))::bigint
   FROM chat."Message" reply WHERE reply.id = "FeedbackOutbox"."messageId") AS reply_age_seconds"#;

// Each record releases the lease. A vote made while the delivery ran has a
// newer revision: its state is still to be delivered, due at once.

/// MLflow has the state of revision $3 (the assessment's id: $2).
const RECORD_DELIVERED: &str = r#"UPDATE chat."FeedbackOutbox"
SET "assessmentId" = $2, pending = (revision <> $3), attempts = 0, "lastError" = NULL,
    "leasedUntil" = NULL
WHERE "messageId" = $1"#;

/// Revision $4 is tried again after $3 seconds. An assessment id learned on
/// the way ($5) is kept.
const RECORD_RETRY: &str = r#"UPDATE chat."FeedbackOutbox"
SET "leasedUntil" = NULL, "assessmentId" = COALESCE($5, "assessmentId"),
    attempts = CASE WHEN revision = $4 THEN attempts + 1 ELSE attempts END,
    "lastError" = CASE WHEN revision = $4 THEN $2 ELSE "lastError" END,
    "nextAttemptAt" = CASE WHEN revision = $4
      THEN CURRENT_TIMESTAMP + make_interval(secs => $3::bigint) ELSE "nextAttemptAt" END
WHERE "messageId" = $1"#;

/// MLflow refused revision $3 for good: recorded, not retried.
const RECORD_REFUSED: &str = r#"UPDATE chat."FeedbackOutbox"
SET "leasedUntil" = NULL,
    pending = CASE WHEN revision = $3 THEN false ELSE pending END,
    "lastError" = CASE WHEN revision = $3 THEN $2 ELSE "lastError" END,
    "failedAt" = CASE WHEN revision = $3 THEN CURRENT_TIMESTAMP ELSE "failedAt" END
WHERE "messageId" = $1"#;

/// MLflow answered again after failing: every row waiting out an outage's
/// backoff is due now rather than up to [`LONGEST_OUTAGE_RETRY`] later.
const OUTAGE_OVER: &str = r#"UPDATE chat."FeedbackOutbox"
SET "nextAttemptAt" = CURRENT_TIMESTAMP
WHERE pending AND attempts > 0 AND "nextAttemptAt" > CURRENT_TIMESTAMP"#;

/// One outbox row: what MLflow should hold for one rated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: Uuid,
    pub trace_id: String,
    pub user_email: String,
    /// `None`: the rating was withdrawn, so the assessment goes.
    pub is_upvoted: Option<bool>,
    pub comment: Option<String>,
    /// MLflow's id for the assessment, once known.
    pub assessment_id: Option<String>,
    /// Bumped by every vote; a delivery records against the one it read.
    pub revision: i64,
    /// Failed deliveries of this revision so far.
    pub attempts: u32,
    /// How long ago the rated reply was written (its trace was made then).
    pub reply_age: Duration,
}

impl Delivery {
    pub fn from_row<R: Row>(row: &R) -> Result<Self, R::Error> {
        Ok(Self {
            message_id: row.uuid(0)?,
            trace_id: row.text(1)?,
            user_email: row.text(2)?,
            is_upvoted: row.optional_boolean(3)?,
            comment: row.optional_text(4)?,
            assessment_id: row.optional_text(5)?,
            revision: row.int64(6)?,
            attempts: u32::try_from(row.int64(7)?).unwrap_or(u32::MAX),
            reply_age: Duration::from_secs(u64::try_from(row.int64(8)?).unwrap_or(0)),
        })
    }

    /// The first call to make.
    pub fn first_call(&self) -> Call {
        match (&self.assessment_id, self.is_upvoted) {
            (Some(id), Some(_)) => Call::Update(id.clone()),
            (Some(id), None) => Call::Delete(id.clone()),
            (None, _) => Call::Find,
        }
    }

    /// The call after [`Call::Find`] found `existing` (or nothing); `None`:
    /// nothing left to do (a withdrawn rating that never reached MLflow).
    pub fn after_find(&self, existing: Option<String>) -> Option<Call> {
        match (existing, self.is_upvoted) {
            (Some(id), Some(_)) => Some(Call::Update(id)),
            (Some(id), None) => Some(Call::Delete(id)),
            (None, Some(_)) => Some(Call::Create),
            (None, None) => None,
        }
    }

    fn traces_path(&self) -> String {
        format!("/api/3.0/mlflow/traces/{}", encode_segment(&self.trace_id))
    }

    /// What to do after MLflow answered `call` with `status` and `answer`
    /// (its JSON; `None` when the body was not JSON). `trace_wait` is how
    /// long a reply's trace may take to appear (`mlflow_trace_wait_seconds`).
    pub fn after_answer(
        &self,
        call: &Call,
        status: u16,
        answer: Option<&Value>,
        trace_wait: Duration,
    ) -> Next {
        let Some(answer) = answer else {
            return match status {
                200..=299 if matches!(call, Call::Delete(_)) => Next::Delivered(None),
                408 | 429 | 500..=599 => Next::Retry(Problem::outage(status)),
                _ => Next::Retry(Problem::Misconfigured(format!(
                    "{} answered {status} with a body that is not MLflow's JSON: is \
                     mlflow_origin (or serving_endpoint_origin) MLflow's address?",
                    call.describe()
                ))),
            };
        };
        match status {
            200..=299 => self.after_success(call, answer),
            404 if answer["error_code"] == DOES_NOT_EXIST => match call {
                // The real server answers a missing assessment's delete with
                // 200; a 404 means the same: it is not there.
                Call::Delete(_) => Next::Delivered(None),
                // The assessment was deleted in MLflow: look again.
                Call::Update(_) => Next::Call(Call::Find),
                Call::Find | Call::Create if self.reply_age < trace_wait => {
                    Next::Retry(Problem::NotYet)
                }
                Call::Find | Call::Create => Next::Refused(format!(
                    "MLflow has no trace {} {} s after the reply (mlflow_trace_wait_seconds is {})",
                    self.trace_id,
                    self.reply_age.as_secs(),
                    trace_wait.as_secs()
                )),
            },
            401 | 403 => Next::Retry(Problem::Credentials(format!(
                "{} answered {status}: the credentials were refused ({})",
                call.describe(),
                error_text(answer)
            ))),
            408 | 429 | 500..=599 => Next::Retry(Problem::outage(status)),
            _ => Next::Refused(format!(
                "{} answered {status}: {}",
                call.describe(),
                error_text(answer)
            )),
        }
    }

    fn after_success(&self, call: &Call, answer: &Value) -> Next {
        match call {
            Call::Find => match self.after_find(self.find_in(answer)) {
                Some(next) => Next::Call(next),
                None => Next::Delivered(None),
            },
            Call::Create => match created_id(answer) {
                Some(id) => Next::Delivered(Some(id)),
                None => Next::Retry(Problem::Misconfigured(format!(
                    "{} answered without the assessment's id: {answer}",
                    call.describe()
                ))),
            },
            Call::Update(id) if self.holds_this_vote(&answer["assessment"]) => {
                Next::Delivered(Some(id.clone()))
            }
            // A 200 whose assessment does not hold what was sent: MLflow
            // applied none of the mask (an unknown path changes nothing).
            Call::Update(_) => Next::Refused(format!(
                "{} answered 200 but did not apply the change: {answer}",
                call.describe()
            )),
            Call::Delete(_) => Next::Delivered(None),
        }
    }

    /// Whether an assessment MLflow returned holds this vote's value and
    /// comment.
    fn holds_this_vote(&self, assessment: &Value) -> bool {
        let rationale = assessment["rationale"].as_str().unwrap_or_default();
        assessment["feedback"]["value"] == json!(self.is_upvoted)
            && rationale == self.comment.as_deref().unwrap_or_default()
    }

    /// The method, the path (below the workspace origin) and the JSON body.
    pub fn request(&self, call: &Call) -> (&'static str, String, Option<Value>) {
        let traces = self.traces_path();
        match call {
            Call::Find => ("GET", traces, None),
            Call::Create => (
                "POST",
                format!("{traces}/assessments"),
                Some(json!({"assessment": {
                    "trace_id": self.trace_id,
                    "assessment_name": ASSESSMENT_NAME,
                    "source": {"source_type": "HUMAN", "source_id": self.user_email},
                    "feedback": {"value": self.is_upvoted},
                    "rationale": self.comment,
                    "metadata": {MESSAGE_ID_METADATA: self.message_id.to_string()},
                }})),
            ),
            Call::Update(id) => (
                "PATCH",
                format!("{traces}/assessments/{}", encode_segment(id)),
                Some(json!({
                    "assessment": {
                        "feedback": {"value": self.is_upvoted},
                        "rationale": self.comment.as_deref().unwrap_or_default(),
                    },
                    "update_mask": "feedback,rationale",
                })),
            ),
            Call::Delete(id) => (
                "DELETE",
                format!("{traces}/assessments/{}", encode_segment(id)),
                None,
            ),
        }
    }

    /// The id of this vote's assessment in a trace answer: a valid
    /// `user_feedback` assessment whose metadata names this message. A trace
    /// with no assessments has no `assessments` key at all.
    pub fn find_in(&self, trace: &Value) -> Option<String> {
        trace["trace"]["trace_info"]["assessments"]
            .as_array()?
            .iter()
            .find(|assessment| {
                assessment["assessment_name"] == ASSESSMENT_NAME
                    && assessment["metadata"][MESSAGE_ID_METADATA] == self.message_id.to_string()
                    && assessment["valid"] != false
            })
            .and_then(|assessment| assessment["assessment_id"].as_str())
            .map(str::to_owned)
    }

    pub fn delivered_statement(&self, assessment_id: Option<&str>) -> Statement {
        Statement::new(
            RECORD_DELIVERED,
            vec![
                SqlParam::Uuid(self.message_id),
                SqlParam::optional_text(assessment_id),
                SqlParam::Int64(self.revision),
            ],
        )
    }

    /// Tried again after `after`; `attempts`: how many failed before this one.
    pub fn retry_statement(
        &self,
        error: &str,
        after: Duration,
        assessment_id: Option<&str>,
    ) -> Statement {
        Statement::new(
            RECORD_RETRY,
            vec![
                SqlParam::Uuid(self.message_id),
                SqlParam::Text(error.to_owned()),
                SqlParam::Int64(after.as_secs() as i64),
                SqlParam::Int64(self.revision),
                SqlParam::optional_text(assessment_id),
            ],
        )
    }

    pub fn refused_statement(&self, error: &str) -> Statement {
        Statement::new(
            RECORD_REFUSED,
            vec![
                SqlParam::Uuid(self.message_id),
                SqlParam::Text(error.to_owned()),
                SqlParam::Int64(self.revision),
            ],
        )
    }

    /// How long until the next try after `problem` (this row's
    /// `attempts` failed before).
    pub fn retry_after(&self, problem: &Problem) -> Duration {
        let longest = match problem {
            Problem::NotYet | Problem::Outage(_) => LONGEST_OUTAGE_RETRY,
            Problem::Credentials(_) | Problem::Misconfigured(_) => LONGEST_MISCONFIGURATION_RETRY,
        };
        let first = match problem {
            Problem::NotYet => FIRST_NOT_YET_RETRY,
            _ => FIRST_RETRY,
        };
        first
            .saturating_mul(2u32.saturating_pow(self.attempts))
            .min(longest)
    }
}

/// Claims the next due row, of anyone or only `user_email`'s (when only a
/// user's own token can speak for the delivery), leased for as long as a
/// delivery whose every call takes `call_timeout` can run, `trace_wait`
/// spent waiting for its trace included.
pub fn claim_due_statement(
    user_email: Option<&str>,
    call_timeout: Duration,
    waiting: Duration,
) -> Statement {
    let lease = call_timeout.saturating_mul(MAX_CALLS_PER_DELIVERY as u32) + waiting + LEASE_MARGIN;
    Statement::new(
        CLAIM_DUE,
        vec![
            SqlParam::optional_text(user_email),
            SqlParam::Int64(lease.as_secs() as i64),
        ],
    )
}

/// See [`OUTAGE_OVER`].
pub fn outage_over_statement() -> Statement {
    Statement::new(OUTAGE_OVER, Vec::new())
}

/// The `mlflow_trace_wait_seconds` setting: how long after a reply a
/// missing trace counts as not logged yet (MLflow logs traces
/// asynchronously) rather than as unknown for good. Whole seconds, or unset
/// for [`DEFAULT_TRACE_WAIT`]; the error says what is wrong.
pub fn trace_wait_setting(value: Option<&str>) -> Result<Duration, String> {
    crate::http::validate::seconds_setting(
        "mlflow_trace_wait_seconds",
        value,
        0..=MAX_TRACE_WAIT_SECONDS,
        DEFAULT_TRACE_WAIT,
    )
}

/// One call to MLflow's assessments API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Read the trace with its assessments, to find this vote's.
    Find,
    Create,
    Update(String),
    Delete(String),
}

impl Call {
    /// The assessment the call is about, once known.
    pub fn assessment_id(&self) -> Option<&str> {
        match self {
            Self::Update(id) | Self::Delete(id) => Some(id),
            Self::Find | Self::Create => None,
        }
    }

    /// For messages: which call, in a few words.
    fn describe(&self) -> &'static str {
        match self {
            Self::Find => "MLflow's trace read",
            Self::Create => "MLflow's assessment create",
            Self::Update(_) => "MLflow's assessment update",
            Self::Delete(_) => "MLflow's assessment delete",
        }
    }
}

/// The calls one delivery makes at most (find, then create or change, and
/// once more if the assessment vanished meanwhile).
pub const MAX_CALLS_PER_DELIVERY: usize = 4;

/// Where a delivery goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Call(Call),
    /// MLflow holds the vote's state; the assessment's id, if it has one.
    Delivered(Option<String>),
    Retry(Problem),
    Refused(String),
}

/// Why a delivery will be tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The trace is not in MLflow yet, but the reply is young enough that
    /// it may still come (MLflow logs traces asynchronously): ask again soon.
    NotYet,
    /// MLflow is down, busy or slow, or did not answer: the rows after this
    /// one would fare no better, so the run stops.
    Outage(String),
    /// MLflow refused the credentials (401, 403).
    Credentials(String),
    /// Something that is not MLflow answered (wrong origin, a proxy's page).
    Misconfigured(String),
}

impl Problem {
    fn outage(status: u16) -> Self {
        Self::Outage(format!("MLflow answered {status}"))
    }

    /// Whether the next rows would meet the same problem: MLflow is away,
    /// or refuses the credentials every row is sent with.
    pub fn stops_the_run(&self) -> bool {
        !matches!(self, Self::NotYet)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotYet => f.write_str("the trace is not in MLflow yet"),
            Self::Outage(why) | Self::Credentials(why) | Self::Misconfigured(why) => {
                f.write_str(why)
            }
        }
    }
}

/// MLflow's error message in an error answer, or the answer itself.
fn error_text(answer: &Value) -> String {
    match (answer["error_code"].as_str(), answer["message"].as_str()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => answer.to_string(),
    }
}

/// The created assessment's id, from a create answer.
pub fn created_id(answer: &Value) -> Option<String> {
    answer["assessment"]["assessment_id"]
        .as_str()
        .map(str::to_owned)
}

/// A trace or assessment id as one path segment: anything but unreserved
/// characters percent-encoded, so an id can never reach another path.
fn encode_segment(id: &str) -> String {
    id.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(600);

    fn delivery(is_upvoted: Option<bool>, assessment_id: Option<&str>) -> Delivery {
        Delivery {
            message_id: Uuid::from_u128(7),
            trace_id: "tr-1".into(),
            user_email: "ada@example.com".into(),
            is_upvoted,
            comment: Some("Clear".into()),
            assessment_id: assessment_id.map(str::to_owned),
            revision: 3,
            attempts: 1,
            reply_age: Duration::from_secs(3),
        }
    }

    fn missing() -> Value {
        json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Trace with ID tr-1 not found."})
    }

    #[test]
    fn a_vote_without_an_assessment_id_looks_for_its_assessment_first() {
        let new = delivery(Some(true), None);
        assert_eq!(new.first_call(), Call::Find);
        assert_eq!(new.after_find(None), Some(Call::Create));
        assert_eq!(
            new.after_find(Some("a-1".into())),
            Some(Call::Update("a-1".into()))
        );
        let withdrawn = delivery(None, None);
        assert_eq!(withdrawn.after_find(None), None, "nothing to remove");
        assert_eq!(
            withdrawn.after_find(Some("a-1".into())),
            Some(Call::Delete("a-1".into()))
        );
        assert_eq!(
            delivery(Some(false), Some("a-2")).first_call(),
            Call::Update("a-2".into())
        );
        assert_eq!(
            delivery(None, Some("a-2")).first_call(),
            Call::Delete("a-2".into())
        );
    }

    #[test]
    fn the_requests_follow_mlflows_rest_api() {
        let vote = delivery(Some(false), None);
        let (method, path, body) = vote.request(&Call::Create);
        assert_eq!(
            (method, path.as_str()),
            ("POST", "/api/3.0/mlflow/traces/tr-1/assessments")
        );
        assert_eq!(
            body.unwrap(),
            json!({"assessment": {
                "trace_id": "tr-1",
                "assessment_name": "user_feedback",
                "source": {"source_type": "HUMAN", "source_id": "ada@example.com"},
                "feedback": {"value": false},
                "rationale": "Clear",
                "metadata": {"chat_history.message_id": Uuid::from_u128(7).to_string()},
            }})
        );
        let (method, path, body) = vote.request(&Call::Update("a/1".into()));
        assert_eq!(
            (method, path.as_str()),
            ("PATCH", "/api/3.0/mlflow/traces/tr-1/assessments/a%2F1")
        );
        assert_eq!(body.unwrap()["update_mask"], "feedback,rationale");
        // The read that returns the assessments is the trace itself
        // (`.../traces/{id}/info` is no route of the real server).
        assert_eq!(
            vote.request(&Call::Find),
            ("GET", "/api/3.0/mlflow/traces/tr-1".to_owned(), None)
        );
        assert_eq!(vote.request(&Call::Delete("a-1".into())).0, "DELETE");
    }

    #[test]
    fn the_vote_finds_only_its_own_valid_assessment() {
        let vote = delivery(Some(true), None);
        let message = Uuid::from_u128(7).to_string();
        let trace = json!({"trace": {"trace_info": {"assessments": [
            {"assessment_id": "other-name", "assessment_name": "relevance",
             "metadata": {"chat_history.message_id": message}},
            {"assessment_id": "overridden", "assessment_name": "user_feedback", "valid": false,
             "metadata": {"chat_history.message_id": message}},
            {"assessment_id": "another-message", "assessment_name": "user_feedback",
             "metadata": {"chat_history.message_id": Uuid::nil().to_string()}},
            {"assessment_id": "mine", "assessment_name": "user_feedback",
             "metadata": {"chat_history.message_id": message}},
        ]}}});
        assert_eq!(vote.find_in(&trace).as_deref(), Some("mine"));
        // After its last assessment is deleted, a trace has no such key.
        assert_eq!(vote.find_in(&json!({"trace": {"trace_info": {}}})), None);
        assert_eq!(
            created_id(&json!({"assessment": {"assessment_id": "a-9"}})).as_deref(),
            Some("a-9")
        );
    }

    #[test]
    fn a_trace_not_logged_yet_is_waited_for_while_the_reply_is_young() {
        let young = delivery(Some(true), None);
        for call in [Call::Find, Call::Create] {
            assert_eq!(
                young.after_answer(&call, 404, Some(&missing()), WAIT),
                Next::Retry(Problem::NotYet),
                "{call:?}"
            );
        }
        let old = Delivery {
            reply_age: WAIT,
            ..young.clone()
        };
        let Next::Refused(why) = old.after_answer(&Call::Find, 404, Some(&missing()), WAIT) else {
            panic!("an old reply's missing trace is refused for good");
        };
        assert!(why.contains("tr-1"), "{why}");
        // Waiting for a trace does not stop a run: other rows' traces may be there.
        assert!(!Problem::NotYet.stops_the_run());
    }

    #[test]
    fn a_404_that_is_not_mlflows_is_a_misconfiguration_retried() {
        let vote = delivery(Some(true), None);
        for call in [Call::Find, Call::Create, Call::Update("a".into())] {
            let next = vote.after_answer(&call, 404, None, WAIT);
            assert!(
                matches!(&next, Next::Retry(Problem::Misconfigured(why)) if why.contains("serving_endpoint_origin")),
                "{call:?}: {next:?}"
            );
        }
        // A JSON 404 of another kind (no such route) is no verdict on the trace either.
        let next = vote.after_answer(
            &Call::Find,
            404,
            Some(&json!({"error_code": "ENDPOINT_NOT_FOUND"})),
            WAIT,
        );
        assert!(matches!(next, Next::Refused(_)), "{next:?}");
    }

    #[test]
    fn refused_credentials_are_retried_not_a_verdict() {
        let vote = delivery(Some(true), None);
        for status in [401, 403] {
            let error = json!({"error_code": "PERMISSION_DENIED", "message": "no"});
            let next = vote.after_answer(&Call::Create, status, Some(&error), WAIT);
            assert!(
                matches!(&next, Next::Retry(Problem::Credentials(why)) if why.contains("PERMISSION_DENIED")),
                "{next:?}"
            );
        }
    }

    #[test]
    fn outages_are_retried_and_other_refusals_are_final() {
        let vote = delivery(Some(true), None);
        for status in [408, 429, 500, 502, 503] {
            for answer in [None, Some(&json!({"error_code": "INTERNAL_ERROR"}))] {
                assert!(matches!(
                    vote.after_answer(&Call::Create, status, answer, WAIT),
                    Next::Retry(Problem::Outage(_))
                ));
            }
        }
        let invalid = json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"});
        for status in [400, 409] {
            assert!(matches!(
                vote.after_answer(&Call::Update("a".into()), status, Some(&invalid), WAIT),
                Next::Refused(_)
            ));
        }
    }

    #[test]
    fn an_update_counts_only_when_mlflow_holds_the_new_value() {
        let vote = delivery(Some(false), Some("a-1"));
        let update = Call::Update("a-1".into());
        let applied = json!({"assessment": {"assessment_id": "a-1",
            "feedback": {"value": false}, "rationale": "Clear"}});
        assert_eq!(
            vote.after_answer(&update, 200, Some(&applied), WAIT),
            Next::Delivered(Some("a-1".into()))
        );
        // The real server answers 200 to a mask it does not apply.
        let unchanged = json!({"assessment": {"assessment_id": "a-1",
            "feedback": {"value": true}, "rationale": "Clear"}});
        assert!(matches!(
            vote.after_answer(&update, 200, Some(&unchanged), WAIT),
            Next::Refused(_)
        ));
        // No comment: an empty rationale is what was sent.
        let plain = Delivery {
            comment: None,
            ..vote.clone()
        };
        let cleared = json!({"assessment": {"feedback": {"value": false}, "rationale": ""}});
        assert_eq!(
            plain.after_answer(&update, 200, Some(&cleared), WAIT),
            Next::Delivered(Some("a-1".into()))
        );
        // Gone from MLflow: look again.
        assert_eq!(
            vote.after_answer(&update, 404, Some(&missing()), WAIT),
            Next::Call(Call::Find)
        );
    }

    #[test]
    fn a_delete_is_done_whether_or_not_the_assessment_was_there() {
        let withdrawn = delivery(None, Some("a-1"));
        let delete = Call::Delete("a-1".into());
        for (status, answer) in [(200, Some(json!({}))), (200, None), (404, Some(missing()))] {
            assert_eq!(
                withdrawn.after_answer(&delete, status, answer.as_ref(), WAIT),
                Next::Delivered(None)
            );
        }
    }

    #[test]
    fn a_delivery_finds_then_creates_or_changes_and_records_the_id() {
        let vote = delivery(Some(true), None);
        let nothing = json!({"trace": {"trace_info": {"trace_id": "tr-1"}}});
        assert_eq!(
            vote.after_answer(&Call::Find, 200, Some(&nothing), WAIT),
            Next::Call(Call::Create)
        );
        assert_eq!(
            vote.after_answer(
                &Call::Create,
                200,
                Some(&json!({"assessment": {"assessment_id": "a-1"}})),
                WAIT
            ),
            Next::Delivered(Some("a-1".into()))
        );
        assert!(matches!(
            vote.after_answer(&Call::Create, 200, Some(&json!({})), WAIT),
            Next::Retry(Problem::Misconfigured(_))
        ));
        let withdrawn = delivery(None, None);
        assert_eq!(
            withdrawn.after_answer(&Call::Find, 200, Some(&nothing), WAIT),
            Next::Delivered(None)
        );
    }

    #[test]
    fn retries_back_off_to_half_a_minute_for_outages_and_longer_for_misconfiguration() {
        let at = |attempts, problem: Problem| {
            Delivery {
                attempts,
                ..delivery(Some(true), None)
            }
            .retry_after(&problem)
        };
        let outage = || Problem::Outage("503".into());
        assert_eq!(at(0, outage()), Duration::from_secs(5));
        assert_eq!(at(1, outage()), Duration::from_secs(10));
        assert_eq!(at(40, outage()), Duration::from_secs(30));
        assert_eq!(at(0, Problem::NotYet), Duration::from_secs(2));
        assert_eq!(at(40, Problem::NotYet), Duration::from_secs(30));
        let wrong = || Problem::Credentials("401".into());
        assert_eq!(at(3, wrong()), Duration::from_secs(40));
        assert_eq!(at(40, wrong()), Duration::from_secs(600));
        assert!(outage().stops_the_run() && wrong().stops_the_run());
    }

    #[test]
    fn the_trace_wait_setting_is_whole_seconds() {
        assert_eq!(trace_wait_setting(None), Ok(DEFAULT_TRACE_WAIT));
        assert_eq!(
            trace_wait_setting(Some(" 30 ")),
            Ok(Duration::from_secs(30))
        );
        for bad in ["-1", "ten", "1.5", "999999999"] {
            let error = trace_wait_setting(Some(bad)).unwrap_err();
            assert!(error.contains("mlflow_trace_wait_seconds"), "{error}");
        }
    }

    #[test]
    fn a_claimed_row_decodes_as_the_claim_returns_it() {
        use crate::database::sql::fake::{FakeRow, Value as Cell};
        let age = CLAIM_DUE[CLAIM_DUE.find("(SELECT floor").unwrap()..].trim();
        let row = FakeRow::laid_out_by(
            CLAIM_DUE,
            &[
                (r#""messageId""#, Cell::Uuid(Uuid::from_u128(7))),
                (r#""traceId""#, Cell::Text("tr-1")),
                (r#""userEmail""#, Cell::Text("ada@example.com")),
                (r#""isUpvoted""#, Cell::Null),
                ("comment", Cell::Text("Clear")),
                (r#""assessmentId""#, Cell::Text("a-2")),
                ("revision", Cell::Int64(3)),
                ("attempts::bigint", Cell::Int64(1)),
                (age, Cell::Int64(3)),
            ],
        );
        assert_eq!(
            Delivery::from_row(&row).unwrap(),
            delivery(None, Some("a-2"))
        );
    }

    #[test]
    fn claiming_is_leased_for_a_whole_delivery() {
        let ten = Duration::from_secs(10);
        let all = claim_due_statement(None, ten, ten);
        assert_eq!(all.params, vec![SqlParam::Null, SqlParam::Int64(80)]);
        assert!(all.sql.contains("FOR UPDATE SKIP LOCKED"));
        assert!(all.sql.contains(r#""leasedUntil" <= CURRENT_TIMESTAMP"#));
        let own = claim_due_statement(Some("ada@example.com"), ten, Duration::ZERO);
        assert_eq!(own.params[0], SqlParam::Text("ada@example.com".into()));
        let vote = delivery(Some(true), None);
        let retry = vote.retry_statement("503", Duration::from_secs(10), None);
        assert!(retry.sql.contains("revision = $4"));
        assert_eq!(retry.params[2], SqlParam::Int64(10));
        assert!(vote.refused_statement("400").sql.contains("revision = $3"));
        assert!(
            vote.delivered_statement(Some("a"))
                .sql
                .contains("pending = (revision <> $3)")
        );
        assert!(outage_over_statement().sql.contains("attempts > 0"));
    }
}
