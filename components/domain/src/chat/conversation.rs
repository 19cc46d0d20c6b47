//! What `POST /api/chat` writes: the chat on first use, the user's message
//! before the model is called, and the assistant's reply while and after it
//! streams, each marked with how complete it is.
//!
//! Each write takes the time it happened, `written_at` (milliseconds since
//! the Unix epoch): `None` when it is written as it happens (the database's
//! clock stamps it), the recorded time when the write-behind journal replays
//! it after an outage, so replayed rows keep their place in the conversation.
//!
//! Every write is safe to repeat. A chat or message id that already names
//! someone else's row is never overwritten, and the answer to such a clash
//! says nothing about that row.

use crate::ApiError;
use crate::access::{self, ChatAccess, ChatAction, Visibility};
use crate::database::sql::{Row, SqlParam, Statement};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// Text that has arrived is written at least this often while the reply
/// streams, so a host killed mid-stream loses at most this much of it.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// A `streaming` reply whose heartbeat is older than this (three checkpoint
/// intervals) lost its writer (its host was killed) and reads as
/// `incomplete`.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(6);

/// A message's status as readers see it (SQL over `status` and
/// `"heartbeatAt"`): a `streaming` reply whose heartbeat is older than
/// [`ABANDONED_AFTER`] is `incomplete`.
macro_rules! reported_status {
    () => {
        r#"CASE WHEN status = 'streaming' AND ("heartbeatAt" IS NULL OR "heartbeatAt" < LOCALTIMESTAMP - interval '6 seconds') THEN 'incomplete' ELSE status END"#
    };
}
pub(crate) use reported_status;

/// The user's turn in one statement (one round trip before the first byte
/// of the reply): records the caller in "User", creates the chat on first use
/// and stores the user's message, moving the chat's `"lastActivityAt"` up to
/// it (a turn replayed late from the journal never moves it back), or
/// writes nothing at all when the chat is someone else's or the message id
/// is another message's. Parameters: $1 chat id, $2 caller, $3 title, $4
/// written at, $5 message id, $6 parts, $7 email.
///
/// Every part decides on the statement's one snapshot (WITH queries share
/// it), so a row a concurrent request adds after it is not seen: then the
/// chat's owner comes back NULL (the chat was created concurrently) or the
/// message is neither stored nor refused (its id was taken concurrently), and
/// a second run sees that row. Selects, in order: the chat's owner and
/// visibility, whether this run created the chat, whether the message is
/// stored (now or by an earlier run of the same turn), whether its id is
/// another message's.
const STORE_USER_TURN: &str = r#"WITH existing AS (
  SELECT "userId", visibility FROM chat."Chat" WHERE id = $1
), earlier AS (
  SELECT "chatId" = $1 AND role = 'user' AS resent FROM chat."Message" WHERE id = $5
), verdict AS (
  SELECT NOT EXISTS (SELECT 1 FROM existing WHERE "userId" <> $2)
     AND NOT EXISTS (SELECT 1 FROM earlier WHERE NOT resent) AS accepted
), created AS (
  INSERT INTO chat."Chat" (id, title, "userId", "createdAt", "lastActivityAt")
  SELECT $1, $3, $2, COALESCE(to_timestamp($4::bigint / 1000.0), CURRENT_TIMESTAMP),
    COALESCE(to_timestamp($4::bigint / 1000.0), CURRENT_TIMESTAMP)
  FROM verdict WHERE accepted AND NOT EXISTS (SELECT 1 FROM existing)
  ON CONFLICT (id) DO NOTHING
  RETURNING "userId", visibility
), recorded_caller AS (
  INSERT INTO chat."User" (id, email)
  SELECT $2, $7::text FROM verdict
  WHERE accepted AND (EXISTS (SELECT 1 FROM created) OR EXISTS (SELECT 1 FROM existing))
  ON CONFLICT (id) DO NOTHING
), stored AS (
  INSERT INTO chat."Message" (id, "chatId", role, parts, "createdAt")
  SELECT $5, $1, 'user', $6::text::json, COALESCE(to_timestamp($4::bigint / 1000.0), CURRENT_TIMESTAMP)
  FROM verdict
  WHERE accepted AND NOT EXISTS (SELECT 1 FROM earlier)
    AND (EXISTS (SELECT 1 FROM created) OR EXISTS (SELECT 1 FROM existing))
  ON CONFLICT (id) DO NOTHING
  RETURNING id, "createdAt"
), active AS (
  UPDATE chat."Chat" SET "lastActivityAt" = greatest("lastActivityAt", stored."createdAt")
  FROM stored WHERE chat."Chat".id = $1 AND EXISTS (SELECT 1 FROM existing)
)
SELECT COALESCE(created."userId", existing."userId"),
  COALESCE(created.visibility, existing.visibility),
  created."userId" IS NOT NULL,
  EXISTS (SELECT 1 FROM stored) OR EXISTS (SELECT 1 FROM earlier WHERE resent),
  EXISTS (SELECT 1 FROM earlier WHERE NOT resent)
