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
use crate::sql::{Row, SqlParam, Statement};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// Text that has arrived is written at least this often while the reply
/// streams, so a host killed mid-stream loses at most this much of it.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// Creates the chat unless it exists, and answers the chat's owner and
/// visibility and whether it was created: "userId", visibility, created.
///
/// The outer SELECT cannot see the row the INSERT adds (WITH queries share
/// one snapshot), so exactly one branch answers, except when a concurrent
/// request created the chat after this statement's snapshot was taken: then
/// no row comes back, and running the statement again sees that chat.
const CLAIM_CHAT: &str = r#"WITH created AS (
  INSERT INTO chat."Chat" (id, title, "userId", "createdAt")
  VALUES ($1, $3, $2, COALESCE(to_timestamp($4::bigint / 1000.0), CURRENT_TIMESTAMP))
  ON CONFLICT (id) DO NOTHING
  RETURNING "userId", visibility
)
SELECT "userId", visibility, true FROM created
UNION ALL
SELECT "userId", visibility, false FROM chat."Chat" WHERE id = $1"#;

/// Stores the user's message once: one row when it is stored now (true) or
/// was already stored as this chat's user message (false, a retry). No row:
/// the id belongs to another message (or, as for [`CLAIM_CHAT`], to one a
/// concurrent request stored after this statement's snapshot).
const STORE_USER_MESSAGE: &str = r#"WITH stored AS (
  INSERT INTO chat."Message" (id, "chatId", role, parts, "createdAt")
  VALUES ($1, $2, 'user', $3::text::json, COALESCE(to_timestamp($4::bigint / 1000.0), CURRENT_TIMESTAMP))
  ON CONFLICT (id) DO NOTHING
  RETURNING id
)
SELECT true FROM stored
UNION ALL
SELECT false FROM chat."Message" WHERE id = $1 AND "chatId" = $2 AND role = 'user'"#;

/// Writes the reply so far, or in full; the same id is rewritten by each
/// checkpoint and by the final write. Its first write fixes "createdAt" and
/// the insertion order, after the user's message. Only into a chat of the
/// reply's owner ($7): a replayed reply whose chat turned out to be someone
/// else's writes nothing.
const SAVE_ASSISTANT_MESSAGE: &str = r#"INSERT INTO chat."Message" (id, "chatId", role, parts, "traceId", status, "createdAt")
SELECT $1, $2, 'assistant', $3::text::json, $4, $5, COALESCE(to_timestamp($6::bigint / 1000.0), CURRENT_TIMESTAMP)
WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $2 AND "userId" = $7)
ON CONFLICT (id) DO UPDATE
SET parts = EXCLUDED.parts, "traceId" = EXCLUDED."traceId", status = EXCLUDED.status
WHERE chat."Message"."chatId" = EXCLUDED."chatId" AND chat."Message".role = 'assistant'"#;

const SET_TITLE: &str = r#"UPDATE chat."Chat" SET title = $3 WHERE id = $1 AND "userId" = $2"#;

/// How much of the reply a stored assistant message holds (the `status`
/// column of migration 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// The endpoint finished its reply; the text is all of it.
    Complete,
    /// The text so far of a reply that is still streaming (a checkpoint; if
    /// the host died, it stays so), or of one that broke off after some text
    /// arrived.
    Incomplete,
    /// The endpoint failed before any text arrived: the message records that
    /// this turn got no reply.
    Error,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Incomplete => "incomplete",
            Self::Error => "error",
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

pub fn claim_chat_statement(
    chat_id: Uuid,
    caller: &str,
    title: &str,
    written_at: Option<u64>,
) -> Statement {
    Statement::new(
        CLAIM_CHAT,
        vec![
            SqlParam::Uuid(chat_id),
            SqlParam::Text(caller.to_owned()),
            SqlParam::Text(title.to_owned()),
            written_at_param(written_at),
        ],
    )
}

/// Milliseconds since the epoch as the statements bind them (`$n::bigint`).
fn written_at_param(written_at: Option<u64>) -> SqlParam {
    match written_at.and_then(|ms| i64::try_from(ms).ok()) {
        Some(ms) => SqlParam::Int64(ms),
        None => SqlParam::Null,
    }
}

/// What [`claim_chat_statement`] found: the chat as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatClaim {
    pub access: ChatAccess,
    /// Whether this request created the chat (so it needs a title).
    pub created: bool,
}

impl ChatClaim {
    /// Whether `caller` may add messages: it is their chat (new or not);
    /// someone else's, public or private, is 403.
    pub fn authorize(&self, caller: &str) -> Result<(), ApiError> {
        access::decide(Some(&self.access), caller, ChatAction::AddMessages)
    }

    /// Decodes the row of [`claim_chat_statement`].
    pub fn from_row<R: Row>(row: &R) -> Result<Self, R::Error> {
        Ok(Self {
            access: ChatAccess {
                owner: row.text(0)?,
                visibility: Visibility::from_stored(&row.text(1)?),
            },
            created: row.boolean(2)?,
        })
    }
}

