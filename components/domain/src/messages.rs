//! `GET /api/messages/:chatId`: a chat's messages, oldest first.
//!
//! Order: `"createdAt"`, then `"insertionOrder"` (migration 3), the order the
//! rows were written in. Messages written in one transaction share
//! `CURRENT_TIMESTAMP` as their `"createdAt"`, and a random UUID would order
//! such a user message and its reply by chance; insertion order keeps them as
//! they were written, and is unique, so the order is total and stable.
//!
//! A page is the newest `limit` messages (at most [`MAX_LIMIT`]), oldest
//! first; `ending_before` (a message id, the oldest the client has) pages
//! further back, so however long a chat grows, one answer stays bounded.

use crate::ApiError;
use crate::access::ChatAccess;
use crate::database::sql::{Row, SqlParam, Statement, split_page};
use crate::database::timestamp::UtcDateTime;
use crate::http::validate::{QueryParams, parse_limit, parse_uuid};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// A page holds at most this many messages, by default as many.
pub const MAX_LIMIT: u32 = 1000;
pub const MIN_LIMIT: u32 = 1;

const ENDING_BEFORE: &str = "ending_before";

// A page is read with the facts access depends on, in one statement (one
// round trip): the chat's "userId" and visibility, then a message's id,
// role, parts, "traceId", "createdAt", status and its vote's "isUpvoted" and
// comment (NULL: no vote; decoded by [`chat_page`]), one row
// per message, newest first (the page is turned oldest first by
// [`finish_page`]); a chat without (such) messages gives one row whose
// message columns are NULL, and an unknown chat no row. `parts` is a JSON
// column, which `spin:postgres` cannot return as a value (only JSONB); as
// text it comes back verbatim.

/// The chat with a page of its messages: those meeting `$condition` besides
/// being the chat's, newest first, at most `$limit` (a parameter).
macro_rules! chat_with_page {
    ($condition:literal, $limit:literal) => {
        concat!(
            r#"SELECT chat."userId", chat.visibility, page.id, page.role, page.parts, page."traceId", page."createdAt", page.status, vote."isUpvoted", vote.comment
FROM chat."Chat" AS chat
LEFT JOIN LATERAL (
  SELECT id, role, parts::text AS parts, "traceId", "createdAt", "#,
            crate::chat::conversation::reported_status!(),
            r#" AS status, "insertionOrder"
  FROM chat."Message"
  WHERE "chatId" = chat.id"#,
            $condition,
            r#"
  ORDER BY "createdAt" DESC, "insertionOrder" DESC
  LIMIT "#,
            $limit,
            r#") AS page ON true
LEFT JOIN chat."Vote" AS vote ON vote."chatId" = chat.id AND vote."messageId" = page.id
WHERE chat.id = $1
ORDER BY page."createdAt" DESC, page."insertionOrder" DESC"#
        )
    };
}

/// The chat and its newest messages.
const CHAT_WITH_NEWEST: &str = chat_with_page!("", "$2");

/// The chat and its newest messages older than the cursor, a message of
/// this chat. A cursor that is not one makes the row comparison NULL: no
/// messages.
const CHAT_WITH_OLDER_THAN_CURSOR: &str = chat_with_page!(
    r#"
    AND ("createdAt", "insertionOrder") < (
      SELECT anchor."createdAt", anchor."insertionOrder" FROM chat."Message" AS anchor
      WHERE anchor.id = $2 AND anchor."chatId" = $1)"#,
    "$3"
);

const CURSOR_IS_IN_CHAT: &str =
    r#"SELECT EXISTS (SELECT 1 FROM chat."Message" WHERE id = $2 AND "chatId" = $1)"#;

/// Where a message's columns start in the rows above.
const MESSAGE_COLUMNS_FROM: usize = 2;

/// A validated `GET /api/messages/:chatId` query: the newest `limit`
/// messages, or with `ending_before` the newest older than that message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagesQuery {
    /// Page size, already clamped to `MIN_LIMIT..=MAX_LIMIT`.
    pub limit: u32,
    /// The oldest message the client has: the page ends just before it.
    pub ending_before: Option<Uuid>,
}

