//! The sidebar's chat list: query parameters, keyset pagination and the JSON
//! it answers with.
//!
//! Pages list chats by recent activity: `("lastActivityAt", id)`, newest
//! first, so continuing an old chat brings it to the top and the order is
//! total. Each listed chat carries its `cursor`, its sort key as it was
//! listed (`<microseconds since 1970>.<id>`): a page that starts after a
//! cursor starts there even if that chat moved since, so a chat that moves
//! to the top while a client pages is not listed twice, and every chat that
//! did not move is listed exactly once. A bare chat id is a cursor too (the
//! seed's clients send those): the page starts where that chat is now.
//!
//! What a page lists: the main list is the chats in no folder, not pinned
//! and not archived; its first page also carries every pinned chat
//! (`pinned`, at most [`MAX_PINNED`], so pins never page). `folder=<id>`
//! lists that folder's chats that are not pinned; `archived=only` the
//! archived chats (archiving unpins); `archived=include` every chat,
//! wherever it is. With `q`, only the chats whose title
//! or any message's text matches are listed, wherever they are (pinned or
//! in a folder; archived ones with `archived=include` or `only`), in the
//! same order and pages: PostgreSQL full-text search with English word
//! stems (`websearch_to_tsquery('english', q)`: words, "quoted phrases",
//! `or`, `-excluded`), on the GIN indexes of migration 10.
//!
//! The owner's changes to a chat (delete, share, rename, pin, archive, file
//! in a folder) live beside it (`changes`), and the folders themselves in
//! `folders`.

pub mod changes;
pub mod folders;
pub mod retention;

use crate::ApiError;
use crate::database::migrations::SEARCH_INDEX_EXPRESSIONS;
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
/// The most chats one user may pin: all of them come with the first page.
pub const MAX_PINNED: u32 = 50;

const STARTING_AFTER: &str = "starting_after";
const ENDING_BEFORE: &str = "ending_before";
const SEARCH: &str = "q";
const FOLDER: &str = "folder";
const ARCHIVED: &str = "archived";
/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// Every page also records the caller in `chat."User"` (as the seed does on
/// each history read), in the same statement: one round trip, not two.
const RECORD_CALLER: &str = r#"WITH recorded_caller AS (
  INSERT INTO chat."User" (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING)
"#;

/// A page that names rows of the caller's (a cursor's chat, a folder)
/// records the caller only when each of them is theirs (`theirs`: one
/// condition per row), so a page refused for naming someone else's changes
/// nothing.
fn record_caller(theirs: &[String]) -> String {
    if theirs.is_empty() {
        return RECORD_CALLER.to_owned();
    }
    format!(
        r#"WITH recorded_caller AS (
  INSERT INTO chat."User" (id, email)
  SELECT $1, $2::text WHERE {}
  ON CONFLICT (id) DO NOTHING)
"#,
        theirs.join(" AND ")
    )
}

/// The caller's chats. Selects, in order: id, title, "createdAt",
/// visibility, "lastActivityAt", whether pinned, whether archived,
/// "folderId" ([`chat_summary`] decodes them).
const CALLERS_CHATS: &str = r#"SELECT id, title, "createdAt", visibility, "lastActivityAt", "pinnedAt" IS NOT NULL, "archivedAt" IS NOT NULL, "folderId"
FROM chat."Chat"
WHERE "userId" = $1"#;

/// Decodes a row of the page statements.
pub fn chat_summary<R: Row>(row: &R) -> Result<ChatSummary, R::Error> {
    let id = row.uuid(0)?;
    let last_activity_at = row.timestamp(4)?;
    Ok(ChatSummary {
        id,
        title: row.text(1)?,
        created_at: row.timestamp(2)?,
        visibility: row.text(3)?,
        last_activity_at,
        pinned: row.boolean(5)?,
        archived: row.boolean(6)?,
        folder_id: row.optional_uuid(7)?,
        cursor: SortKey {
            activity_micros: last_activity_at.unix_micros(),
            id,
        }
        .token(),
    })
}

/// One sidebar entry: the seed's fields, then ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    pub id: Uuid,
    pub title: String,
    pub created_at: UtcDateTime,
    pub visibility: String,
    pub last_activity_at: UtcDateTime,
    pub pinned: bool,
    pub archived: bool,
    pub folder_id: Option<Uuid>,
    /// Where this chat sat when listed, for `starting_after` or
    /// `ending_before`.
    pub cursor: String,
}

