//! Our export format: JSON Lines, one JSON object per line, each with its
//! `type`, in this order (docs/export-format.md says the same for readers):
//!
//! 1. the header:
//!    `{"type":"chat-history-export","version":1,"exportedAt":"2024-05-01T12:00:00.000Z","userId":"a@example.com"}`,
//!    `userId` being the exporter (an import by the same user is a restore
//!    and keeps the ids);
//! 2. one `{"type":"folder","id":uuid,"name":string,"position":int}` per
//!    folder;
//! 3. one line per chat:
//!    `{"type":"chat","id":uuid,"title":string,"createdAt":time,"lastActivityAt":time,"visibility":"private"|"public","pinned":bool,"archived":bool,"folderId":uuid|null,"messages":[...]}`,
//!    its messages oldest first, each
//!    `{"id":uuid,"role":"user"|"assistant","parts":[{"type":"text","text":string}],"createdAt":time,"status":"complete"|"incomplete"|"error"|"stopped"|"streaming","traceId":string|null,"vote":{"isUpvoted":bool,"comment":string|null}|null}`
//!    (`parts` as stored; this app stores text parts only);
//! 4. the end: `{"type":"end","chats":int,"folders":int}`, so a file cut
//!    short is told from a complete one.
//!
//! Times are UTC, `YYYY-MM-DDTHH:MM:SS.sssZ`. Readers ignore fields they do
//! not know; a new version number means a change they cannot ignore.
//!
//! Each encoder returns one whole line, `\n` included, so the export
//! streams a line at a time. The records here are also what [`super::ours`]
//! reads, so writer and reader cannot drift apart.

use super::Role;
use super::time::parse_utc;
use crate::access::{ChatAccess, Visibility};
use crate::chat::conversation::MessageStatus;
use crate::database::sql::{Row, SqlParam, Statement, split_page};
use crate::database::timestamp::UtcDateTime;
use crate::messages::{self, MessageView, MessagesQuery};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use uuid::Uuid;

/// The header's `type`.
pub const FORMAT: &str = "chat-history-export";
/// The version this app writes, and the newest it reads.
pub const VERSION: u32 = 1;
/// How many chats one page of [`chats_statement`] reads.
pub const CHATS_PER_PAGE: i64 = 100;

/// The caller's folders in the sidebar's order. Selects, in order: id,
/// name, position ([`folder`] decodes them).
const FOLDERS: &str = r#"SELECT id, name, position FROM chat."Folder"
WHERE "userId" = $1
ORDER BY position, "createdAt", id"#;

// The caller's chats, oldest first by ("createdAt", id), which never
// change, so a chat moved, pinned or continued while the export runs is
// still read exactly once. Selects, in order: id, title, "createdAt",
// "lastActivityAt", visibility, pinned, archived, "folderId", and the
// cursor: "createdAt" as text, at the column's full precision (a time
// cut to milliseconds would find the same chat again) ([`chat`] decodes
// them).
macro_rules! callers_chats {
    ($after:literal, $limit:literal) => {
        concat!(
            r#"SELECT id, title, "createdAt", "lastActivityAt", visibility, "pinnedAt" IS NOT NULL, "archivedAt" IS NOT NULL, "folderId", "createdAt"::text AS cursor
FROM chat."Chat"
WHERE "userId" = $1"#,
            $after,
            r#"
ORDER BY "createdAt", id
LIMIT "#,
            $limit
        )
    };
}

const FIRST_CHATS: &str = callers_chats!("", "$2");
const CHATS_AFTER: &str = callers_chats!(
    r#" AND ("createdAt", id) > ($2::text::timestamp, $3)"#,
    "$4"
);

/// The header line: `exporter` is the caller's user id.
pub fn header_line(exporter: &str, exported_at: UtcDateTime) -> String {
    line(&Line::<MessageView>::Header(Header {
        version: VERSION,
        exported_at,
        user_id: Cow::Borrowed(exporter),
    }))
}

pub fn folder_line(folder: &FolderRecord<'_>) -> String {
    line(&Line::<MessageView>::Folder(folder))
}

/// A chat's line, with its messages (oldest first) as the messages route
/// reads them.
pub fn chat_line(chat: &ChatRecord<'_, MessageView>) -> String {
    line(&Line::Chat(chat))
}

/// The last line: how many chat and folder lines came before it.
pub fn end_line(chats: u64, folders: u64) -> String {
    line(&Line::<MessageView>::End(EndRecord { chats, folders }))
}