impl MessagesQuery {
    /// Parses `limit` (default and maximum 1000, clamped, a whole number) and
    /// `ending_before` (a message id); other parameters are ignored.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let params = QueryParams::parse(query);
        let limit = match params.single("limit")? {
            Some(raw) => parse_limit(&raw, MIN_LIMIT..=MAX_LIMIT)?,
            None => MAX_LIMIT,
        };
        let ending_before = params
            .single(ENDING_BEFORE)?
            .map(|id| parse_uuid(ENDING_BEFORE, &id))
            .transpose()?;
        Ok(Self {
            limit,
            ending_before,
        })
    }

    /// The page statement, which also reads what access depends on. It asks
    /// for one message more than `limit`, which tells [`finish_page`]
    /// whether older messages lie beyond the page.
    pub fn chat_page_statement(&self, chat_id: Uuid) -> Statement {
        let chat = SqlParam::Uuid(chat_id);
        let limit = SqlParam::Int64(i64::from(self.limit) + 1);
        match self.ending_before {
            None => Statement::new(CHAT_WITH_NEWEST, vec![chat, limit]),
            Some(id) => Statement::new(
                CHAT_WITH_OLDER_THAN_CURSOR,
                vec![chat, SqlParam::Uuid(id), limit],
            ),
        }
    }

    /// Answers one boolean: whether the cursor is a message of the chat. Only
    /// worth running when a page came back empty, since any row proves it.
    pub fn cursor_statement(&self, chat_id: Uuid) -> Option<Statement> {
        self.ending_before.map(|id| {
            Statement::new(
                CURSOR_IS_IN_CHAT,
                vec![SqlParam::Uuid(chat_id), SqlParam::Uuid(id)],
            )
        })
    }

    /// Decodes the rows of [`MessagesQuery::cursor_statement`].
    pub fn cursor_is_known<R: Row>(rows: &[R]) -> Result<bool, R::Error> {
        rows.first().map_or(Ok(false), |row| row.boolean(0))
    }

    /// The 400 for a cursor that is not a message of the chat.
    pub fn unknown_cursor_error() -> ApiError {
        ApiError::bad_request(format!(
            "{ENDING_BEFORE} does not name a message of this chat"
        ))
    }
}

/// Turns the messages of [`MessagesQuery::chat_page_statement`] (newest first, one
/// more than the limit when there is more) into the page, oldest first, and
/// whether older messages lie beyond it.
pub fn finish_page<T>(rows: Vec<T>, query: &MessagesQuery) -> (Vec<T>, bool) {
    let (mut rows, has_more) = split_page(rows, query.limit);
    rows.reverse();
    (rows, has_more)
}

/// Decodes the rows of [`MessagesQuery::chat_page_statement`]: the facts
/// access depends on (`None`: no such chat) and the messages, newest first.
pub fn chat_page<R: Row>(rows: &[R]) -> Result<(Option<ChatAccess>, Vec<MessageView>), R::Error> {
    let Some(first) = rows.first() else {
        return Ok((None, Vec::new()));
    };
    let chat = ChatAccess::new(first.text(0)?, &first.text(1)?);
    let mut messages = Vec::with_capacity(rows.len());
    for row in rows {
        // NULL: the one row of a chat without (such) messages.
        if let Some(id) = row.optional_uuid(MESSAGE_COLUMNS_FROM)? {
            messages.push(message_view(row, id)?);
        }
    }
    Ok((Some(chat), messages))
}

fn message_view<R: Row>(row: &R, id: Uuid) -> Result<MessageView, R::Error> {
    let column = |n| MESSAGE_COLUMNS_FROM + n;
    Ok(MessageView {
        id,
        role: row.text(column(1))?,
        parts: row.json_text(column(2))?,
        trace_id: row.optional_text(column(3))?,
        created_at: row.timestamp(column(4))?,
        status: row.text(column(5))?,
        vote: match row.optional_boolean(column(6))? {
            Some(is_upvoted) => Some(MessageVote {
                is_upvoted,
                comment: row.optional_text(column(7))?,
            }),
            None => None,
        },
    })
}

/// One message as the seed's client reads it.
#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: Uuid,
    pub role: String,
    /// The stored JSON, passed through unchanged.
    pub parts: Box<RawValue>,
    #[serde(rename = "traceId")]
    pub trace_id: Option<String>,
    #[serde(rename = "createdAt")]
    pub created_at: UtcDateTime,
    /// How much of the reply the message holds, as stored: `complete`,
    /// `incomplete`, `error`, `stopped` or `streaming` (a user's message is
    /// `complete`). Not in the seed; its client ignores it.
    pub status: String,
    /// The owner's rating of this reply, if any (not in the seed).
    pub vote: Option<MessageVote>,
}

