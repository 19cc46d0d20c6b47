//! The sidebar's chat list: query parameters, keyset pagination and the JSON
//! it answers with.
//!
//! Pages are ordered newest first by `("createdAt", id)`, so the order is total
//! and stays stable when chats share a `createdAt`. A cursor is a chat id; the
//! statements look its `("createdAt", id)` up among the caller's own chats.
//!
//! With `q`, only the chats whose title or any message's text matches are
//! listed, in the same order and pages: PostgreSQL full-text search with
//! English word stems (`websearch_to_tsquery('english', q)`: words, "quoted
//! phrases", `or`, `-excluded`), on the GIN indexes of migration 10.
//! The owner's changes to a chat (delete, share, rename) live beside it
//! (`changes`).

pub mod changes;

use crate::ApiError;
use crate::database::sql::{Row, SqlParam, Statement, split_page};
use crate::database::timestamp::UtcDateTime;
use crate::http::validate::{QueryParams, parse_limit, parse_uuid};
use crate::identity::Identity;
use crate::identity::users;
use serde::Serialize;
use uuid::Uuid;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MIN_LIMIT: u32 = 1;
pub const MAX_LIMIT: u32 = 100;

const STARTING_AFTER: &str = "starting_after";
const ENDING_BEFORE: &str = "ending_before";
const SEARCH: &str = "q";
/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

// Every page also records the caller in `chat."User"` (as the seed does on
// each history read), in the same statement: one round trip, not two. A
// cursor page records them only when the cursor is one of their chats, so a
// bad cursor changes nothing. Parameters: $1 user id, $2 email, then the
// cursor (when there is one), the search (when there is one) and the limit.
// A search has statements of its own rather than a condition that a NULL
// turns off, so the plain pages keep their plans.

macro_rules! record_caller {
    () => {
        r#"WITH recorded_caller AS (
  INSERT INTO chat."User" (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING)
"#
    };
}

/// The caller's chats. Selects, in order: id, title, "createdAt", visibility.
macro_rules! callers_chats {
    () => {
        r#"SELECT id, title, "createdAt", visibility
FROM chat."Chat"
WHERE "userId" = $1"#
    };
}

/// Decodes a row of the page statements.
pub fn chat_summary<R: Row>(row: &R) -> Result<ChatSummary, R::Error> {
    Ok(ChatSummary {
        id: row.uuid(0)?,
        title: row.text(1)?,
        created_at: row.timestamp(2)?,
        visibility: row.text(3)?,
    })
}

/// One sidebar entry, as the seed's client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatSummary {
    pub id: Uuid,
    pub title: String,
    #[serde(rename = "createdAt")]
    pub created_at: UtcDateTime,
    pub visibility: String,
}

/// Keeps the chats whose title or a message of which matches the search in
/// parameter `$search`; each side is one GIN index scan (migration 10).
macro_rules! matching {
    ($search:literal) => {
        concat!(
            r#"
  AND id IN (
    SELECT id FROM chat."Chat"
    WHERE to_tsvector('english', title) @@ websearch_to_tsquery('english', "#,
            $search,
            r#")
    UNION
    SELECT "chatId" FROM chat."Message"
    WHERE to_tsvector('english', chat.message_text(parts)) @@ websearch_to_tsquery('english', "#,
            $search,
            r#"))"#
        )
    };
}

macro_rules! newest_first {
    ($limit:literal) => {
        concat!("\nORDER BY \"createdAt\" DESC, id DESC\nLIMIT ", $limit)
    };
}

macro_rules! nearest_first {
    ($limit:literal) => {
        concat!("\nORDER BY \"createdAt\" ASC, id ASC\nLIMIT ", $limit)
    };
}

/// Newest first.
const FIRST_PAGE: &str = concat!(record_caller!(), callers_chats!(), newest_first!("$3"));
const FIRST_PAGE_MATCHING: &str = concat!(
    record_caller!(),
    callers_chats!(),
    matching!("$3"),
    newest_first!("$4")
);

macro_rules! record_caller_if_cursor_is_theirs {
    () => {
        r#"WITH recorded_caller AS (
  INSERT INTO chat."User" (id, email)
  SELECT $1, $2::text WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $3 AND "userId" = $1)
  ON CONFLICT (id) DO NOTHING)
"#
    };
}

/// Where the cursor chat ($3) sits among the caller's chats.
macro_rules! cursor_position {
    () => {
        r#"(
    SELECT anchor."createdAt", anchor.id FROM chat."Chat" AS anchor
    WHERE anchor.id = $3 AND anchor."userId" = $1)"#
    };
}

