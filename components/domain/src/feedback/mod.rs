//! Feedback on the assistant's replies: the chat's owner rates a reply up or
//! down, with an optional comment, one vote per message (the `Vote` table's
//! key); a second rating changes it, and it can be withdrawn.
//! `PUT /api/feedback`, `DELETE /api/feedback/:chatId/:messageId` and
//! `GET /api/feedback/:chatId`.
//!
//! Each write is one statement that looks up the chat's owner and the
//! message's role and writes only when the caller owns the chat and the
//! message is one of its assistant replies; the row it answers is what
//! [`may_rate`] judges, so a refused write has written nothing.
//! Delivering ratings to MLflow lives beside it (`assessment`).

pub mod assessment;

use crate::ApiError;
use crate::access::{self, ChatAccess, ChatAction};
use crate::database::sql::{Row, SqlParam, Statement};
use crate::http::json_body::JsonObject;
use crate::http::validate::parse_uuid;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// The longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

const CHAT_ID: &str = "chatId";
const MESSAGE_ID: &str = "messageId";
const IS_UPVOTED: &str = "isUpvoted";
const COMMENT: &str = "comment";
const RATING_EXAMPLE: &str = r#"{"chatId":"…","messageId":"…","isUpvoted":true}"#;

// Both writes begin with the facts they decide on: the chat's owner and
// visibility and the message's role in that chat (NULL: no such message in
// it); no row: no such chat. Parameters: $1 chat id, $2 message id, $3 caller.
macro_rules! rated_message {
    () => {
        r#"WITH target AS (
  SELECT chat."userId", chat.visibility, message.role, message."traceId"
  FROM chat."Chat" AS chat
  LEFT JOIN chat."Message" AS message ON message.id = $2 AND message."chatId" = chat.id
  WHERE chat.id = $1
)"#
    };
}

/// Queues for MLflow (assessment.rs) the state a traced reply's assessment
/// should have, `$upvoted` and `$comment`, when `$condition` holds:
/// a newer revision, due at once, not refused.
macro_rules! queue_for_mlflow {
    ($upvoted:literal, $comment:literal, $email:literal, $condition:literal) => {
        concat!(
            r#", queued AS (
  INSERT INTO chat."FeedbackOutbox" ("messageId", "traceId", "userEmail", "isUpvoted", comment)
  SELECT $2, "traceId", "#,
            $email,
            ", ",
            $upvoted,
            ", ",
            $comment,
            r#" FROM target
  WHERE "userId" = $3 AND role = 'assistant' AND "traceId" IS NOT NULL"#,
            $condition,
            r#"
  ON CONFLICT ("messageId") DO UPDATE
  SET "traceId" = EXCLUDED."traceId", "userEmail" = EXCLUDED."userEmail",
      "isUpvoted" = EXCLUDED."isUpvoted", comment = EXCLUDED.comment,
      revision = chat."FeedbackOutbox".revision + 1, pending = true, attempts = 0,
      "nextAttemptAt" = CURRENT_TIMESTAMP, "lastError" = NULL, "failedAt" = NULL
)"#
        )
    };
}

/// Records the vote ($4, comment $5), replacing the message's earlier one,
/// and queues it for MLflow under the caller's email ($6). Selects, in
/// order: "userId", visibility, role.
const RATE: &str = concat!(
    rated_message!(),
    r#", voted AS (
  INSERT INTO chat."Vote" ("chatId", "messageId", "isUpvoted", comment)
  SELECT $1, $2, $4::text::boolean, $5::text FROM target
  WHERE "userId" = $3 AND role = 'assistant'
  ON CONFLICT ("chatId", "messageId")
  DO UPDATE SET "isUpvoted" = EXCLUDED."isUpvoted", comment = EXCLUDED.comment
)"#,
    queue_for_mlflow!("$4::text::boolean", "$5::text", "$6::text", ""),
    r#"
SELECT "userId", visibility, role FROM target"#
);