/// Keeps the chats whose title or a message of which matches the search in
/// parameter `search`; each side is one GIN index scan (migration 10).
fn matching(search: &str) -> String {
    let [title, message] = SEARCH_INDEX_EXPRESSIONS;
    format!(
        r#"
  AND id IN (
    SELECT id FROM chat."Chat"
    WHERE {title} @@ websearch_to_tsquery('english', {search})
    UNION
    SELECT "chatId" FROM chat."Message"
    WHERE {message} @@ websearch_to_tsquery('english', {search}))"#,
    )
}

const NEWEST_FIRST: &str = r#"
ORDER BY "lastActivityAt" DESC, id DESC"#;
const NEAREST_FIRST: &str = r#"
ORDER BY "lastActivityAt" ASC, id ASC"#;

/// A chat's place in the order: when it was last active, then its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    activity_micros: i64,
    id: Uuid,
}

impl SortKey {
    /// The cursor a page gives for the chat: `<micros>.<id>`.
    fn token(self) -> String {
        format!("{}.{}", self.activity_micros, self.id)
    }

    fn parse(token: &str) -> Option<Self> {
        let (micros, id) = token.split_once('.')?;
        Some(Self {
            activity_micros: micros
                .parse()
                .ok()
                .filter(|micros| CURSOR_MICROS.contains(micros))?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The times a cursor may name, in microseconds since 1970: the years 1 to
/// 9999, where every stored time lies. PostgreSQL cannot seek from much
/// further out (the page's statement fails with "interval out of range",
/// a 500), so a cursor beyond them is no cursor a page gave (400).
const CURSOR_MICROS: std::ops::RangeInclusive<i64> =
    -62_135_596_800_000_000..=253_402_300_799_999_999;

/// Where a page starts: a chat's place as a page listed it (its `cursor`),
/// or a bare chat id (the chat's place now; the seed's clients send these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Listed(SortKey),
    Chat(Uuid),
}

/// Where a page starts, relative to a chat the client already shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The page just older than this chat (the next "Load more…").
    StartingAfter(Position),
    /// The page just newer than this chat.
    EndingBefore(Position),
}

const CURSOR_IS_CALLERS_CHAT: &str =
    r#"SELECT EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $1 AND "userId" = $2)"#;

impl Cursor {
    fn position(self) -> Position {
        match self {
            Cursor::StartingAfter(position) | Cursor::EndingBefore(position) => position,
        }
    }

    /// The chat a bare-id cursor names, which must be the caller's.
    pub fn named_chat(self) -> Option<Uuid> {
        match self.position() {
            Position::Chat(id) => Some(id),
            Position::Listed(_) => None,
        }
    }

    pub fn parameter_name(self) -> &'static str {
        match self {
            Cursor::StartingAfter(_) => STARTING_AFTER,
            Cursor::EndingBefore(_) => ENDING_BEFORE,
        }
    }

    fn parse(name: &str, raw: &str) -> Result<Position, ApiError> {
        if let Some(key) = SortKey::parse(raw) {
            return Ok(Position::Listed(key));
        }
        parse_uuid(name, raw).map(Position::Chat).map_err(|_| {
            ApiError::bad_request(format!(
                "{name} must be a chat's id or the cursor a page gave for it"
            ))
        })
    }

    /// Answers one boolean: whether the chat a bare-id cursor names is one of
    /// the caller's. Only worth running when a page came back empty, since
    /// any row proves it.
    pub fn existence_statement(chat: Uuid, user_id: &str) -> Statement {
        Statement::new(
            CURSOR_IS_CALLERS_CHAT,
            vec![SqlParam::Uuid(chat), SqlParam::Text(user_id.to_owned())],
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

/// Which chats a page lists by whether they are archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// Only chats not archived (the default).
    Exclude,
    /// Only archived chats (the "Archived" view).
    Only,
    /// Both, and wherever they are: every chat of the caller's (or, with
    /// a search, every match).
    Include,
}

/// A validated `GET /api/history` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Page size, already clamped to `MIN_LIMIT..=MAX_LIMIT`.
    pub limit: u32,
    pub cursor: Option<Cursor>,
    /// Only chats matching this text (trimmed, never empty).
    pub search: Option<String>,
    /// Only the chats filed in this folder.
    pub folder: Option<Uuid>,
    pub archived: Archived,
}

/// A statement's text as it is assembled, and its parameters.
struct Assembly {
    sql: String,
    params: Vec<SqlParam>,
}

impl Assembly {
    /// Adds a parameter and answers its placeholder.
    fn bind(&mut self, param: SqlParam) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }
}

impl HistoryQuery {
    /// Parses `limit`, `starting_after`, `ending_before`, `q`, `folder` and
    /// `archived`; other parameters are ignored. `limit` defaults to 20 and
    /// is clamped to 1..=100; it must be a whole number. A cursor is a
    /// chat's id or the `cursor` a page gave; the two are mutually
    /// exclusive. `q` is trimmed (blank: no search), at most
    /// [`MAX_SEARCH_CHARS`] characters and without NUL. `folder` is a
    /// folder's id; `archived` is `exclude` (the default), `only` or
    /// `include`.
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
            (Some(raw), None) => Some(Cursor::StartingAfter(Cursor::parse(STARTING_AFTER, &raw)?)),
            (None, Some(raw)) => Some(Cursor::EndingBefore(Cursor::parse(ENDING_BEFORE, &raw)?)),
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
            // PostgreSQL's text cannot hold it: the search would fail (500).
            if text.contains('\0') {
                return Err(ApiError::bad_request(format!(
                    "{SEARCH} holds a NUL character, which no chat's text can contain"
                )));
            }
        }
        let folder = params
            .single(FOLDER)?
            .map(|raw| parse_uuid(FOLDER, &raw))
            .transpose()?;
        let archived = match params.single(ARCHIVED)?.as_deref() {
            None | Some("exclude") => Archived::Exclude,
            Some("only") => Archived::Only,
            Some("include") => Archived::Include,
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "{ARCHIVED} must be exclude, only or include"
                )));
            }
        };
        Ok(Self {
            limit,
            cursor,
            search,
            folder,
            archived,
        })
    }

    /// Whether the page is the main list's first, which carries the pins.
    pub fn lists_pinned(&self) -> bool {
        self.cursor.is_none()
            && self.search.is_none()
            && self.folder.is_none()
            && self.archived == Archived::Exclude
    }

    /// Whether the page lists one place of the sidebar (the main list or a
    /// folder), which pinned chats are never in, rather than a search, the
    /// archive or every chat (`archived=include`), which look everywhere.
    fn lists_a_place(&self) -> bool {
        self.search.is_none() && self.archived == Archived::Exclude
    }

    /// The page statement, which also records the caller (400 when their
    /// identity does not fit the columns). It asks for one row more than
    /// `limit`, which tells [`finish_page`] whether more chats lie beyond
    /// the page; the main list's first page asks for the pins as well.
    pub fn page_statement(&self, caller: &Identity) -> Result<Statement, ApiError> {
        users::check_storable(caller)?;
        let mut statement = Assembly {
            sql: String::new(),
            params: vec![
                SqlParam::Text(caller.user_id.clone()),
                SqlParam::Text(caller.email.clone()),
            ],
        };
        let mut conditions = String::new();
        let mut theirs = Vec::new();
        match self.cursor.map(Cursor::position) {
            None => {}
            Some(Position::Chat(id)) => {
                let chat = statement.bind(SqlParam::Uuid(id));
                theirs.push(format!(
                    r#"EXISTS (SELECT 1 FROM chat."Chat" WHERE id = {chat} AND "userId" = $1)"#
                ));
                conditions.push_str(&format!(
                    r#"
  AND ("lastActivityAt", id) {} (
    SELECT anchor."lastActivityAt", anchor.id FROM chat."Chat" AS anchor
    WHERE anchor.id = {chat} AND anchor."userId" = $1)"#,
                    self.seek_operator()
                ));
            }
            Some(Position::Listed(key)) => {
                let micros = statement.bind(SqlParam::Int64(key.activity_micros));
                let id = statement.bind(SqlParam::Uuid(key.id));
                conditions.push_str(&format!(
                    r#"
  AND ("lastActivityAt", id) {} (TIMESTAMP 'epoch' + {micros}::bigint::float8 * interval '1 microsecond', {id})"#,
                    self.seek_operator()
                ));
            }
        }
        conditions.push_str(match self.archived {
            Archived::Exclude => {
                r#"
  AND "archivedAt" IS NULL"#
            }
            Archived::Only => {
                r#"
  AND "archivedAt" IS NOT NULL"#
            }
            Archived::Include => "",
        });
        match self.folder {
            Some(folder) => {
                let folder = statement.bind(SqlParam::Uuid(folder));
                theirs.push(format!(
                    r#"EXISTS (SELECT 1 FROM chat."Folder" WHERE id = {folder} AND "userId" = $1)"#
                ));
                conditions.push_str(&format!(
                    r#"
  AND "folderId" = {folder}"#
                ));
            }
            None if self.lists_a_place() => conditions.push_str(
                r#"
  AND "folderId" IS NULL"#,
            ),
            None => {}
        }
        if self.lists_a_place() {
            conditions.push_str(
                r#"
  AND "pinnedAt" IS NULL"#,
            );
        }
        if let Some(search) = &self.search {
            let search = statement.bind(SqlParam::Text(search.clone()));
            conditions.push_str(&matching(&search));
        }
        let limit = statement.bind(SqlParam::Int64(i64::from(self.limit) + 1));
        let order = match self.cursor {
            Some(Cursor::EndingBefore(_)) => NEAREST_FIRST,
            _ => NEWEST_FIRST,
        };
        let page = format!("{CALLERS_CHATS}{conditions}{order}\nLIMIT {limit}");
        statement.sql.push_str(&record_caller(&theirs));
        if self.lists_pinned() {
            statement.sql.push_str(&format!(
                r#"({CALLERS_CHATS}
  AND "pinnedAt" IS NOT NULL AND "archivedAt" IS NULL{NEWEST_FIRST}
LIMIT {MAX_PINNED})
UNION ALL
({page})"#
            ));
        } else {
            statement.sql.push_str(&page);
        }
        Ok(Statement::new(statement.sql, statement.params))
    }

    /// Older chats sort below the cursor's key, newer ones above.
    fn seek_operator(&self) -> &'static str {
        match self.cursor {
            Some(Cursor::EndingBefore(_)) => ">",
            _ => "<",
        }
    }
}