/// A rating as a message carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageVote {
    #[serde(rename = "isUpvoted")]
    pub is_upvoted: bool,
    pub comment: Option<String>,
}

/// Where the messages came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessagesSource {
    /// The database.
    Live,
    /// Nothing: the database could not be reached (the seed's wording).
    Mock,
}

/// The `GET /api/messages/:chatId` answer.
#[derive(Debug, Serialize)]
pub struct MessagesPage {
    pub data: Vec<MessageView>,
    pub source: MessagesSource,
    /// Whether older messages lie beyond the page: ask again with
    /// `ending_before` set to the first message's id.
    #[serde(rename = "hasMore")]
    pub has_more: bool,
}

impl MessagesPage {
    pub fn live(data: Vec<MessageView>, has_more: bool) -> Self {
        Self {
            data,
            source: MessagesSource::Live,
            has_more,
        }
    }

    /// The answer while the database is out of reach: no messages, marked as
    /// such, so the client keeps working in ephemeral mode.
    pub fn database_unreachable() -> Self {
        Self {
            data: Vec::new(),
            source: MessagesSource::Mock,
            has_more: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";

    fn chat() -> Uuid {
        Uuid::parse_str(CHAT).unwrap()
    }

    #[test]
    fn the_default_page_is_the_newest_thousand() {
        let query = MessagesQuery::from_query("").unwrap();
        assert_eq!(
            query,
            MessagesQuery {
                limit: MAX_LIMIT,
                ending_before: None
            }
        );
        let statement = query.chat_page_statement(chat());
        assert_eq!(statement.sql, CHAT_WITH_NEWEST);
        assert_eq!(
            statement.params,
            vec![SqlParam::Uuid(chat()), SqlParam::Int64(1001)]
        );
        assert!(CHAT_WITH_NEWEST.contains("LIMIT $2) AS page"));
        assert!(CHAT_WITH_OLDER_THAN_CURSOR.contains("LIMIT $3) AS page"));
        for sql in [CHAT_WITH_NEWEST, CHAT_WITH_OLDER_THAN_CURSOR] {
            assert!(sql.contains(r#"ORDER BY "createdAt" DESC, "insertionOrder" DESC"#));
            assert!(sql.contains(r#"ORDER BY page."createdAt" DESC, page."insertionOrder" DESC"#));
        }
        assert_eq!(query.cursor_statement(chat()), None);
    }

    #[test]
    fn limit_is_clamped_and_the_cursor_is_a_message_id() {
        for (raw, expected) in [
            ("0", 1),
            ("5", 5),
            ("1000", 1000),
            ("1001", 1000),
            ("99999999999999999999", 1000),
        ] {
            let query = MessagesQuery::from_query(&format!("limit={raw}")).unwrap();
            assert_eq!(query.limit, expected, "limit={raw}");
        }
        let message = Uuid::from_u128(7);
        let query = MessagesQuery::from_query(&format!("ending_before={message}&limit=2")).unwrap();
        let statement = query.chat_page_statement(chat());
        assert_eq!(statement.sql, CHAT_WITH_OLDER_THAN_CURSOR);
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(chat()),
                SqlParam::Uuid(message),
                SqlParam::Int64(3)
            ]
        );
        let check = query.cursor_statement(chat()).unwrap();
        assert_eq!(
            check.params,
            vec![SqlParam::Uuid(chat()), SqlParam::Uuid(message)]
        );
        for bad in [
            "limit=ten",
            "ending_before=7",
            "ending_before=a&ending_before=b",
        ] {
            assert_eq!(
                MessagesQuery::from_query(bad).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_page_is_turned_oldest_first_and_knows_whether_older_ones_remain() {
        let query = MessagesQuery {
            limit: 2,
            ending_before: None,
        };
        assert_eq!(finish_page(vec![5, 4, 3], &query), (vec![4, 5], true));
        assert_eq!(finish_page(vec![5, 4], &query), (vec![4, 5], false));
        assert_eq!(finish_page(Vec::<u8>::new(), &query), (vec![], false));
    }

    #[test]
    fn rows_of_both_page_statements_decode_as_their_select_lists_them() {
        use crate::access::Visibility;
        use crate::database::sql::fake::{FakeRow, Value};
        let at = UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 0).unwrap();
        let message = Uuid::from_u128(9);
        for sql in [CHAT_WITH_NEWEST, CHAT_WITH_OLDER_THAN_CURSOR] {
            let row = |id: Value, role, parts, trace, created_at, status, up: Value| {
                FakeRow::laid_out_by(
                    sql,
                    &[
                        (r#"chat."userId""#, Value::Text("ada")),
                        ("chat.visibility", Value::Text("public")),
                        ("page.id", id),
                        ("page.role", role),
                        ("page.parts", parts),
                        (r#"page."traceId""#, trace),
                        (r#"page."createdAt""#, created_at),
                        ("page.status", status),
                        (r#"vote."isUpvoted""#, up.clone()),
                        (
                            "vote.comment",
                            if matches!(up, Value::Null) {
                                Value::Null
                            } else {
                                Value::Text("Clear")
                            },
                        ),
                    ],
                )
            };
            let with_message = row(
                Value::Uuid(message),
                Value::Text("assistant"),
                Value::Text(r#"[{"type":"text","text":"hi"}]"#),
                Value::Text("tr-1"),
                Value::Timestamp(at),
                Value::Text("incomplete"),
                Value::Boolean(false),
            );
            let (chat, messages) = chat_page(&[with_message]).unwrap();
            let chat = chat.unwrap();
            assert_eq!(
                (chat.owner.as_str(), chat.visibility),
                ("ada", Visibility::Public)
            );
            let [message_read] = &messages[..] else {
                panic!("one message: {messages:?}")
            };
            assert_eq!(message_read.id, message);
            assert_eq!(message_read.role, "assistant");
            assert_eq!(message_read.parts.get(), r#"[{"type":"text","text":"hi"}]"#);
            assert_eq!(message_read.trace_id.as_deref(), Some("tr-1"));
            assert_eq!(message_read.created_at, at);
            assert_eq!(message_read.status, "incomplete");
            assert_eq!(
                message_read.vote,
                Some(MessageVote {
                    is_upvoted: false,
                    comment: Some("Clear".into())
                })
            );

            let without_messages = row(
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            );
            let (chat, messages) = chat_page(&[without_messages]).unwrap();
            assert!(chat.is_some());
            assert!(messages.is_empty());
        }
        let (chat, messages) = chat_page::<FakeRow>(&[]).unwrap();
        assert!(
            chat.is_none() && messages.is_empty(),
            "no row: no such chat"
        );
    }

    #[test]
    fn live_page_serialises_like_the_seed_with_each_status() {
        let page = MessagesPage::live(
            vec![MessageView {
                id: Uuid::parse_str(CHAT).unwrap(),
                role: "assistant".into(),
                parts: RawValue::from_string(r#"[{"type": "text", "text": "hi"}]"#.into()).unwrap(),
                trace_id: Some("tr-1".into()),
                created_at: UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 0).unwrap(),
                status: "complete".into(),
                vote: Some(MessageVote {
                    is_upvoted: true,
                    comment: None,
                }),
            }],
            true,
        );
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            json!({
                "data": [{
                    "id": CHAT,
                    "role": "assistant",
                    "parts": [{"type": "text", "text": "hi"}],
                    "traceId": "tr-1",
                    "createdAt": "2024-05-01T12:00:00.000Z",
                    "status": "complete",
                    "vote": {"isUpvoted": true, "comment": null}
                }],
                "source": "live",
                "hasMore": true
            })
        );
    }

    #[test]
    fn a_missing_trace_id_is_null() {
        let message = MessageView {
            id: Uuid::parse_str(CHAT).unwrap(),
            role: "user".into(),
            parts: RawValue::from_string("[]".into()).unwrap(),
            trace_id: None,
            created_at: UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 0).unwrap(),
            status: "complete".into(),
            vote: None,
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["traceId"], serde_json::Value::Null);
        assert_eq!(json["vote"], serde_json::Value::Null);
    }

    #[test]
    fn the_unreachable_answer_is_an_empty_mock() {
        assert_eq!(
            serde_json::to_value(MessagesPage::database_unreachable()).unwrap(),
            json!({"data": [], "source": "mock", "hasMore": false})
        );
    }
}