/// Withdraws the message's vote, and queues the assessment's removal under
/// the caller's email ($4) when there was one. Selects, in order: "userId",
/// visibility, role, whether there was a vote.
const WITHDRAW: &str = concat!(
    rated_message!(),
    r#", withdrawn AS (
  DELETE FROM chat."Vote"
  WHERE "chatId" = $1 AND "messageId" = $2
    AND EXISTS (SELECT 1 FROM target WHERE "userId" = $3 AND role = 'assistant')
  RETURNING 1
)"#,
    queue_for_mlflow!(
        "NULL::boolean",
        "NULL::text",
        "$4::text",
        " AND EXISTS (SELECT 1 FROM withdrawn)"
    ),
    r#"
SELECT "userId", visibility, role, EXISTS (SELECT 1 FROM withdrawn) FROM target"#
);

/// The chat with its votes: "userId", visibility, then a vote's
/// "messageId", "isUpvoted", comment (NULL for a chat without votes), one row
/// per vote; no row for an unknown chat.
const CHAT_VOTES: &str = r#"SELECT chat."userId", chat.visibility, vote."messageId", vote."isUpvoted", vote.comment
FROM chat."Chat" AS chat
LEFT JOIN chat."Vote" AS vote ON vote."chatId" = chat.id
WHERE chat.id = $1
ORDER BY vote."messageId""#;

/// A `PUT /api/feedback` body: exactly `chatId`, `messageId`, `isUpvoted`
/// and, optionally, `comment` (a string or null, at most
/// [`MAX_COMMENT_CHARS`] characters; blank counts as none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    pub chat_id: Uuid,
    pub message_id: Uuid,
    pub is_upvoted: bool,
    pub comment: Option<String>,
}

impl Rating {
    pub fn from_body(body: &[u8]) -> Result<Self, ApiError> {
        let mut object = JsonObject::parse(
            body,
            &[CHAT_ID, MESSAGE_ID, IS_UPVOTED, COMMENT],
            RATING_EXAMPLE,
        )?;
        let chat_id = uuid_field(&mut object, CHAT_ID)?;
        let message_id = uuid_field(&mut object, MESSAGE_ID)?;
        let Value::Bool(is_upvoted) = object.take_required(IS_UPVOTED)? else {
            return Err(ApiError::bad_request(
                "isUpvoted must be true (thumbs up) or false (thumbs down).",
            ));
        };
        let comment = match object.take(COMMENT) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => checked_comment(text)?,
            Some(_) => {
                return Err(ApiError::bad_request("comment must be a string or null."));
            }
        };
        Ok(Self {
            chat_id,
            message_id,
            is_upvoted,
            comment,
        })
    }

    /// The caller's user id and email, as the gateway gave them (the email
    /// is the assessment's source in MLflow).
    pub fn statement(&self, caller: &str, email: &str) -> Statement {
        Statement::new(
            RATE,
            vec![
                SqlParam::Uuid(self.chat_id),
                SqlParam::Uuid(self.message_id),
                SqlParam::Text(caller.to_owned()),
                SqlParam::Text(self.is_upvoted.to_string()),
                SqlParam::optional_text(self.comment.as_deref()),
                SqlParam::Text(email.to_owned()),
            ],
        )
    }
}

fn uuid_field(object: &mut JsonObject, name: &str) -> Result<Uuid, ApiError> {
    match object.take_required(name)? {
        Value::String(text) => parse_uuid(name, &text),
        _ => Err(crate::http::validate::not_a_uuid(name)),
    }
}

