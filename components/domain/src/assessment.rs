//! Ratings reach MLflow as a feedback assessment on the reply's trace, and
//! are never lost on the way: each rating (or withdrawal) of a traced reply
//! is written, in the same statement as the vote, to an outbox row in the
//! database that holds the state MLflow should have. Requests deliver due
//! rows (one claimed at a time, leased so that no two deliveries of a row
//! run at once) and record the outcome: done, retried later with backoff,
//! or refused for good (a 4xx MLflow will answer the same way again).
//!
//! Delivery is idempotent: a row that has no assessment id yet first looks
//! for the assessment this vote made (by the message id in its metadata), so
//! a create whose answer was lost never yields a second assessment; a change
//! updates that assessment, a withdrawal deletes it.

use crate::sql::{Row, SqlParam, Statement};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The assessment's name, as the seed's template names it.
pub const ASSESSMENT_NAME: &str = "user_feedback";
/// The metadata key that ties an assessment to the rated message.
pub const MESSAGE_ID_METADATA: &str = "chat_history.message_id";
/// Rows delivered per request at most, claimed one at a time.
pub const DELIVERIES_PER_REQUEST: usize = 8;
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LONGEST_RETRY: Duration = Duration::from_secs(3600);
/// Added to a delivery's longest run for its lease.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Claims the next due row: pending, due, not leased to another delivery,
/// and (when `$1` is set) of that user only; leased for `$2` seconds.
/// Selects, in order: "messageId", "traceId", "userEmail", "isUpvoted",
/// comment, "assessmentId", revision, attempts.
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
  attempts::bigint"#;