pub fn store_user_message_statement(
    message_id: Uuid,
    chat_id: Uuid,
    text: &str,
    written_at: Option<u64>,
) -> Statement {
    Statement::new(
        STORE_USER_MESSAGE,
        vec![
            SqlParam::Uuid(message_id),
            SqlParam::Uuid(chat_id),
            SqlParam::Text(text_parts(text)),
            written_at_param(written_at),
        ],
    )
}

/// The 409 for a message id that [`store_user_message_statement`] found
/// taken by another message.
pub fn message_id_taken(message_id: Uuid) -> ApiError {
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

/// Gives the owner's chat its generated title.
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

/// How long until the reply's text must be checkpointed: `None` while all of
/// it is saved, otherwise what is left of [`CHECKPOINT_INTERVAL`] since the
/// last checkpoint (or since the reply began), zero when it is due now.
pub fn checkpoint_due_in(unsaved_text: bool, since_last_checkpoint: Duration) -> Option<Duration> {
    unsaved_text.then(|| CHECKPOINT_INTERVAL.saturating_sub(since_last_checkpoint))
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

    #[test]
    fn the_claim_creates_with_the_callers_id_and_title() {
        let statement = claim_chat_statement(id(1), OWNER, "Hello there", None);
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(id(1)),
                SqlParam::Text(OWNER.into()),
                SqlParam::Text("Hello there".into()),
                SqlParam::Null
            ]
        );
        assert!(statement.sql.contains("ON CONFLICT (id) DO NOTHING"));
        assert!(
            !statement.sql.contains("DO UPDATE"),
            "never touches another's chat"
        );
    }

    /// A claim as the claim statement's row would give it.
    fn claim(owner: &'static str, visibility: &'static str, created: bool) -> ChatClaim {
        use crate::sql::fake::{FakeRow, Value};
        let row = FakeRow::laid_out_by(
            CLAIM_CHAT,
            &[
                (r#""userId""#, Value::Text(owner)),
                ("visibility", Value::Text(visibility)),
                ("true", Value::Boolean(created)),
            ],
        );
        ChatClaim::from_row(&row).unwrap()
    }

    #[test]
    fn the_claim_row_decodes_as_its_select_lists_it() {
        let claim = claim(OWNER, "public", true);
        assert_eq!(claim.access.owner, OWNER);
        assert_eq!(claim.access.visibility, Visibility::Public);
        assert!(claim.created);
        assert!(!self::claim(OWNER, "private", false).created);
    }

    #[test]
    fn only_the_owner_adds_messages_whatever_the_visibility() {
        let mine = claim(OWNER, "private", false);
        assert_eq!(mine.authorize(OWNER), Ok(()));
        for visibility in ["public", "private"] {
            let theirs = claim("other@example.com", visibility, false);
            assert_eq!(
                theirs.authorize(OWNER).unwrap_err().status,
                403,
                "{visibility}"
            );
        }
        assert!(claim(OWNER, "private", true).created);
    }

    #[test]
    fn the_user_message_is_stored_once_as_text_parts() {
        let statement = store_user_message_statement(id(2), id(1), "Hi \"you\"", None);
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(id(2)),
                SqlParam::Uuid(id(1)),
                SqlParam::Text(r#"[{"text":"Hi \"you\"","type":"text"}]"#.into()),
                SqlParam::Null
            ]
        );
        assert!(statement.sql.contains("ON CONFLICT (id) DO NOTHING"));
        assert!(statement.sql.contains(r#""chatId" = $2 AND role = 'user'"#));
        let taken = message_id_taken(id(2));
        assert_eq!(taken.status, 409);
        assert!(taken.message.contains(&id(2).to_string()));
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
        let claim = claim_chat_statement(id(1), OWNER, "t", Some(at));
        let user = store_user_message_statement(id(2), id(1), "hi", Some(at));
        let reply =
            save_assistant_message_statement(reply_row(), "", None, MessageStatus::Error, Some(at));
        for statement in [&claim, &user, &reply] {
            assert!(statement.params.contains(&SqlParam::Int64(at as i64)));
            assert!(
                statement.sql.contains("COALESCE(to_timestamp("),
                "{}",
                statement.sql
            );
        }
        assert_eq!(
            claim_chat_statement(id(1), OWNER, "t", Some(u64::MAX)).params[3],
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
    fn checkpoints_come_at_most_every_two_seconds_and_only_for_new_text() {
        let ms = Duration::from_millis;
        assert_eq!(checkpoint_due_in(false, ms(5000)), None);
        assert_eq!(checkpoint_due_in(true, ms(0)), Some(ms(2000)));
        assert_eq!(checkpoint_due_in(true, ms(1500)), Some(ms(500)));
        assert_eq!(checkpoint_due_in(true, ms(2000)), Some(Duration::ZERO));
        assert_eq!(checkpoint_due_in(true, ms(9000)), Some(Duration::ZERO));
    }
}