fn checked_comment(text: String) -> Result<Option<String>, ApiError> {
    let text = text.trim();
    if text.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::bad_request(format!(
            "comment is longer than {MAX_COMMENT_CHARS} characters; shorten it."
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad_request(
            "comment may contain line breaks and tabs but no other control characters.",
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

pub fn withdraw_statement(chat_id: Uuid, message_id: Uuid, caller: &str, email: &str) -> Statement {
    Statement::new(
        WITHDRAW,
        vec![
            SqlParam::Uuid(chat_id),
            SqlParam::Uuid(message_id),
            SqlParam::Text(caller.to_owned()),
            SqlParam::Text(email.to_owned()),
        ],
    )
}

pub fn chat_votes_statement(chat_id: Uuid) -> Statement {
    Statement::new(CHAT_VOTES, vec![SqlParam::Uuid(chat_id)])
}

/// What [`RATE`] and [`WITHDRAW`] decide on, from their row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub chat: ChatAccess,
    /// The message's role in the chat; `None`: the chat has no such message.
    pub role: Option<String>,
}

impl Target {
    pub fn from_row<R: Row>(row: &R) -> Result<Self, R::Error> {
        Ok(Self {
            chat: ChatAccess::new(row.text(0)?, &row.text(1)?),
            role: row.optional_text(2)?,
        })
    }
}

/// Whether `caller` could rate the message (`None`: no such chat): the chat
/// must be theirs, whatever its visibility, and the message one of its
/// assistant replies. Refused, the statement wrote nothing.
pub fn may_rate(target: Option<&Target>, caller: &str) -> Result<(), ApiError> {
    access::decide(target.map(|target| &target.chat), caller, ChatAction::Rate)?;
    match target.and_then(|target| target.role.as_deref()) {
        Some("assistant") => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "Only the assistant's replies can be rated, not the user's own messages.",
        )),
        None => Err(ApiError::not_found(
            "This chat has no message with that id.",
        )),
    }
}

/// Whether [`WITHDRAW`] removed a vote (its fourth column).
pub fn was_withdrawn<R: Row>(row: &R) -> Result<bool, R::Error> {
    row.boolean(3)
}

/// How long a reply's record is kept for rating it without the database.
pub const REPLY_RECORD_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Expired records are removed from the store at most this often (by the
/// first reply after it, across every instance: [`PRUNED_AT_KEY`]).
pub const REPLY_RECORD_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// When expired reply records were last removed (milliseconds, as text).
pub const PRUNED_AT_KEY: &str = "reply-records-pruned-at";
/// Prefix of every reply record's key.
pub const REPLY_PREFIX: &str = "reply/";

/// What is kept about every reply sent with a trace id, in the key-value
/// store under [`reply_key`] (and left there when the journal is replayed),
/// so that while the database is out of reach a rating can still be checked
/// (whose reply, in which chat) and logged to MLflow. Kept for
/// [`REPLY_RECORD_LIFETIME`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRecord {
    pub chat_id: Uuid,
    pub owner: String,
    pub trace_id: String,
    /// Milliseconds since the Unix epoch.
    pub kept_at: u64,
}

impl ReplyRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a reply record always serialises")
    }

    /// `None` for bytes that are no record.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// Whether the record outlived [`REPLY_RECORD_LIFETIME`] at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.kept_at) > REPLY_RECORD_LIFETIME.as_millis() as u64
    }
}

/// Where the record of a reply is kept.
pub fn reply_key(message_id: Uuid) -> String {
    format!("{REPLY_PREFIX}{message_id}")
}

/// Whether expired records are due to be removed, given the stored time of
/// the last removal (its bytes, if any).
pub fn prune_due(pruned_at: Option<&[u8]>, now_ms: u64) -> bool {
    match pruned_at.and_then(|bytes| std::str::from_utf8(bytes).ok()?.parse::<u64>().ok()) {
        Some(last) => now_ms.saturating_sub(last) >= REPLY_RECORD_PRUNE_INTERVAL.as_millis() as u64,
        None => true,
    }
}

/// Whether a stored entry under [`REPLY_PREFIX`] should go: expired, or no
/// record at all.
pub fn prunable(record: Option<&[u8]>, now_ms: u64) -> bool {
    record
        .and_then(ReplyRecord::from_bytes)
        .is_none_or(|record| record.expired(now_ms))
}