/// Chats strictly older than the cursor, newest first. A cursor that is not
/// one of the caller's chats makes the row comparison NULL: no rows.
macro_rules! older_than_cursor {
    () => {
        concat!(
            record_caller_if_cursor_is_theirs!(),
            callers_chats!(),
            "\n  AND (\"createdAt\", id) < ",
            cursor_position!()
        )
    };
}

/// Chats strictly newer than the cursor, NEAREST first (ascending), so that
/// `LIMIT` keeps the page adjacent to the cursor; [`finish_page`] drops the
/// extra farthest row and turns the page newest first.
macro_rules! newer_than_cursor {
    () => {
        concat!(
            record_caller_if_cursor_is_theirs!(),
            callers_chats!(),
            "\n  AND (\"createdAt\", id) > ",
            cursor_position!()
        )
    };
}

const OLDER_THAN_CURSOR: &str = concat!(older_than_cursor!(), newest_first!("$4"));
const NEWER_THAN_CURSOR: &str = concat!(newer_than_cursor!(), nearest_first!("$4"));
const OLDER_THAN_CURSOR_MATCHING: &str =
    concat!(older_than_cursor!(), matching!("$4"), newest_first!("$5"));
const NEWER_THAN_CURSOR_MATCHING: &str =
    concat!(newer_than_cursor!(), matching!("$4"), nearest_first!("$5"));

const CURSOR_IS_CALLERS_CHAT: &str =
    r#"SELECT EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $1 AND "userId" = $2)"#;

/// Where a page starts, relative to a chat the client already shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The page just older than this chat (the next "Load more…").
    StartingAfter(Uuid),
    /// The page just newer than this chat.
    EndingBefore(Uuid),
}

impl Cursor {
    pub fn chat_id(self) -> Uuid {
        match self {
            Cursor::StartingAfter(id) | Cursor::EndingBefore(id) => id,
        }
    }

    pub fn parameter_name(self) -> &'static str {
        match self {
            Cursor::StartingAfter(_) => STARTING_AFTER,
            Cursor::EndingBefore(_) => ENDING_BEFORE,
        }
    }

    /// Answers one boolean: whether the cursor names one of the caller's chats.
    /// Only worth running when a page came back empty, since any row proves it.
    pub fn existence_statement(self, user_id: &str) -> Statement {
        Statement::new(
            CURSOR_IS_CALLERS_CHAT,
            vec![
                SqlParam::Uuid(self.chat_id()),
                SqlParam::Text(user_id.to_owned()),
            ],
        )
    }

    /// Decodes the rows of [`Cursor::existence_statement`].
    pub fn is_known<R: Row>(rows: &[R]) -> Result<bool, R::Error> {
        rows.first().map_or(Ok(false), |row| row.boolean(0))
    }

    /// The 400 for a cursor that is not one of the caller's chats.
    pub fn unknown_error(self) -> ApiError {
        ApiError::bad_request(format!(
            "{} does not name one of your chats",
            self.parameter_name()
        ))
    }
}

/// A validated `GET /api/history` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Page size, already clamped to `MIN_LIMIT..=MAX_LIMIT`.
    pub limit: u32,
    pub cursor: Option<Cursor>,
    /// Only chats matching this text (trimmed, never empty).
    pub search: Option<String>,
}