fn line<M: Serialize>(line: &Line<'_, M>) -> String {
    let mut text = serde_json::to_string(line).expect("export records always serialise");
    text.push('\n');
    text
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Line<'a, M> {
    #[serde(rename = "chat-history-export")]
    Header(Header<'a>),
    #[serde(rename = "folder")]
    Folder(&'a FolderRecord<'a>),
    #[serde(rename = "chat")]
    Chat(&'a ChatRecord<'a, M>),
    #[serde(rename = "end")]
    End(EndRecord),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header<'a> {
    pub version: u32,
    #[serde(deserialize_with = "utc")]
    pub exported_at: UtcDateTime,
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderRecord<'a> {
    pub id: Uuid,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub position: i32,
}

/// A chat line; `M` is [`MessageView`] when written, [`MessageRecord`]
/// when read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "M: Deserialize<'de>"))]
pub struct ChatRecord<'a, M> {
    pub id: Uuid,
    #[serde(borrow)]
    pub title: Cow<'a, str>,
    #[serde(deserialize_with = "utc")]
    pub created_at: UtcDateTime,
    #[serde(deserialize_with = "utc")]
    pub last_activity_at: UtcDateTime,
    #[serde(deserialize_with = "visibility")]
    pub visibility: Visibility,
    pub pinned: bool,
    pub archived: bool,
    pub folder_id: Option<Uuid>,
    pub messages: Vec<M>,
}

/// A message of a chat line as read (written from a [`MessageView`], whose
/// fields have the same names).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord<'a> {
    pub id: Uuid,
    pub role: Role,
    #[serde(borrow)]
    pub parts: &'a RawValue,
    #[serde(deserialize_with = "utc")]
    pub created_at: UtcDateTime,
    pub status: MessageStatus,
    #[serde(borrow)]
    pub trace_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub vote: Option<VoteRecord<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoteRecord<'a> {
    pub is_upvoted: bool,
    #[serde(borrow)]
    pub comment: Option<Cow<'a, str>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EndRecord {
    pub chats: u64,
    pub folders: u64,
}

fn utc<'de, D: Deserializer<'de>>(deserializer: D) -> Result<UtcDateTime, D::Error> {
    let text = Cow::<str>::deserialize(deserializer)?;
    parse_utc(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a UTC time such as \"2024-05-01T12:00:00.000Z\""
        ))
    })
}

fn visibility<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Visibility, D::Error> {
    let text = Cow::<str>::deserialize(deserializer)?;
    Visibility::from_request(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("{text:?} is neither \"private\" nor \"public\""))
    })
}

/// Reads the caller's folders (all of them: a user has few).
pub fn folders_statement(caller: &str) -> Statement {
    Statement::new(FOLDERS, vec![SqlParam::Text(caller.to_owned())])
}

/// Decodes a row of [`folders_statement`].
pub fn folder<R: Row>(row: &R) -> Result<FolderRecord<'static>, R::Error> {
    Ok(FolderRecord {
        id: row.uuid(0)?,
        name: Cow::Owned(row.text(1)?),
        position: row.int32(2)?,
    })
}

/// Where the next page of chats starts: after the last chat of the page
/// before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCursor {
    id: Uuid,
    /// Its "createdAt" as PostgreSQL writes it, at full precision.
    created_at: String,
}

/// A page of [`CHATS_PER_PAGE`] of the caller's chats, after `cursor`
/// (`None`: the first page). A page shorter than that is the last.
pub fn chats_statement(caller: &str, cursor: Option<&ChatCursor>) -> Statement {
    let caller = SqlParam::Text(caller.to_owned());
    let limit = SqlParam::Int64(CHATS_PER_PAGE);
    match cursor {
        None => Statement::new(FIRST_CHATS, vec![caller, limit]),
        Some(cursor) => Statement::new(
            CHATS_AFTER,
            vec![
                caller,
                SqlParam::Text(cursor.created_at.clone()),
                SqlParam::Uuid(cursor.id),
                limit,
            ],
        ),
    }
}

/// Decodes a row of [`chats_statement`]: the chat, without its messages
/// yet, and the cursor of the page after it.
pub fn chat<R: Row>(row: &R) -> Result<(ChatRecord<'static, MessageView>, ChatCursor), R::Error> {
    let id = row.uuid(0)?;
    let chat = ChatRecord {
        id,
        title: Cow::Owned(row.text(1)?),
        created_at: row.timestamp(2)?,
        last_activity_at: row.timestamp(3)?,
        visibility: Visibility::from_stored(&row.text(4)?),
        pinned: row.boolean(5)?,
        archived: row.boolean(6)?,
        folder_id: row.optional_uuid(7)?,
        messages: Vec::new(),
    };
    let cursor = ChatCursor {
        id,
        created_at: row.text(8)?,
    };
    Ok((chat, cursor))
}