FROM verdict LEFT JOIN created ON true LEFT JOIN existing ON true"#;

/// Removes the chat a first run of [`STORE_USER_TURN`] created for a turn
/// that was then refused (its message id was taken concurrently), so the
/// refusal leaves nothing behind; a chat with any message is kept.
const REMOVE_EMPTY_CHAT: &str = r#"DELETE FROM chat."Chat"
WHERE id = $1 AND "userId" = $2
  AND NOT EXISTS (SELECT 1 FROM chat."Message" WHERE "chatId" = $1)"#;

/// Writes the reply so far, or in full; the same id is rewritten by each
/// checkpoint and by the final write. Its first write fixes "createdAt" and
/// the insertion order, after the user's message. Only into a chat of the
/// reply's owner ($7): a replayed reply whose chat turned out to be someone
/// else's writes nothing.
const SAVE_ASSISTANT_MESSAGE: &str = r#"INSERT INTO chat."Message" (id, "chatId", role, parts, "traceId", status, "createdAt", "heartbeatAt")
SELECT $1, $2, 'assistant', $3::text::json, $4, $5, COALESCE(to_timestamp($6::bigint / 1000.0), CURRENT_TIMESTAMP), LOCALTIMESTAMP
WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $2 AND "userId" = $7)
ON CONFLICT (id) DO UPDATE
SET parts = EXCLUDED.parts, "traceId" = EXCLUDED."traceId", status = EXCLUDED.status, "heartbeatAt" = EXCLUDED."heartbeatAt"
WHERE chat."Message"."chatId" = EXCLUDED."chatId" AND chat."Message".role = 'assistant'"#;

/// A title the owner gave the chat (`"renamedAt"` set) is theirs to keep.
const SET_TITLE: &str =
    r#"UPDATE chat."Chat" SET title = $3 WHERE id = $1 AND "userId" = $2 AND "renamedAt" IS NULL"#;

/// How much of the reply a stored assistant message holds (the `status`
/// column of migration 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// The endpoint finished its reply; the text is all of it.
    Complete,
    /// The text of a reply that broke off after some text arrived, or of one
    /// whose writer went away: a `streaming` row whose heartbeat is older
    /// than [`ABANDONED_AFTER`] is read as `incomplete` ([`reported_status`]).
    Incomplete,
    /// The text so far of a reply still being written: each checkpoint
    /// stores it with a fresh heartbeat (`"heartbeatAt"`, migration 11).
    Streaming,
    /// The endpoint failed before any text arrived: the message records that
    /// this turn got no reply.
    Error,
    /// The owner stopped the reply (`POST /api/chat/:chatId/stop`); the text
    /// is what arrived before, maybe none.
    Stopped,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Incomplete => "incomplete",
            Self::Error => "error",
            Self::Stopped => "stopped",
            Self::Streaming => "streaming",
        }
    }

    /// The status of a reply that ended: normally, or failed with or
    /// without text.
    pub fn of_ended_reply(completed: bool, text: &str) -> Self {
        match (completed, text.is_empty()) {
            (true, _) => Self::Complete,
            (false, false) => Self::Incomplete,
            (false, true) => Self::Error,
        }
    }
}

/// A user's message, the turn that begins a reply.
#[derive(Debug, Clone, Copy)]
pub struct UserTurn<'a> {
    pub chat_id: Uuid,
    pub message_id: Uuid,
    /// The caller's user id and email, as the gateway gave them.
    pub caller: &'a str,
    pub email: &'a str,
    /// The chat's title if this turn creates it.
    pub title: &'a str,
    pub text: &'a str,
}