/// The ratings still to be delivered: the outbox's depth, which the host's
/// metrics report.
pub const PENDING_COUNT: &str = r#"SELECT count(*) FROM chat."FeedbackOutbox" WHERE pending"#;

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
    /// (its JSON, or null).
    pub fn after_answer(&self, call: &Call, status: u16, answer: &Value) -> Next {
        match Answer::of_status(status, call) {
            Answer::Done => match call {
                Call::Find => match self.after_find(self.find_in(answer)) {
                    Some(next) => Next::Call(next),
                    None => Next::Delivered(None),
                },
                Call::Create => Next::Delivered(created_id(answer)),
                Call::Update(id) => Next::Delivered(Some(id.clone())),
                Call::Delete(_) => Next::Delivered(None),
            },
            // The assessment was deleted in MLflow: look again.
            Answer::Gone => Next::Call(Call::Find),
            Answer::Retry => Next::Retry(format!("MLflow answered {status}")),
            Answer::Refused => Next::Refused(format!("MLflow refused with {status}: {answer}")),
        }
    }

    /// The method, the path (below the workspace origin) and the JSON body.
    pub fn request(&self, call: &Call) -> (&'static str, String, Option<Value>) {
        let traces = self.traces_path();
        match call {
            Call::Find => ("GET", format!("{traces}/info"), None),
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

    /// The id of this vote's assessment in a trace-info answer: a valid
    /// `user_feedback` assessment whose metadata names this message.
    pub fn find_in(&self, trace_info: &Value) -> Option<String> {
        trace_info["trace"]["trace_info"]["assessments"]
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

    /// `attempts`: how many failed before this one.
    pub fn retry_statement(
        &self,
        error: &str,
        attempts: u32,
        assessment_id: Option<&str>,
    ) -> Statement {
        Statement::new(
            RECORD_RETRY,
            vec![
                SqlParam::Uuid(self.message_id),
                SqlParam::Text(error.to_owned()),
                SqlParam::Int64(retry_after(attempts).as_secs() as i64),
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
}

/// Claims the next due row, of anyone or only `user_email`'s (when no app
/// token can speak for everyone), leased for as long as a delivery whose
/// every call takes `call_timeout` can run.
pub fn claim_due_statement(user_email: Option<&str>, call_timeout: Duration) -> Statement {
    let lease = call_timeout.saturating_mul(MAX_CALLS_PER_DELIVERY as u32) + LEASE_MARGIN;
    Statement::new(
        CLAIM_DUE,
        vec![
            SqlParam::optional_text(user_email),
            SqlParam::Int64(lease.as_secs() as i64),
        ],
    )
}

/// One call to MLflow's assessments API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Read the trace's assessments, to find this vote's.
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
    Retry(String),
    Refused(String),
}

/// What an answer's status means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Done,
    /// The assessment MLflow should update or delete is not there (deleted
    /// in MLflow): look again, or, for a delete, done.
    Gone,
    /// Try again later: MLflow is down, busy or slow.
    Retry,
    /// MLflow will answer the same again (an unknown trace, say).
    Refused,
}

impl Answer {
    pub fn of_status(status: u16, call: &Call) -> Self {
        match status {
            200..=299 => Self::Done,
            404 if matches!(call, Call::Delete(_)) => Self::Done,
            404 if matches!(call, Call::Update(_)) => Self::Gone,
            408 | 429 | 500..=599 => Self::Retry,
            _ => Self::Refused,
        }
    }
}

/// The created assessment's id, from a create answer.
pub fn created_id(answer: &Value) -> Option<String> {
    answer["assessment"]["assessment_id"]
        .as_str()
        .map(str::to_owned)
}

/// Backoff after `attempts` failures before this one: 5 s, doubling, at
/// most an hour.
pub fn retry_after(attempts: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(attempts))
        .min(LONGEST_RETRY)
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
        }
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
    fn the_requests_follow_mlflows_assessments_api() {
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
        assert_eq!(
            vote.request(&Call::Find),
            ("GET", "/api/3.0/mlflow/traces/tr-1/info".to_owned(), None)
        );
        assert_eq!(vote.request(&Call::Delete("a-1".into())).0, "DELETE");
    }

    #[test]
    fn the_vote_finds_only_its_own_valid_assessment() {
        let vote = delivery(Some(true), None);
        let message = Uuid::from_u128(7).to_string();
        let info = json!({"trace": {"trace_info": {"assessments": [
            {"assessment_id": "other-name", "assessment_name": "relevance",
             "metadata": {"chat_history.message_id": message}},
            {"assessment_id": "overridden", "assessment_name": "user_feedback", "valid": false,
             "metadata": {"chat_history.message_id": message}},
            {"assessment_id": "another-message", "assessment_name": "user_feedback",
             "metadata": {"chat_history.message_id": Uuid::nil().to_string()}},
            {"assessment_id": "mine", "assessment_name": "user_feedback",
             "metadata": {"chat_history.message_id": message}},
        ]}}});
        assert_eq!(vote.find_in(&info).as_deref(), Some("mine"));
        assert_eq!(vote.find_in(&json!({"trace": {"trace_info": {}}})), None);
        assert_eq!(
            created_id(&json!({"assessment": {"assessment_id": "a-9"}})).as_deref(),
            Some("a-9")
        );
    }

    #[test]
    fn answers_are_done_retried_or_refused_for_good() {
        let update = Call::Update("a".into());
        let delete = Call::Delete("a".into());
        assert_eq!(Answer::of_status(200, &Call::Create), Answer::Done);
        assert_eq!(Answer::of_status(404, &delete), Answer::Done);
        assert_eq!(Answer::of_status(404, &update), Answer::Gone);
        assert_eq!(Answer::of_status(404, &Call::Create), Answer::Refused);
        for status in [408, 429, 500, 502, 503] {
            assert_eq!(Answer::of_status(status, &Call::Create), Answer::Retry);
        }
        for status in [400, 401, 403, 409] {
            assert_eq!(Answer::of_status(status, &update), Answer::Refused);
        }
    }

    #[test]
    fn a_delivery_finds_then_creates_or_changes_and_records_the_id() {
        let vote = delivery(Some(true), None);
        let nothing = json!({"trace": {"trace_info": {"assessments": []}}});
        assert_eq!(
            vote.after_answer(&Call::Find, 200, &nothing),
            Next::Call(Call::Create)
        );
        assert_eq!(
            vote.after_answer(
                &Call::Create,
                200,
                &json!({"assessment": {"assessment_id": "a-1"}})
            ),
            Next::Delivered(Some("a-1".into()))
        );
        let update = Call::Update("a-1".into());
        assert_eq!(
            vote.after_answer(&update, 200, &Value::Null),
            Next::Delivered(Some("a-1".into()))
        );
        assert_eq!(
            vote.after_answer(&update, 404, &Value::Null),
            Next::Call(Call::Find)
        );
        assert_eq!(update.assessment_id(), Some("a-1"));
        assert!(matches!(
            vote.after_answer(&Call::Create, 503, &Value::Null),
            Next::Retry(_)
        ));
        assert!(matches!(
            vote.after_answer(&Call::Find, 400, &Value::Null),
            Next::Refused(_)
        ));
        let withdrawn = delivery(None, None);
        assert_eq!(
            withdrawn.after_answer(&Call::Find, 200, &nothing),
            Next::Delivered(None)
        );
        assert_eq!(
            withdrawn.after_answer(&Call::Delete("a-1".into()), 404, &Value::Null),
            Next::Delivered(None)
        );
    }

    #[test]
    fn retries_back_off_from_five_seconds_to_an_hour() {
        assert_eq!(retry_after(0), Duration::from_secs(5));
        assert_eq!(retry_after(1), Duration::from_secs(10));
        assert_eq!(retry_after(5), Duration::from_secs(160));
        assert_eq!(retry_after(40), Duration::from_secs(3600));
    }

    #[test]
    fn a_claimed_row_decodes_as_the_claim_returns_it() {
        use crate::sql::fake::{FakeRow, Value as Cell};
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
            ],
        );
        assert_eq!(
            Delivery::from_row(&row).unwrap(),
            delivery(None, Some("a-2"))
        );
    }

    #[test]
    fn claiming_is_leased_for_a_whole_delivery() {
        let all = claim_due_statement(None, Duration::from_secs(10));
        assert_eq!(all.params, vec![SqlParam::Null, SqlParam::Int64(70)]);
        assert!(all.sql.contains("FOR UPDATE SKIP LOCKED"));
        assert!(all.sql.contains(r#""leasedUntil" <= CURRENT_TIMESTAMP"#));
        let own = claim_due_statement(Some("ada@example.com"), Duration::from_secs(10));
        assert_eq!(own.params[0], SqlParam::Text("ada@example.com".into()));
        let vote = delivery(Some(true), None);
        assert!(
            vote.retry_statement("503", 0, None)
                .sql
                .contains("revision = $4")
        );
        assert_eq!(
            vote.retry_statement("503", 1, None).params[2],
            SqlParam::Int64(10)
        );
        assert!(vote.refused_statement("400").sql.contains("revision = $3"));
        assert!(
            vote.delivered_statement(Some("a"))
                .sql
                .contains("pending = (revision <> $3)")
        );
    }
}