/// The name an export is saved under: `chat-history-2024-05-01.jsonl`.
pub fn file_name(exported_at: UtcDateTime) -> String {
    let iso = exported_at.to_string();
    let date = iso.split_once('T').map_or(iso.as_str(), |(date, _)| date);
    format!("chat-history-{date}.jsonl")
}

/// One chat's messages, all of them, read a page of the messages route at
/// a time (its statement, newest pages first), so a chat of any length is
/// read in statements of bounded size, and only that chat is held. The
/// export and the Markdown of a chat read them so:
///
/// ```text
/// let mut reader = ChatMessages::of(chat);
/// while let Some(statement) = reader.next_statement() { reader.add_page(&run(statement))? }
/// let (access, messages) = reader.finish();
/// ```
#[derive(Debug)]
pub struct ChatMessages {
    chat: Uuid,
    /// The page to read next; `None` once the oldest was read.
    next: Option<MessagesQuery>,
    /// What every page said of the chat; `None` once one found none (it
    /// was deleted meanwhile).
    access: Option<ChatAccess>,
    /// As the pages come: newest first.
    newest_first: Vec<MessageView>,
}

impl ChatMessages {
    pub fn of(chat: Uuid) -> Self {
        Self {
            chat,
            next: Some(MessagesQuery {
                limit: messages::MAX_LIMIT,
                ending_before: None,
            }),
            access: None,
            newest_first: Vec::new(),
        }
    }

    /// The statement of the next page; `None` when all are read.
    pub fn next_statement(&self) -> Option<Statement> {
        self.next.map(|query| query.chat_page_statement(self.chat))
    }

    /// Takes the rows of [`Self::next_statement`]'s page.
    pub fn add_page<R: Row>(&mut self, rows: &[R]) -> Result<(), R::Error> {
        let Some(query) = self.next.take() else {
            return Ok(());
        };
        let (access, page) = messages::chat_page(rows)?;
        let first_page = query.ending_before.is_none();
        self.access = match access {
            Some(access) if first_page || self.access.is_some() => Some(access),
            _ => None,
        };
        let (mut page, has_more) = split_page(page, query.limit);
        if has_more && self.access.is_some() {
            self.next = page.last().map(|oldest| MessagesQuery {
                ending_before: Some(oldest.id),
                ..query
            });
        }
        self.newest_first.append(&mut page);
        Ok(())
    }