impl UserTurn<'_> {
    pub fn store_statement(&self, written_at: Option<u64>) -> Statement {
        Statement::new(
            STORE_USER_TURN,
            vec![
                SqlParam::Uuid(self.chat_id),
                SqlParam::Text(self.caller.to_owned()),
                SqlParam::Text(self.title.to_owned()),
                written_at_param(written_at),
                SqlParam::Uuid(self.message_id),
                SqlParam::Text(text_parts(self.text)),
                SqlParam::Text(self.email.to_owned()),
            ],
        )
    }

    /// What one run of [`Self::store_statement`] settled, from its row:
    /// someone else's chat is refused first (403), then a taken id (409);
    /// otherwise the message is stored, or the run was unsettled.
    pub fn outcome<R: Row>(&self, row: &R) -> Result<TurnOutcome, R::Error> {
        let (created, stored, id_taken) = (row.boolean(2)?, row.boolean(3)?, row.boolean(4)?);
        // No owner: the chat was created after the snapshot (or not at all,
        // when the id is taken).
        if let Some(owner) = row.optional_text(0)? {
            let chat = ChatAccess {
                owner,
                visibility: Visibility::from_stored(&row.text(1)?),
            };
            if let Err(refusal) = access::decide(Some(&chat), self.caller, ChatAction::AddMessages)
            {
                return Ok(TurnOutcome::Refused(refusal));
            }
        }
        Ok(if id_taken {
            TurnOutcome::Refused(message_id_taken(self.message_id))
        } else if stored {
            TurnOutcome::Stored { created }
        } else {
            TurnOutcome::Unsettled { created }
        })
    }

    /// Undoes the chat an unsettled run created, when the turn ends refused.
    pub fn remove_empty_chat_statement(&self) -> Statement {
        Statement::new(
            REMOVE_EMPTY_CHAT,
            vec![
                SqlParam::Uuid(self.chat_id),
                SqlParam::Text(self.caller.to_owned()),
            ],
        )
    }
}

/// What one run of the user's turn settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOutcome {
    /// The message is stored; `created`: this run created the chat (so it
    /// needs a title).
    Stored { created: bool },
    /// Nothing was written: the chat is someone else's (403) or the message
    /// id is another message's (409).
    Refused(ApiError),
    /// A concurrent write got in the way; run the statement again.
    /// `created`: this run created the chat all the same.
    Unsettled { created: bool },
}

/// Milliseconds since the epoch as the statements bind them (`$n::bigint`).
fn written_at_param(written_at: Option<u64>) -> SqlParam {
    match written_at.and_then(|ms| i64::try_from(ms).ok()) {
        Some(ms) => SqlParam::Int64(ms),
        None => SqlParam::Null,
    }
}

/// The 409 for a message id taken by another message.
fn message_id_taken(message_id: Uuid) -> ApiError {
    ApiError::conflict(format!(
        "The message id {message_id} is already used by another message; \
         give the new message an id of its own."
    ))
}

/// The reply of `owner`'s chat.
pub struct ReplyRow<'a> {
    pub message_id: Uuid,
    pub chat_id: Uuid,
    pub owner: &'a str,
}

pub fn save_assistant_message_statement(
    row: ReplyRow<'_>,
    text: &str,
    trace_id: Option<&str>,
    status: MessageStatus,
    written_at: Option<u64>,
) -> Statement {
    Statement::new(
        SAVE_ASSISTANT_MESSAGE,
        vec![
            SqlParam::Uuid(row.message_id),
            SqlParam::Uuid(row.chat_id),
            SqlParam::Text(text_parts(text)),
            SqlParam::optional_text(trace_id),
            SqlParam::Text(status.as_str().to_owned()),
            written_at_param(written_at),
            SqlParam::Text(row.owner.to_owned()),
        ],
    )
}

/// Gives the owner's chat its generated title, unless they renamed it first.
pub fn set_title_statement(chat_id: Uuid, owner: &str, title: &str) -> Statement {
    Statement::new(
        SET_TITLE,
        vec![
            SqlParam::Uuid(chat_id),
            SqlParam::Text(owner.to_owned()),
            SqlParam::Text(title.to_owned()),
        ],
    )
}

/// A message's `parts` as the seed stores them: one text part.
pub fn text_parts(text: &str) -> String {
    json!([{ "type": "text", "text": text }]).to_string()
}