/// Whether `caller` may rate the reply while the database is out of reach,
/// from its kept record (`None`: none kept): it must be a live record of a
/// reply in the chat the rating names, and the chat the caller's. Without
/// such a record nobody can tell whose it is: 503, nothing written.
pub fn may_rate_without_database(
    record: Option<&ReplyRecord>,
    chat_id: Uuid,
    caller: &str,
    now_ms: u64,
) -> Result<(), ApiError> {
    let record = record
        .filter(|record| record.chat_id == chat_id)
        .filter(|record| !record.expired(now_ms))
        .ok_or_else(|| {
            ApiError::service_unavailable(
                "The chat history is unavailable right now, so whose reply this is cannot be \
                 checked; nothing was rated. Try again shortly.",
            )
        })?;
    if record.owner != caller {
        return Err(ApiError::forbidden(
            "This chat belongs to someone else: only its owner can rate its replies.",
        ));
    }
    Ok(())
}

/// One vote as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vote {
    #[serde(rename = "chatId")]
    pub chat_id: Uuid,
    #[serde(rename = "messageId")]
    pub message_id: Uuid,
    #[serde(rename = "isUpvoted")]
    pub is_upvoted: bool,
    pub comment: Option<String>,
}

impl From<Rating> for Vote {
    fn from(rating: Rating) -> Self {
        Self {
            chat_id: rating.chat_id,
            message_id: rating.message_id,
            is_upvoted: rating.is_upvoted,
            comment: rating.comment,
        }
    }
}

/// `{"success": true, "withdrawn": <whether there was a vote>}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Withdrawn {
    pub success: bool,
    pub withdrawn: bool,
}

/// `{"data": [votes, by message id]}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatVotes {
    pub data: Vec<Vote>,
}