/// Turns the rows of [`HistoryQuery::page_statement`] into the page, newest
/// first: the pins apart (on the main list's first page), and whether more
/// chats lie beyond the page (older ones for the first page and
/// `starting_after`; newer ones for `ending_before`). The extra row is
/// always the one farthest from the cursor.
pub fn finish_page(rows: Vec<ChatSummary>, query: &HistoryQuery) -> HistoryPage {
    let (pinned, rows) = if query.lists_pinned() {
        // The two parts of the statement's UNION, each put in order here:
        // a UNION promises no order of its own.
        let (mut pinned, mut rows): (Vec<_>, Vec<_>) =
            rows.into_iter().partition(|chat| chat.pinned);
        for part in [&mut pinned, &mut rows] {
            part.sort_by_key(|chat| std::cmp::Reverse((chat.last_activity_at, chat.id)));
        }
        (pinned, rows)
    } else {
        (Vec::new(), rows)
    };
    let (mut data, has_more) = split_page(rows, query.limit);
    if matches!(query.cursor, Some(Cursor::EndingBefore(_))) {
        data.reverse();
    }
    HistoryPage {
        data,
        has_more,
        pinned,
    }
}

/// The `GET /api/history` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPage {
    pub data: Vec<ChatSummary>,
    #[serde(rename = "hasMore")]
    pub has_more: bool,
    /// Every pinned chat, on the main list's first page only (absent when
    /// there is none, so such a page is the seed's shape exactly).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pinned: Vec<ChatSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";
    const FOLDER_ID: &str = "0b5c6d1e-8f3a-4c2b-9d7e-1a2b3c4d5e6f";

    fn chat_id() -> Uuid {
        Uuid::parse_str(CHAT).unwrap()
    }

    fn folder_id() -> Uuid {
        Uuid::parse_str(FOLDER_ID).unwrap()
    }

    fn query(limit: u32, cursor: Option<Cursor>) -> HistoryQuery {
        HistoryQuery {
            limit,
            cursor,
            search: None,
            folder: None,
            archived: Archived::Exclude,
        }
    }

    fn key() -> SortKey {
        SortKey {
            activity_micros: 1_735_628_889_123_456,
            id: chat_id(),
        }
    }

    fn at() -> UtcDateTime {
        UtcDateTime::from_parts(2024, 12, 31, 7, 8, 9, 123_456_000).unwrap()
    }

    fn summary(id: u128, micros_after: i64, pinned: bool) -> ChatSummary {
        let id = Uuid::from_u128(id);
        let at = UtcDateTime::from_unix_millis(1_000_000 + micros_after as u64);
        ChatSummary {
            id,
            title: "t".into(),
            created_at: at,
            visibility: "private".into(),
            last_activity_at: at,
            pinned,
            archived: false,
            folder_id: None,
            cursor: SortKey {
                activity_micros: at.unix_micros(),
                id,
            }
            .token(),
        }
    }

    #[test]
    fn rows_decode_as_the_select_lists_them_with_their_cursor() {
        use crate::database::sql::fake::{FakeRow, Value};
        let row = FakeRow::laid_out_by(
            CALLERS_CHATS,
            &[
                ("id", Value::Uuid(chat_id())),
                ("title", Value::Text("A chat")),
                (r#""createdAt""#, Value::Timestamp(at())),
                ("visibility", Value::Text("private")),
                (r#""lastActivityAt""#, Value::Timestamp(at())),
                (r#""pinnedAt" IS NOT NULL"#, Value::Boolean(true)),
                (r#""archivedAt" IS NOT NULL"#, Value::Boolean(false)),
                (r#""folderId""#, Value::Uuid(folder_id())),
            ],
        );
        let decoded = chat_summary(&row).unwrap();
        assert_eq!(
            decoded,
            ChatSummary {
                id: chat_id(),
                title: "A chat".into(),
                created_at: at(),
                visibility: "private".into(),
                last_activity_at: at(),
                pinned: true,
                archived: false,
                folder_id: Some(folder_id()),
                cursor: format!("1735628889123456.{CHAT}"),
            }
        );
        // A page's cursor is a cursor the next request may give.
        assert_eq!(
            HistoryQuery::from_query(&format!("starting_after={}", decoded.cursor))
                .unwrap()
                .cursor,
            Some(Cursor::StartingAfter(Position::Listed(key())))
        );
        // Every page statement selects these columns, pins and all.
        for query in [
            query(20, None),
            query(20, Some(Cursor::StartingAfter(Position::Chat(chat_id())))),
            HistoryQuery {
                search: Some("x".into()),
                ..query(20, Some(Cursor::EndingBefore(Position::Listed(key()))))
            },
        ] {
            let statement = query.page_statement(&ada()).unwrap();
            assert!(statement.sql.contains(CALLERS_CHATS), "{}", statement.sql);
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
    fn cursors_are_chat_ids_or_listed_places() {
        assert_eq!(
            HistoryQuery::from_query(&format!("starting_after={CHAT}&limit=5")).unwrap(),
            query(5, Some(Cursor::StartingAfter(Position::Chat(chat_id()))))
        );
        assert_eq!(
            HistoryQuery::from_query(&format!("ending_before={CHAT}")).unwrap(),
            query(
                DEFAULT_LIMIT,
                Some(Cursor::EndingBefore(Position::Chat(chat_id())))
            )
        );
        let before_1970 = format!("ending_before=-5.{CHAT}");
        assert_eq!(
            HistoryQuery::from_query(&before_1970).unwrap().cursor,
            Some(Cursor::EndingBefore(Position::Listed(SortKey {
                activity_micros: -5,
                id: chat_id()
            })))
        );
    }

    #[test]
    fn bad_cursors_are_rejected_by_name() {
        for raw in [
            "nope",
            "1",
            "1.",
            format!(".{CHAT}").as_str(),
            format!("1.5.{CHAT}").as_str(),
            format!("x.{CHAT}").as_str(),
        ] {
            let error = HistoryQuery::from_query(&format!("starting_after={raw}")).unwrap_err();
            assert_eq!(error.status, 400, "{raw}");
            assert_eq!(
                error.message,
                "starting_after must be a chat's id or the cursor a page gave for it",
                "{raw}"
            );
        }
        let error = HistoryQuery::from_query("ending_before=1").unwrap_err();
        assert!(error.message.starts_with("ending_before must be"));
    }

    #[test]
    fn cursors_name_times_from_year_1_to_9999() {
        let first = UtcDateTime::from_parts(1, 1, 1, 0, 0, 0, 0).unwrap();
        let last = UtcDateTime::from_parts(9999, 12, 31, 23, 59, 59, 999_999_999).unwrap();
        assert_eq!(CURSOR_MICROS, first.unix_micros()..=last.unix_micros());
        for micros in [*CURSOR_MICROS.start(), *CURSOR_MICROS.end()] {
            let cursor = HistoryQuery::from_query(&format!("starting_after={micros}.{CHAT}"));
            assert!(cursor.is_ok(), "{micros}");
        }
        for micros in [
            CURSOR_MICROS.start() - 1,
            CURSOR_MICROS.end() + 1,
            i64::MIN,
            i64::MAX,
        ] {
            let error =
                HistoryQuery::from_query(&format!("starting_after={micros}.{CHAT}")).unwrap_err();
            assert_eq!(error.status, 400, "{micros}");
        }
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
    fn folder_and_archive_filters_parse() {
        let parsed =
            HistoryQuery::from_query(&format!("folder={FOLDER_ID}&archived=include")).unwrap();
        assert_eq!(parsed.folder, Some(folder_id()));
        assert_eq!(parsed.archived, Archived::Include);
        assert_eq!(
            HistoryQuery::from_query("archived=only").unwrap().archived,
            Archived::Only
        );
        assert_eq!(
            HistoryQuery::from_query("archived=exclude")
                .unwrap()
                .archived,
            Archived::Exclude
        );
        let error = HistoryQuery::from_query("archived=yes").unwrap_err();
        assert_eq!(error.message, "archived must be exclude, only or include");
        let error = HistoryQuery::from_query("folder=work").unwrap_err();
        assert!(
            error.message.starts_with("folder must be a UUID"),
            "{}",
            error.message
        );
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

    fn user() -> Vec<SqlParam> {
        vec![
            SqlParam::Text("ada".into()),
            SqlParam::Text("ada@example.com".into()),
        ]
    }

    #[test]
    fn the_main_first_page_records_the_caller_and_reads_the_pins_and_limit_plus_one() {
        let statement = query(20, None).page_statement(&ada()).unwrap();
        assert_eq!(
            statement.params,
            [user(), vec![SqlParam::Int64(21)]].concat()
        );
        let sql = &statement.sql;
        assert!(sql.starts_with(RECORD_CALLER), "{sql}");
        let (pins, page) = sql.split_once("UNION ALL").expect("pins and page");
        assert!(pins.contains(r#""pinnedAt" IS NOT NULL AND "archivedAt" IS NULL"#));
        assert!(pins.contains("LIMIT 50"));
        for condition in [
            r#"AND "archivedAt" IS NULL"#,
            r#"AND "folderId" IS NULL"#,
            r#"AND "pinnedAt" IS NULL"#,
        ] {
            assert!(page.contains(condition), "{condition}: {page}");
        }
        assert!(page.contains(r#"ORDER BY "lastActivityAt" DESC, id DESC"#));
        assert!(page.trim_end().ends_with("LIMIT $3)"), "{page}");
    }

    #[test]
    fn a_chat_id_cursor_seeks_from_where_that_chat_of_the_callers_is_now() {
        for (cursor, seek, order) in [
            (
                Cursor::StartingAfter(Position::Chat(chat_id())),
                r#"("lastActivityAt", id) < ("#,
                "DESC",
            ),
            (
                Cursor::EndingBefore(Position::Chat(chat_id())),
                r#"("lastActivityAt", id) > ("#,
                "ASC",
            ),
        ] {
            let statement = query(5, Some(cursor)).page_statement(&ada()).unwrap();
            assert_eq!(
                statement.params,
                [user(), vec![SqlParam::Uuid(chat_id()), SqlParam::Int64(6)]].concat()
            );
            let sql = &statement.sql;
            assert!(sql.contains(seek), "{sql}");
            assert!(sql.contains(&format!(r#"ORDER BY "lastActivityAt" {order}, id {order}"#)));
            // The cursor's chat must be the caller's, for the page and for
            // recording them; no pins after the first page.
            assert!(sql.contains(r#"anchor.id = $3 AND anchor."userId" = $1"#));
            assert!(sql.contains(
                r#"WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $3 AND "userId" = $1)"#
            ));
            assert!(!sql.contains("UNION ALL"));
        }
    }

    #[test]
    fn a_listed_cursor_seeks_from_the_place_it_names() {
        let statement = query(5, Some(Cursor::StartingAfter(Position::Listed(key()))))
            .page_statement(&ada())
            .unwrap();
        assert_eq!(
            statement.params,
            [
                user(),
                vec![
                    SqlParam::Int64(1_735_628_889_123_456),
                    SqlParam::Uuid(chat_id()),
                    SqlParam::Int64(6)
                ]
            ]
            .concat()
        );
        assert!(statement.sql.starts_with(RECORD_CALLER));
        assert!(statement.sql.contains(
            r#"("lastActivityAt", id) < (TIMESTAMP 'epoch' + $3::bigint::float8 * interval '1 microsecond', $4)"#
        ));
    }

    #[test]
    fn each_view_lists_its_place_of_the_sidebar() {
        let folder = HistoryQuery {
            folder: Some(folder_id()),
            ..query(5, None)
        }
        .page_statement(&ada())
        .unwrap();
        assert_eq!(
            folder.params,
            [
                user(),
                vec![SqlParam::Uuid(folder_id()), SqlParam::Int64(6)]
            ]
            .concat()
        );
        assert!(folder.sql.contains(r#"AND "folderId" = $3"#));
        // Someone else's folder is a 404 that records no one.
        assert!(folder.sql.contains(
            r#"SELECT $1, $2::text WHERE EXISTS (SELECT 1 FROM chat."Folder" WHERE id = $3 AND "userId" = $1)"#
        ));
        assert!(folder.sql.contains(r#"AND "pinnedAt" IS NULL"#));
        assert!(folder.sql.contains(r#"AND "archivedAt" IS NULL"#));
        assert!(!folder.sql.contains("UNION ALL"));

        let archive = HistoryQuery {
            archived: Archived::Only,
            ..query(5, None)
        }
        .page_statement(&ada())
        .unwrap();
        assert!(archive.sql.contains(r#"AND "archivedAt" IS NOT NULL"#));
        assert!(!archive.sql.contains(r#"AND "folderId""#));
        assert!(!archive.sql.contains(r#"AND "pinnedAt""#));
    }

    #[test]
    fn a_search_looks_everywhere_and_binds_its_text_before_the_limit() {
        let searching = |cursor, archived| HistoryQuery {
            search: Some("trip lisbon".into()),
            archived,
            ..query(5, cursor)
        };
        let search = SqlParam::Text("trip lisbon".into());
        let first = searching(None, Archived::Exclude)
            .page_statement(&ada())
            .unwrap();
        assert_eq!(
            first.params,
            [user(), vec![search.clone(), SqlParam::Int64(6)]].concat()
        );
        assert!(first.sql.contains("websearch_to_tsquery('english', $3)"));
        assert!(first.sql.ends_with("LIMIT $4"));
        assert!(first.sql.contains(r#"AND "archivedAt" IS NULL"#));
        assert!(
            !first.sql.contains(r#"AND "folderId""#) && !first.sql.contains(r#"AND "pinnedAt""#)
        );
        assert!(!first.sql.contains("UNION ALL"));
        let everywhere = searching(None, Archived::Include)
            .page_statement(&ada())
            .unwrap();
        assert!(!everywhere.sql.contains(r#"AND "archivedAt" IS"#));
        // Without a search, `include` lists every chat wherever it is.
        let every_chat = HistoryQuery {
            archived: Archived::Include,
            ..query(5, None)
        }
        .page_statement(&ada())
        .unwrap();
        for place in [
            r#"AND "archivedAt""#,
            r#"AND "folderId""#,
            r#"AND "pinnedAt""#,
            "UNION",
        ] {
            assert!(!every_chat.sql.contains(place), "{place}");
        }
        let after = searching(
            Some(Cursor::StartingAfter(Position::Chat(chat_id()))),
            Archived::Exclude,
        )
        .page_statement(&ada())
        .unwrap();
        assert_eq!(
            after.params,
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
        assert!(after.sql.contains("websearch_to_tsquery('english', $4)"));
        // Both sides of the match are the index expressions of migration 10.
        for index in SEARCH_INDEX_EXPRESSIONS {
            assert!(first.sql.contains(index), "{index}");
        }
        let plain = query(5, None).page_statement(&ada()).unwrap();
        assert!(!plain.sql.contains("tsquery"));
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
        let error = parsed("q=trip%00").unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("NUL"), "{}", error.message);
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

    fn ids(chats: &[ChatSummary]) -> Vec<u128> {
        chats.iter().map(|chat| chat.id.as_u128()).collect()
    }

    #[test]
    fn descending_pages_keep_the_newest_rows() {
        // Rows as the database returns them: newest first, one extra.
        let rows = || {
            vec![
                summary(9, 9, false),
                summary(8, 8, false),
                summary(7, 7, false),
                summary(6, 6, false),
            ]
        };
        let after = query(3, Some(Cursor::StartingAfter(Position::Chat(chat_id()))));
        let page = finish_page(rows(), &after);
        assert_eq!((ids(&page.data), page.has_more), (vec![9, 8, 7], true));
        assert!(page.pinned.is_empty());
        let page = finish_page(rows()[..3].to_vec(), &after);
        assert_eq!((ids(&page.data), page.has_more), (vec![9, 8, 7], false));
    }

    #[test]
    fn the_first_page_puts_the_pins_apart_in_order_whatever_order_the_union_gave() {
        let rows = vec![
            summary(8, 8, false),
            summary(1, 1, true),
            summary(9, 9, false),
            summary(5, 5, true),
            summary(7, 7, false),
        ];
        let page = finish_page(rows, &query(2, None));
        assert_eq!(ids(&page.data), vec![9, 8]);
        assert!(page.has_more);
        assert_eq!(ids(&page.pinned), vec![5, 1]);
    }

    #[test]
    fn ending_before_keeps_the_rows_next_to_the_cursor_newest_first() {
        // Rows newer than the cursor come back nearest first.
        let before = query(3, Some(Cursor::EndingBefore(Position::Listed(key()))));
        let rows = vec![
            summary(6, 6, false),
            summary(7, 7, false),
            summary(8, 8, false),
            summary(9, 9, false),
        ];
        let page = finish_page(rows, &before);
        assert_eq!((ids(&page.data), page.has_more), (vec![8, 7, 6], true));
        let page = finish_page(Vec::new(), &before);
        assert_eq!((ids(&page.data), page.has_more), (vec![], false));
    }

    #[test]
    fn only_a_chat_id_cursor_names_a_chat_to_check() {
        let cursor = Cursor::StartingAfter(Position::Chat(chat_id()));
        assert_eq!(cursor.named_chat(), Some(chat_id()));
        assert_eq!(
            Cursor::EndingBefore(Position::Listed(key())).named_chat(),
            None
        );
        let statement = Cursor::existence_statement(chat_id(), "ada");
        assert_eq!(
            statement.params,
            vec![SqlParam::Uuid(chat_id()), SqlParam::Text("ada".into())]
        );
        assert_eq!(
            cursor.unknown_error().message,
            "starting_after does not name one of your chats"
        );
    }

    #[test]
    fn page_serialises_the_seeds_fields_and_ours() {
        let page = HistoryPage {
            data: vec![ChatSummary {
                id: chat_id(),
                title: "Hello".into(),
                created_at: UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 250_000_000).unwrap(),
                visibility: "private".into(),
                last_activity_at: at(),
                pinned: false,
                archived: false,
                folder_id: None,
                cursor: key().token(),
            }],
            has_more: false,
            pinned: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            serde_json::json!({
                "data": [{
                    "id": CHAT,
                    "title": "Hello",
                    "createdAt": "2024-05-01T12:00:00.250Z",
                    "visibility": "private",
                    "lastActivityAt": "2024-12-31T07:08:09.123Z",
                    "pinned": false,
                    "archived": false,
                    "folderId": null,
                    "cursor": format!("1735628889123456.{CHAT}")
                }],
                "hasMore": false
            })
        );
    }
}