/// How long until the reply must be checkpointed: what is left of
/// [`CHECKPOINT_INTERVAL`] since the last checkpoint (or since the reply
/// began), zero when it is due now; `None` while nothing is owed: no text is
/// unsaved and no checkpoint was written yet. Once one was, a checkpoint is
/// also owed for its heartbeat alone, so a reply whose model is silent for a
/// while does not read as abandoned.
pub fn checkpoint_due_in(
    unsaved_text: bool,
    checkpointed: bool,
    since_last_checkpoint: Duration,
) -> Option<Duration> {
    (unsaved_text || checkpointed)
        .then(|| CHECKPOINT_INTERVAL.saturating_sub(since_last_checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "owner@example.com";

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn reply_row() -> ReplyRow<'static> {
        ReplyRow {
            message_id: id(3),
            chat_id: id(1),
            owner: OWNER,
        }
    }

    fn turn() -> UserTurn<'static> {
        UserTurn {
            chat_id: id(1),
            message_id: id(2),
            caller: OWNER,
            email: "ada@example.com",
            title: "Hello there",
            text: "Hi \"you\"",
        }
    }

    #[test]
    fn the_turn_binds_chat_caller_title_time_message_text_and_email() {
        let statement = turn().store_statement(None);
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(id(1)),
                SqlParam::Text(OWNER.into()),
                SqlParam::Text("Hello there".into()),
                SqlParam::Null,
                SqlParam::Uuid(id(2)),
                SqlParam::Text(r#"[{"text":"Hi \"you\"","type":"text"}]"#.into()),
                SqlParam::Text("ada@example.com".into()),
            ]
        );
        assert_eq!(
            statement.sql.matches("ON CONFLICT (id) DO NOTHING").count(),
            3,
            "chat, user and message are each written at most once"
        );
        assert!(
            !statement.sql.contains("DO UPDATE"),
            "never touches another's row"
        );
        assert_eq!(
            statement.sql.matches("WHERE accepted").count(),
            3,
            "every write waits for the verdict"
        );
    }

    /// The outcome of a turn whose row is laid out as the statement selects.
    fn outcome(
        owner: Option<&'static str>,
        created: bool,
        stored: bool,
        id_taken: bool,
    ) -> TurnOutcome {
        use crate::database::sql::fake::{FakeRow, Value};
        let text = |value: Option<&'static str>| value.map_or(Value::Null, Value::Text);
        let row = FakeRow::laid_out_by(
            STORE_USER_TURN,
            &[
                (
                    r#"COALESCE(created."userId", existing."userId")"#,
                    text(owner),
                ),
                (
                    "COALESCE(created.visibility, existing.visibility)",
                    text(owner.map(|_| "public")),
                ),
                (r#"created."userId" IS NOT NULL"#, Value::Boolean(created)),
                (
                    "EXISTS (SELECT 1 FROM stored) OR EXISTS (SELECT 1 FROM earlier WHERE resent)",
                    Value::Boolean(stored),
                ),
                (
                    "EXISTS (SELECT 1 FROM earlier WHERE NOT resent)",
                    Value::Boolean(id_taken),
                ),
            ],
        );
        turn().outcome(&row).unwrap()
    }

    #[test]
    fn a_stored_turn_says_whether_it_created_the_chat() {
        assert_eq!(
            outcome(Some(OWNER), true, true, false),
            TurnOutcome::Stored { created: true }
        );
        assert_eq!(
            outcome(Some(OWNER), false, true, false),
            TurnOutcome::Stored { created: false }
        );
    }

    #[test]
    fn someone_elses_chat_is_403_before_a_taken_id_is_409() {
        let status = |outcome: TurnOutcome| match outcome {
            TurnOutcome::Refused(refusal) => refusal.status,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            status(outcome(Some("other@example.com"), false, false, true)),
            403
        );
        assert_eq!(
            status(outcome(Some("other@example.com"), false, false, false)),
            403
        );
        for owner in [Some(OWNER), None] {
            let TurnOutcome::Refused(taken) = outcome(owner, false, false, true) else {
                panic!("a taken id is refused, in the caller's chat or a new one");
            };
            assert_eq!(taken.status, 409);
            assert!(taken.message.contains(&id(2).to_string()));
        }
    }

    #[test]
    fn a_concurrent_write_leaves_the_turn_unsettled() {
        assert_eq!(
            outcome(None, false, false, false),
            TurnOutcome::Unsettled { created: false },
            "the chat was created after the snapshot"
        );
        assert_eq!(
            outcome(Some(OWNER), true, false, false),
            TurnOutcome::Unsettled { created: true },
            "the message id was taken after the snapshot"
        );
    }

    #[test]
    fn only_the_callers_empty_chat_is_removed() {
        let statement = turn().remove_empty_chat_statement();
        assert_eq!(
            statement.params,
            vec![SqlParam::Uuid(id(1)), SqlParam::Text(OWNER.into())]
        );
        assert!(statement.sql.contains(r#""userId" = $2"#));
        assert!(statement.sql.contains("NOT EXISTS"));
    }

    #[test]
    fn the_assistant_message_is_rewritten_only_in_its_own_chat() {
        let statement = save_assistant_message_statement(
            reply_row(),
            "Hello",
            Some("tr-1"),
            MessageStatus::Incomplete,
            None,
        );
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(id(3)),
                SqlParam::Uuid(id(1)),
                SqlParam::Text(r#"[{"text":"Hello","type":"text"}]"#.into()),
                SqlParam::Text("tr-1".into()),
                SqlParam::Text("incomplete".into()),
                SqlParam::Null,
                SqlParam::Text(OWNER.into())
            ]
        );
        assert!(
            statement
                .sql
                .contains(r#"WHERE chat."Message"."chatId" = EXCLUDED."chatId""#)
        );
        assert!(
            statement.sql.contains(r#""userId" = $7"#),
            "only into the owner's chat"
        );
        let without_trace =
            save_assistant_message_statement(reply_row(), "", None, MessageStatus::Error, None);
        assert_eq!(without_trace.params[3], SqlParam::Null);
        assert_eq!(without_trace.params[4], SqlParam::Text("error".into()));
    }

    #[test]
    fn replayed_writes_carry_the_time_they_happened() {
        let at = 1_764_150_000_123;
        let user = turn().store_statement(Some(at));
        let reply =
            save_assistant_message_statement(reply_row(), "", None, MessageStatus::Error, Some(at));
        for statement in [&user, &reply] {
            assert!(statement.params.contains(&SqlParam::Int64(at as i64)));
            assert!(
                statement.sql.contains("COALESCE(to_timestamp("),
                "{}",
                statement.sql
            );
        }
        assert_eq!(
            turn().store_statement(Some(u64::MAX)).params[3],
            SqlParam::Null,
            "a time beyond the column's range falls back to the database's clock"
        );
    }

    #[test]
    fn the_title_is_set_on_the_owners_chat_only() {
        let statement = set_title_statement(id(1), OWNER, "Trip Plans");
        assert!(statement.sql.contains(r#"AND "userId" = $2"#));
        assert_eq!(statement.params[2], SqlParam::Text("Trip Plans".into()));
    }

    #[test]
    fn an_ended_reply_is_complete_incomplete_or_an_error() {
        assert_eq!(
            MessageStatus::of_ended_reply(true, "all"),
            MessageStatus::Complete
        );
        assert_eq!(
            MessageStatus::of_ended_reply(true, ""),
            MessageStatus::Complete
        );
        assert_eq!(
            MessageStatus::of_ended_reply(false, "some"),
            MessageStatus::Incomplete
        );
        assert_eq!(
            MessageStatus::of_ended_reply(false, ""),
            MessageStatus::Error
        );
    }

    #[test]
    fn checkpoints_come_every_two_seconds_for_new_text_or_the_heartbeat() {
        let ms = Duration::from_millis;
        assert_eq!(checkpoint_due_in(false, false, ms(5000)), None);
        assert_eq!(checkpoint_due_in(true, false, ms(0)), Some(ms(2000)));
        assert_eq!(checkpoint_due_in(true, false, ms(1500)), Some(ms(500)));
        assert_eq!(
            checkpoint_due_in(true, true, ms(2000)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            checkpoint_due_in(true, false, ms(9000)),
            Some(Duration::ZERO)
        );
        // Nothing new, but a checkpoint exists: its heartbeat is kept fresh.
        assert_eq!(checkpoint_due_in(false, true, ms(500)), Some(ms(1500)));
        assert_eq!(
            checkpoint_due_in(false, true, ms(2500)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_streaming_reply_reads_as_incomplete_once_its_heartbeat_is_old() {
        let status = reported_status!();
        assert!(
            status.contains(&format!("interval '{} seconds'", ABANDONED_AFTER.as_secs())),
            "{status}"
        );
        assert_eq!(ABANDONED_AFTER, CHECKPOINT_INTERVAL * 3);
        assert!(SAVE_ASSISTANT_MESSAGE.contains(r#""heartbeatAt" = EXCLUDED."heartbeatAt""#));
    }
}