/// Decodes the rows of [`chat_votes_statement`]: the facts access depends on
/// (`None`: no such chat) and the chat's votes.
pub fn chat_votes<R: Row>(
    chat_id: Uuid,
    rows: &[R],
) -> Result<(Option<ChatAccess>, ChatVotes), R::Error> {
    let Some(first) = rows.first() else {
        return Ok((None, ChatVotes { data: Vec::new() }));
    };
    let chat = ChatAccess::new(first.text(0)?, &first.text(1)?);
    let mut data = Vec::with_capacity(rows.len());
    for row in rows {
        // NULL: the one row of a chat without votes.
        if let Some(message_id) = row.optional_uuid(2)? {
            data.push(Vote {
                chat_id,
                message_id,
                is_upvoted: row.boolean(3)?,
                comment: row.optional_text(4)?,
            });
        }
    }
    Ok((Some(chat), ChatVotes { data }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::sql::fake::{FakeRow, Value as Cell};
    use serde_json::json;

    const OWNER: &str = "owner@example.com";
    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";
    const MESSAGE: &str = "223e4567-e89b-12d3-a456-426614174000";

    fn body(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn rating(extra: Value) -> Result<Rating, ApiError> {
        let mut object = json!({"chatId": CHAT, "messageId": MESSAGE, "isUpvoted": true});
        for (name, value) in extra.as_object().unwrap() {
            object[name] = value.clone();
        }
        Rating::from_body(&body(object))
    }

    #[test]
    fn a_rating_names_chat_message_and_thumb_with_an_optional_comment() {
        let plain = rating(json!({})).unwrap();
        assert_eq!(plain.chat_id.to_string(), CHAT);
        assert_eq!(plain.message_id.to_string(), MESSAGE);
        assert!(plain.is_upvoted);
        assert_eq!(plain.comment, None);
        let down = rating(json!({"isUpvoted": false, "comment": "  Too long.\n "})).unwrap();
        assert!(!down.is_upvoted);
        assert_eq!(down.comment.as_deref(), Some("Too long."));
        assert_eq!(rating(json!({"comment": "   "})).unwrap().comment, None);
        assert_eq!(rating(json!({"comment": null})).unwrap().comment, None);
        let longest = "é".repeat(MAX_COMMENT_CHARS);
        assert_eq!(
            rating(json!({"comment": longest})).unwrap().comment,
            Some(longest)
        );
    }

    #[test]
    fn bad_ratings_are_400_naming_the_field() {
        let cases = [
            (json!({"isUpvoted": "yes"}), "isUpvoted"),
            (json!({"isUpvoted": null}), "isUpvoted"),
            (json!({"chatId": "nope"}), "chatId"),
            (json!({"messageId": 7}), "messageId"),
            (json!({"comment": 5}), "comment"),
            (
                json!({"comment": "x".repeat(MAX_COMMENT_CHARS + 1)}),
                "comment",
            ),
            (json!({"comment": "bell\u{7}"}), "comment"),
            (json!({"stars": 5}), "stars"),
        ];
        for (extra, field) in cases {
            let error = rating(extra.clone()).unwrap_err();
            assert_eq!(error.status, 400, "{extra}");
            assert!(error.message.contains(field), "{extra}: {}", error.message);
        }
        let missing = Rating::from_body(&body(json!({"chatId": CHAT, "messageId": MESSAGE})));
        assert!(missing.unwrap_err().message.contains("isUpvoted"));
        assert_eq!(Rating::from_body(b"[]").unwrap_err().status, 400);
    }

    #[test]
    fn the_vote_is_written_only_for_the_owners_assistant_reply() {
        let statement = rating(json!({"comment": "Good"}))
            .unwrap()
            .statement(OWNER, "owner@mail.example");
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(Uuid::parse_str(CHAT).unwrap()),
                SqlParam::Uuid(Uuid::parse_str(MESSAGE).unwrap()),
                SqlParam::Text(OWNER.into()),
                SqlParam::Text("true".into()),
                SqlParam::Text("Good".into()),
                SqlParam::Text("owner@mail.example".into()),
            ]
        );
        assert!(
            statement
                .sql
                .contains(r#"INSERT INTO chat."FeedbackOutbox""#),
            "queued for MLflow in the same statement"
        );
        assert!(
            statement
                .sql
                .contains(r#"WHERE "userId" = $3 AND role = 'assistant'"#)
        );
        assert!(
            statement
                .sql
                .contains(r#"ON CONFLICT ("chatId", "messageId")"#)
        );
        let withdraw = withdraw_statement(Uuid::nil(), Uuid::nil(), OWNER, OWNER);
        assert!(
            withdraw
                .sql
                .contains("AND EXISTS (SELECT 1 FROM withdrawn)")
        );
        assert!(
            withdraw
                .sql
                .contains(r#"WHERE "userId" = $3 AND role = 'assistant'"#)
        );
    }

    fn target(sql: &str, owner: &'static str, role: Option<&'static str>) -> FakeRow {
        let mut values = vec![
            (r#""userId""#, Cell::Text(owner)),
            ("visibility", Cell::Text("public")),
            ("role", role.map_or(Cell::Null, Cell::Text)),
        ];
        if sql == WITHDRAW {
            values.push(("EXISTS (SELECT 1 FROM withdrawn)", Cell::Boolean(true)));
        }
        FakeRow::laid_out_by(sql, &values)
    }

    #[test]
    fn only_the_owner_rates_and_only_assistant_replies() {
        for sql in [RATE, WITHDRAW] {
            let status = |owner, role| {
                let target = Target::from_row(&target(sql, owner, role)).unwrap();
                may_rate(Some(&target), OWNER)
                    .err()
                    .map(|error| error.status)
            };
            assert_eq!(status(OWNER, Some("assistant")), None);
            assert_eq!(status(OWNER, Some("user")), Some(400));
            assert_eq!(status(OWNER, None), Some(404));
            assert_eq!(
                status("other@example.com", Some("assistant")),
                Some(403),
                "a public chat one does not own"
            );
            assert_eq!(may_rate(None, OWNER).unwrap_err().status, 404);
        }
        assert!(was_withdrawn(&target(WITHDRAW, OWNER, Some("assistant"))).unwrap());
    }

    #[test]
    fn without_the_database_only_a_live_record_of_ones_own_reply_lets_one_rate() {
        let chat = Uuid::parse_str(CHAT).unwrap();
        let record = ReplyRecord {
            chat_id: chat,
            owner: OWNER.into(),
            trace_id: "tr-1".into(),
            kept_at: 1_000,
        };
        assert_eq!(
            ReplyRecord::from_bytes(&record.to_bytes()),
            Some(record.clone())
        );
        assert_eq!(ReplyRecord::from_bytes(b"tr-1"), None);
        let lifetime = REPLY_RECORD_LIFETIME.as_millis() as u64;
        let status = |record: Option<&ReplyRecord>, chat, caller, now| {
            may_rate_without_database(record, chat, caller, now)
                .err()
                .map(|error| error.status)
        };
        assert_eq!(status(Some(&record), chat, OWNER, 2_000), None);
        assert_eq!(status(Some(&record), chat, OWNER, 1_000 + lifetime), None);
        assert_eq!(
            status(Some(&record), chat, OWNER, 1_001 + lifetime),
            Some(503),
            "expired"
        );
        assert_eq!(status(None, chat, OWNER, 2_000), Some(503));
        assert_eq!(
            status(Some(&record), Uuid::nil(), OWNER, 2_000),
            Some(503),
            "another chat"
        );
        assert_eq!(
            status(Some(&record), chat, "other@example.com", 2_000),
            Some(403)
        );
        assert_eq!(reply_key(chat), format!("reply/{CHAT}"));
    }

    #[test]
    fn expired_records_are_pruned_once_a_day() {
        let day = REPLY_RECORD_PRUNE_INTERVAL.as_millis() as u64;
        assert!(prune_due(None, 5));
        assert!(prune_due(Some(b"not a time"), 5));
        assert!(!prune_due(Some(b"1000"), 1000 + day - 1));
        assert!(prune_due(Some(b"1000"), 1000 + day));
        let record = ReplyRecord {
            chat_id: Uuid::nil(),
            owner: OWNER.into(),
            trace_id: "tr-1".into(),
            kept_at: 1_000,
        };
        let lifetime = REPLY_RECORD_LIFETIME.as_millis() as u64;
        assert!(!prunable(Some(&record.to_bytes()), 1_000 + lifetime));
        assert!(prunable(Some(&record.to_bytes()), 1_001 + lifetime));
        assert!(prunable(Some(b"garbage"), 0));
        assert!(prunable(None, 0));
    }

    #[test]
    fn a_chats_votes_decode_as_their_select_lists_them() {
        let chat = Uuid::parse_str(CHAT).unwrap();
        let message = Uuid::parse_str(MESSAGE).unwrap();
        let row = |id: Cell, up: Cell, comment: Cell| {
            FakeRow::laid_out_by(
                CHAT_VOTES,
                &[
                    (r#"chat."userId""#, Cell::Text(OWNER)),
                    ("chat.visibility", Cell::Text("private")),
                    (r#"vote."messageId""#, id),
                    (r#"vote."isUpvoted""#, up),
                    ("vote.comment", comment),
                ],
            )
        };
        let (access, votes) = chat_votes(
            chat,
            &[row(
                Cell::Uuid(message),
                Cell::Boolean(false),
                Cell::Text("Meh"),
            )],
        )
        .unwrap();
        assert_eq!(access.unwrap().owner, OWNER);
        assert_eq!(
            serde_json::to_value(&votes).unwrap(),
            json!({"data": [{"chatId": CHAT, "messageId": MESSAGE, "isUpvoted": false, "comment": "Meh"}]})
        );
        let (access, votes) = chat_votes(chat, &[row(Cell::Null, Cell::Null, Cell::Null)]).unwrap();
        assert!(access.is_some() && votes.data.is_empty());
        let (access, _) = chat_votes::<FakeRow>(chat, &[]).unwrap();
        assert!(access.is_none());
    }
}