    /// Who may read the chat (`None`: there is no such chat) and its
    /// messages, oldest first.
    pub fn finish(mut self) -> (Option<ChatAccess>, Vec<MessageView>) {
        self.newest_first.reverse();
        (self.access, self.newest_first)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::database::sql::fake::{FakeRow, Value};
    use crate::messages::MessageVote;
    use serde_json::json;

    fn at(second: u8) -> UtcDateTime {
        UtcDateTime::from_parts(2024, 5, 1, 12, 0, second, 0).unwrap()
    }

    /// A line as JSON, checking it is one line that ends the way JSON
    /// Lines needs.
    fn parsed(line: &str) -> serde_json::Value {
        let body = line.strip_suffix('\n').expect("a line ends in \\n");
        assert!(!body.contains('\n'), "one line: {line}");
        serde_json::from_str(body).unwrap()
    }

    pub(crate) fn message(id: u128, role: &str, text: &str, second: u8) -> MessageView {
        MessageView {
            id: Uuid::from_u128(id),
            role: role.to_owned(),
            parts: RawValue::from_string(json!([{"type": "text", "text": text}]).to_string())
                .unwrap(),
            trace_id: None,
            created_at: at(second),
            status: "complete".to_owned(),
            vote: None,
        }
    }

    #[test]
    fn the_header_and_the_end_frame_the_file() {
        assert_eq!(
            header_line("a@example.com", at(9)),
            "{\"type\":\"chat-history-export\",\"version\":1,\
             \"exportedAt\":\"2024-05-01T12:00:09.000Z\",\"userId\":\"a@example.com\"}\n"
        );
        assert_eq!(
            end_line(3, 1),
            "{\"type\":\"end\",\"chats\":3,\"folders\":1}\n"
        );
    }

    #[test]
    fn a_folder_line_has_its_type_and_fields() {
        let folder = FolderRecord {
            id: Uuid::from_u128(7),
            name: Cow::Borrowed("Work \"stuff\"\n"),
            position: 2,
        };
        assert_eq!(
            parsed(&folder_line(&folder)),
            json!({"type": "folder", "id": Uuid::from_u128(7), "name": "Work \"stuff\"\n", "position": 2})
        );
    }

    #[test]
    fn a_chat_line_holds_its_messages_votes_and_statuses() {
        let mut reply = message(2, "assistant", "Paris.\nIt is.", 2);
        reply.trace_id = Some("tr-1".to_owned());
        reply.status = "stopped".to_owned();
        reply.vote = Some(MessageVote {
            is_upvoted: false,
            comment: Some("Too short".to_owned()),
        });
        let chat = ChatRecord {
            id: Uuid::from_u128(1),
            title: Cow::Borrowed("Capitals"),
            created_at: at(0),
            last_activity_at: at(1),
            visibility: Visibility::Public,
            pinned: true,
            archived: false,
            folder_id: Some(Uuid::from_u128(7)),
            messages: vec![message(3, "user", "Capital of France?", 1), reply],
        };
        assert_eq!(
            parsed(&chat_line(&chat)),
            json!({
                "type": "chat",
                "id": Uuid::from_u128(1),
                "title": "Capitals",
                "createdAt": "2024-05-01T12:00:00.000Z",
                "lastActivityAt": "2024-05-01T12:00:01.000Z",
                "visibility": "public",
                "pinned": true,
                "archived": false,
                "folderId": Uuid::from_u128(7),
                "messages": [
                    {
                        "id": Uuid::from_u128(3), "role": "user",
                        "parts": [{"type": "text", "text": "Capital of France?"}],
                        "createdAt": "2024-05-01T12:00:01.000Z", "status": "complete",
                        "traceId": null, "vote": null,
                    },
                    {
                        "id": Uuid::from_u128(2), "role": "assistant",
                        "parts": [{"type": "text", "text": "Paris.\nIt is."}],
                        "createdAt": "2024-05-01T12:00:02.000Z", "status": "stopped",
                        "traceId": "tr-1", "vote": {"isUpvoted": false, "comment": "Too short"},
                    },
                ],
            })
        );
    }

    #[test]
    fn the_file_is_named_after_the_day() {
        assert_eq!(file_name(at(9)), "chat-history-2024-05-01.jsonl");
    }

    /// Rows of a messages page: the chat, then one row per message (ids
    /// newest first) or, with none, one row of NULLs.
    fn page_rows(sql: &str, ids: &[u128]) -> Vec<FakeRow> {
        let row = |id: Value| {
            let message = |value: Value| match id {
                Value::Null => Value::Null,
                _ => value,
            };
            FakeRow::laid_out_by(
                sql,
                &[
                    (r#"chat."userId""#, Value::Text("ada")),
                    ("chat.visibility", Value::Text("private")),
                    ("page.id", id.clone()),
                    ("page.role", message(Value::Text("user"))),
                    (
                        "page.parts",
                        message(Value::Text(r#"[{"type":"text","text":"x"}]"#)),
                    ),
                    (r#"page."traceId""#, Value::Null),
                    (r#"page."createdAt""#, message(Value::Timestamp(at(1)))),
                    ("page.status", message(Value::Text("complete"))),
                    (r#"vote."isUpvoted""#, Value::Null),
                    ("vote.comment", Value::Null),
                ],
            )
        };
        match ids {
            [] => vec![row(Value::Null)],
            ids => ids
                .iter()
                .map(|&id| row(Value::Uuid(Uuid::from_u128(id))))
                .collect(),
        }
    }

    #[test]
    fn a_chats_messages_are_read_whole_page_after_page_oldest_first() {
        let chat = Uuid::from_u128(1);
        let limit = u128::from(messages::MAX_LIMIT);
        let mut reader = ChatMessages::of(chat);
        // The newest page and one more: there are older ones.
        let first = reader.next_statement().unwrap();
        assert_eq!(first.params[0], SqlParam::Uuid(chat));
        let newest: Vec<u128> = (0..=limit).map(|n| 2 * limit - n).collect();
        reader.add_page(&page_rows(&first.sql, &newest)).unwrap();
        // Then the page older than the oldest message read.
        let second = reader.next_statement().unwrap();
        assert_eq!(second.params[1], SqlParam::Uuid(Uuid::from_u128(limit + 1)));
        reader
            .add_page(&page_rows(&second.sql, &[limit, 3]))
            .unwrap();
        assert!(
            reader.next_statement().is_none(),
            "the oldest page was short"
        );
        let (access, messages) = reader.finish();
        assert_eq!(access.unwrap().owner, "ada");
        let ids: Vec<u128> = messages.iter().map(|m| m.id.as_u128()).collect();
        let mut expected: Vec<u128> = vec![3, limit];
        expected.extend(limit + 1..=2 * limit);
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_chat_without_messages_or_deleted_midway_reads_so() {
        let chat = Uuid::from_u128(1);
        let mut empty = ChatMessages::of(chat);
        let statement = empty.next_statement().unwrap();
        empty.add_page(&page_rows(&statement.sql, &[])).unwrap();
        let (access, messages) = empty.finish();
        assert!(access.is_some() && messages.is_empty());

        let mut unknown = ChatMessages::of(chat);
        unknown.add_page::<FakeRow>(&[]).unwrap();
        assert!(unknown.next_statement().is_none());
        assert_eq!(unknown.finish().0, None);

        let mut deleted = ChatMessages::of(chat);
        let limit = u128::from(messages::MAX_LIMIT);
        let ids: Vec<u128> = (0..=limit).rev().collect();
        let statement = deleted.next_statement().unwrap();
        deleted.add_page(&page_rows(&statement.sql, &ids)).unwrap();
        deleted.add_page::<FakeRow>(&[]).unwrap();
        assert_eq!(deleted.finish().0, None, "no chat to export");
    }

    #[test]
    fn folders_are_read_in_the_sidebars_order() {
        let statement = folders_statement("a@example.com");
        assert_eq!(
            statement.params,
            vec![SqlParam::Text("a@example.com".into())]
        );
        assert!(FOLDERS.contains(r#"ORDER BY position, "createdAt", id"#));
        let row = FakeRow::laid_out_by(
            FOLDERS,
            &[
                ("id", Value::Uuid(Uuid::from_u128(7))),
                ("name", Value::Text("Work")),
                ("position", Value::Int32(3)),
            ],
        );
        assert_eq!(
            folder(&row).unwrap(),
            FolderRecord {
                id: Uuid::from_u128(7),
                name: Cow::Borrowed("Work"),
                position: 3
            }
        );
    }

    #[test]
    fn chats_page_by_their_creation_with_a_full_precision_cursor() {
        let first = chats_statement("a@example.com", None);
        assert_eq!(first.sql, FIRST_CHATS);
        assert_eq!(
            first.params,
            vec![
                SqlParam::Text("a@example.com".into()),
                SqlParam::Int64(CHATS_PER_PAGE)
            ]
        );
        let row = FakeRow::laid_out_by(
            CHATS_AFTER,
            &[
                ("id", Value::Uuid(Uuid::from_u128(1))),
                ("title", Value::Text("Capitals")),
                ("\"createdAt\"", Value::Timestamp(at(0))),
                ("\"lastActivityAt\"", Value::Timestamp(at(5))),
                ("visibility", Value::Text("public")),
                ("\"pinnedAt\" IS NOT NULL", Value::Boolean(true)),
                ("\"archivedAt\" IS NOT NULL", Value::Boolean(false)),
                ("\"folderId\"", Value::Null),
                (
                    "\"createdAt\"::text AS cursor",
                    Value::Text("2024-05-01 12:00:00.123456"),
                ),
            ],
        );
        let (chat, cursor) = chat(&row).unwrap();
        assert_eq!(chat.id, Uuid::from_u128(1));
        assert_eq!(chat.last_activity_at, at(5));
        assert_eq!(chat.visibility, Visibility::Public);
        assert!(chat.pinned && !chat.archived);
        assert_eq!(chat.folder_id, None);
        let next = chats_statement("a@example.com", Some(&cursor));
        assert_eq!(next.sql, CHATS_AFTER);
        assert_eq!(
            next.params,
            vec![
                SqlParam::Text("a@example.com".into()),
                SqlParam::Text("2024-05-01 12:00:00.123456".into()),
                SqlParam::Uuid(Uuid::from_u128(1)),
                SqlParam::Int64(CHATS_PER_PAGE),
            ]
        );
        for sql in [FIRST_CHATS, CHATS_AFTER] {
            assert!(sql.contains(r#"ORDER BY "createdAt", id"#), "{sql}");
        }
    }
}