impl HistoryQuery {
    /// Parses `limit`, `starting_after`, `ending_before` and `q`; other
    /// parameters are ignored. `limit` defaults to 20 and is clamped to
    /// 1..=100; it must be a whole number. The cursors must be UUIDs and are
    /// mutually exclusive. `q` is trimmed (blank: no search) and at most
    /// [`MAX_SEARCH_CHARS`] characters.
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let params = QueryParams::parse(query);
        let limit = match params.single("limit")? {
            Some(raw) => parse_limit(&raw, MIN_LIMIT..=MAX_LIMIT)?,
            None => DEFAULT_LIMIT,
        };
        let starting_after = params.single(STARTING_AFTER)?;
        let ending_before = params.single(ENDING_BEFORE)?;
        let cursor = match (starting_after, ending_before) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "Give {STARTING_AFTER} or {ENDING_BEFORE}, not both"
                )));
            }
            (Some(id), None) => Some(Cursor::StartingAfter(parse_uuid(STARTING_AFTER, &id)?)),
            (None, Some(id)) => Some(Cursor::EndingBefore(parse_uuid(ENDING_BEFORE, &id)?)),
            (None, None) => None,
        };
        let search = params
            .single(SEARCH)?
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty());
        if let Some(text) = &search {
            let chars = text.chars().count();
            if chars > MAX_SEARCH_CHARS {
                return Err(ApiError::bad_request(format!(
                    "{SEARCH} has {chars} characters; search with at most {MAX_SEARCH_CHARS}"
                )));
            }
        }
        Ok(Self {
            limit,
            cursor,
            search,
        })
    }

    /// The page statement, which also records the caller (400 when their
    /// identity does not fit the columns). It asks for one row more than
    /// `limit`, which tells [`finish_page`] whether more chats lie beyond
    /// the page.
    pub fn page_statement(&self, caller: &Identity) -> Result<Statement, ApiError> {
        users::check_storable(caller)?;
        let mut params = vec![
            SqlParam::Text(caller.user_id.clone()),
            SqlParam::Text(caller.email.clone()),
        ];
        if let Some(cursor) = self.cursor {
            params.push(SqlParam::Uuid(cursor.chat_id()));
        }
        if let Some(search) = &self.search {
            params.push(SqlParam::Text(search.clone()));
        }
        let searching = self.search.is_some();
        let sql = match (self.cursor, searching) {
            (None, false) => FIRST_PAGE,
            (None, true) => FIRST_PAGE_MATCHING,
            (Some(Cursor::StartingAfter(_)), false) => OLDER_THAN_CURSOR,
            (Some(Cursor::StartingAfter(_)), true) => OLDER_THAN_CURSOR_MATCHING,
            (Some(Cursor::EndingBefore(_)), false) => NEWER_THAN_CURSOR,
            (Some(Cursor::EndingBefore(_)), true) => NEWER_THAN_CURSOR_MATCHING,
        };
        params.push(SqlParam::Int64(i64::from(self.limit) + 1));
        Ok(Statement::new(sql, params))
    }
}

/// Turns the rows of [`HistoryQuery::page_statement`] into the page, newest
/// first, and whether more chats lie beyond it (older ones for the first page
/// and `starting_after`; newer ones for `ending_before`). The extra row is
/// always the one farthest from the cursor.
pub fn finish_page<T>(rows: Vec<T>, query: &HistoryQuery) -> (Vec<T>, bool) {
    let (mut rows, has_more) = split_page(rows, query.limit);
    if matches!(query.cursor, Some(Cursor::EndingBefore(_))) {
        rows.reverse();
    }
    (rows, has_more)
}

/// The `GET /api/history` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    pub data: Vec<ChatSummary>,
    #[serde(rename = "hasMore")]
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";

    fn chat_id() -> Uuid {
        Uuid::parse_str(CHAT).unwrap()
    }

    fn query(limit: u32, cursor: Option<Cursor>) -> HistoryQuery {
        HistoryQuery {
            limit,
            cursor,
            search: None,
        }
    }

    #[test]
    fn rows_of_every_page_statement_decode_as_their_select_lists_them() {
        use crate::database::sql::fake::{FakeRow, Value};
        let at = UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 0).unwrap();
        for sql in [
            FIRST_PAGE,
            OLDER_THAN_CURSOR,
            NEWER_THAN_CURSOR,
            FIRST_PAGE_MATCHING,
            OLDER_THAN_CURSOR_MATCHING,
            NEWER_THAN_CURSOR_MATCHING,
        ] {
            let row = FakeRow::laid_out_by(
                sql,
                &[
                    ("id", Value::Uuid(chat_id())),
                    ("title", Value::Text("A chat")),
                    (r#""createdAt""#, Value::Timestamp(at)),
                    ("visibility", Value::Text("private")),
                ],
            );
            let expected = ChatSummary {
                id: chat_id(),
                title: "A chat".into(),
                created_at: at,
                visibility: "private".into(),
            };
            assert_eq!(chat_summary(&row), Ok(expected));
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(
            HistoryQuery::from_query("").unwrap(),
            query(DEFAULT_LIMIT, None)
        );
        assert_eq!(
            HistoryQuery::from_query("limit=").unwrap(),
            query(DEFAULT_LIMIT, None)
        );
    }

    #[test]
    fn limit_is_clamped() {
        let cases = [
            ("0", 1),
            ("1", 1),
            ("-5", 1),
            ("37", 37),
            ("100", 100),
            ("101", 100),
            ("1000", 100),
            ("%2B7", 7),
            ("99999999999999999999999", 100),
            ("-99999999999999999999999", 1),
        ];
        for (raw, expected) in cases {
            let parsed = HistoryQuery::from_query(&format!("limit={raw}")).unwrap();
            assert_eq!(parsed.limit, expected, "limit={raw}");
        }
    }

    #[test]
    fn limit_must_be_a_whole_number() {
        for raw in ["abc", "1.5", "1e2", "%20", "ten", "0x10"] {
            let error = HistoryQuery::from_query(&format!("limit={raw}")).unwrap_err();
            assert_eq!(error.status, 400, "limit={raw}");
            assert!(error.message.starts_with("limit must be a whole number"));
        }
    }

    #[test]
    fn cursors_parse() {
        assert_eq!(
            HistoryQuery::from_query(&format!("starting_after={CHAT}&limit=5")).unwrap(),
            query(5, Some(Cursor::StartingAfter(chat_id())))
        );
        assert_eq!(
            HistoryQuery::from_query(&format!("ending_before={CHAT}")).unwrap(),
            query(DEFAULT_LIMIT, Some(Cursor::EndingBefore(chat_id())))
        );
    }

    #[test]
    fn bad_cursors_are_rejected_by_name() {
        let error = HistoryQuery::from_query("starting_after=nope").unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.starts_with("starting_after must be a UUID"));
        let error = HistoryQuery::from_query("ending_before=1").unwrap_err();
        assert!(error.message.starts_with("ending_before must be a UUID"));
    }

    #[test]
    fn both_cursors_are_rejected() {
        let error =
            HistoryQuery::from_query(&format!("starting_after={CHAT}&ending_before={CHAT}"))
                .unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("not both"));
    }

    #[test]
    fn duplicates_are_rejected_and_unknown_parameters_ignored() {
        assert_eq!(
            HistoryQuery::from_query("limit=1&limit=2")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            HistoryQuery::from_query("foo=1&foo=2&bar").unwrap(),
            query(DEFAULT_LIMIT, None)
        );
    }

    fn ada() -> Identity {
        Identity {
            user_id: "ada".into(),
            email: "ada@example.com".into(),
            name: None,
            authenticated: true,
            access_token: None,
        }
    }

    #[test]
    fn first_page_statement_records_the_caller_and_reads_limit_plus_one() {
        let statement = query(20, None).page_statement(&ada()).unwrap();
        assert_eq!(statement.sql, FIRST_PAGE);
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Text("ada".into()),
                SqlParam::Text("ada@example.com".into()),
                SqlParam::Int64(21)
            ]
        );
        assert!(statement.sql.contains(
            r#"INSERT INTO chat."User" (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING"#
        ));
        assert!(
            statement
                .sql
                .contains(r#"ORDER BY "createdAt" DESC, id DESC"#)
        );
    }

    #[test]
    fn cursor_statements_bind_user_email_cursor_and_limit_plus_one() {
        for (cursor, sql) in [
            (Cursor::StartingAfter(chat_id()), OLDER_THAN_CURSOR),
            (Cursor::EndingBefore(chat_id()), NEWER_THAN_CURSOR),
        ] {
            let statement = query(5, Some(cursor)).page_statement(&ada()).unwrap();
            assert_eq!(statement.sql, sql);
            assert_eq!(
                statement.params,
                vec![
                    SqlParam::Text("ada".into()),
                    SqlParam::Text("ada@example.com".into()),
                    SqlParam::Uuid(chat_id()),
                    SqlParam::Int64(6)
                ]
            );
            // The cursor row must belong to the caller, for the page and for
            // recording them.
            assert!(statement.sql.contains(r#"anchor."userId" = $1"#));
            assert!(statement.sql.contains(
                r#"WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $3 AND "userId" = $1)"#
            ));
        }
        assert!(OLDER_THAN_CURSOR.contains(r#"("createdAt", id) < ("#));
        assert!(NEWER_THAN_CURSOR.contains(r#"("createdAt", id) > ("#));
        assert!(NEWER_THAN_CURSOR.contains(r#"ORDER BY "createdAt" ASC, id ASC"#));
    }

    #[test]
    fn a_search_binds_its_text_before_the_limit_in_statements_of_its_own() {
        let searching = |cursor| HistoryQuery {
            search: Some("trip lisbon".into()),
            ..query(5, cursor)
        };
        let user = || {
            vec![
                SqlParam::Text("ada".into()),
                SqlParam::Text("ada@example.com".into()),
            ]
        };
        let search = SqlParam::Text("trip lisbon".into());
        let first = searching(None).page_statement(&ada()).unwrap();
        assert_eq!(first.sql, FIRST_PAGE_MATCHING);
        assert_eq!(
            first.params,
            [user(), vec![search.clone(), SqlParam::Int64(6)]].concat()
        );
        assert!(first.sql.contains("websearch_to_tsquery('english', $3)"));
        assert!(first.sql.ends_with("LIMIT $4"));
        for (cursor, sql) in [
            (Cursor::StartingAfter(chat_id()), OLDER_THAN_CURSOR_MATCHING),
            (Cursor::EndingBefore(chat_id()), NEWER_THAN_CURSOR_MATCHING),
        ] {
            let statement = searching(Some(cursor)).page_statement(&ada()).unwrap();
            assert_eq!(statement.sql, sql);
            assert_eq!(
                statement.params,
                [
                    user(),
                    vec![
                        SqlParam::Uuid(chat_id()),
                        search.clone(),
                        SqlParam::Int64(6)
                    ]
                ]
                .concat()
            );
            assert!(
                statement
                    .sql
                    .contains("websearch_to_tsquery('english', $4)")
            );
            assert!(statement.sql.ends_with("LIMIT $5"));
        }
        // Both sides of the match are the index expressions of migration 10.
        for index in crate::database::migrations::SEARCH_INDEX_EXPRESSIONS {
            assert!(FIRST_PAGE_MATCHING.contains(index), "{index}");
        }
        // Without a search the plain statements serve, plans and all.
        assert!(!FIRST_PAGE.contains("tsquery") && !OLDER_THAN_CURSOR.contains("tsquery"));
    }

    #[test]
    fn the_search_text_is_trimmed_and_bounded() {
        let parsed = |raw: &str| HistoryQuery::from_query(raw).map(|query| query.search);
        assert_eq!(
            parsed("q=+trip%20to+Lisbon+"),
            Ok(Some("trip to Lisbon".into()))
        );
        assert_eq!(parsed("q=%20%20"), Ok(None));
        assert_eq!(parsed("q="), Ok(None));
        assert_eq!(parsed("limit=5"), Ok(None));
        let longest = "\u{e9}".repeat(MAX_SEARCH_CHARS);
        assert_eq!(parsed(&format!("q={longest}")), Ok(Some(longest.clone())));
        let error = parsed(&format!("q={longest}x")).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("at most 200"), "{}", error.message);
        assert_eq!(parsed("q=a&q=b").unwrap_err().status, 400);
    }

    #[test]
    fn an_identity_the_columns_cannot_hold_is_refused_before_any_statement() {
        let long = Identity {
            email: format!("{}@x.io", "a".repeat(users::MAX_EMAIL_CHARS)),
            ..ada()
        };
        assert_eq!(
            query(20, None).page_statement(&long).unwrap_err().status,
            400
        );
    }

    #[test]
    fn descending_pages_keep_the_newest_rows() {
        // Rows as the database returns them: newest first, one extra.
        let rows = vec![9, 8, 7, 6];
        assert_eq!(
            finish_page(rows.clone(), &query(3, None)),
            (vec![9, 8, 7], true)
        );
        let after = query(3, Some(Cursor::StartingAfter(chat_id())));
        assert_eq!(finish_page(rows, &after), (vec![9, 8, 7], true));
        assert_eq!(finish_page(vec![9, 8], &after), (vec![9, 8], false));
        assert_eq!(finish_page(vec![9, 8, 7], &after), (vec![9, 8, 7], false));
    }

    #[test]
    fn ending_before_keeps_the_rows_next_to_the_cursor_newest_first() {
        // Cursor is chat 5; rows newer than it come back nearest first.
        let before = query(3, Some(Cursor::EndingBefore(chat_id())));
        assert_eq!(
            finish_page(vec![6, 7, 8, 9], &before),
            (vec![8, 7, 6], true)
        );
        assert_eq!(finish_page(vec![6, 7], &before), (vec![7, 6], false));
        assert_eq!(finish_page(Vec::<i32>::new(), &before), (vec![], false));
    }

    #[test]
    fn cursor_existence_check() {
        let cursor = Cursor::StartingAfter(chat_id());
        let statement = cursor.existence_statement("ada");
        assert_eq!(
            statement.params,
            vec![SqlParam::Uuid(chat_id()), SqlParam::Text("ada".into())]
        );
        assert_eq!(
            cursor.unknown_error().message,
            "starting_after does not name one of your chats"
        );
        assert_eq!(
            Cursor::EndingBefore(chat_id()).unknown_error().message,
            "ending_before does not name one of your chats"
        );
    }

    #[test]
    fn page_serialises_like_the_seed() {
        let page = HistoryPage {
            data: vec![ChatSummary {
                id: chat_id(),
                title: "Hello".into(),
                created_at: UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 250_000_000).unwrap(),
                visibility: "private".into(),
            }],
            has_more: false,
        };
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            serde_json::json!({
                "data": [{
                    "id": CHAT,
                    "title": "Hello",
                    "createdAt": "2024-05-01T12:00:00.250Z",
                    "visibility": "private"
                }],
                "hasMore": false
            })
        );
    }
}
