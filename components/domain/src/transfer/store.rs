//! The statements that write an import. Folders first, in one statement;
//! then each chat in a transaction of its own: [`ImportedChat::insert_statement`],
//! and only when [`chat_outcome`] says it was created, its messages and
//! votes, then COMMIT. A cut connection leaves whole chats only, and a
//! chat that is already there is not touched.
//!
//! What `POST /api/import` does with them:
//!
//! ```text
//! let import = transfer::read(&body, &caller.user_id, now)?;     // 400, 413
//! let mut report = import.report();
//! run(store::folders_statement(&import.folders, user))          // if Some
//! for chat in import.chats() {
//!     let chat = match chat { Ok(chat) => chat, Err(skipped) => { report.skip(skipped); continue } };
//!     BEGIN
//!     let outcome = store::chat_outcome(&run(chat.insert_statement(user, email)))?;
//!     if outcome == ChatOutcome::Created { run(chat.messages_statement(user)); run(chat.votes_statement(user)) }
//!     COMMIT
//!     report.record(&chat, outcome);
//! }
//! answer(report)
//! ```
//!
//! Every insert does nothing on an id that exists (ON CONFLICT DO
//! NOTHING), so importing the same file again writes nothing. Nothing is
//! written into another user's rows: a chat's folder must be the owner's
//! (else the chat is filed nowhere), messages go only into a chat of the
//! owner, and a vote only onto an assistant message of that chat. Votes
//! are not sent to MLflow again: they were (or were not) when they were
//! cast.

use super::time::sql_text;
use super::{ChatOutcome, ImportedChat, ImportedFolder};
use crate::chat::conversation::text_parts;
use crate::database::sql::{Row, SqlParam, Statement};
use crate::history::folders::MAX_FOLDERS;
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// $1 owner, $2 the folders as a JSON array of `{id, name, position}`,
/// $3 [`MAX_FOLDERS`], the most folders a user may have (as the folders
/// routes allow): an import adds folders only up to it, and chats of the
/// folders it could not add are filed nowhere.
const INSERT_FOLDERS: &str = r#"INSERT INTO chat."Folder" (id, "userId", name, position)
SELECT (folder->>'id')::uuid, $1, folder->>'name', (folder->>'position')::integer
FROM json_array_elements($2::text::json) WITH ORDINALITY AS given (folder, n)
WHERE n <= $3 - (SELECT count(*) FROM chat."Folder" WHERE "userId" = $1)
ORDER BY n
ON CONFLICT (id) DO NOTHING"#;

/// Creates the chat unless its id exists, and records its owner in "User"
/// as every write of a chat does. Parameters: $1 id, $2 title, $3 owner,
/// $4 visibility, $5 "createdAt", $6 "lastActivityAt", $7 "pinnedAt", $8
/// "archivedAt" (times as text, cast from text since the driver binds
/// text; NULL: not pinned, not archived), $9 folder
/// (NULL: none), $10 the owner's email. Selects, in order: whether this
/// statement created it, and whether an existing one is the owner's (NULL:
/// no row in this statement's snapshot, a chat created at this instant).
const INSERT_CHAT: &str = r#"WITH created AS (
  INSERT INTO chat."Chat" (id, title, "userId", visibility, "createdAt", "lastActivityAt", "pinnedAt", "archivedAt", "folderId")
  VALUES ($1, $2, $3, $4, $5::text::timestamp, $6::text::timestamp, $7::text::timestamp, $8::text::timestamp,
    (SELECT id FROM chat."Folder" WHERE id = $9::uuid AND "userId" = $3))
  ON CONFLICT (id) DO NOTHING
  RETURNING id
), recorded_owner AS (
  INSERT INTO chat."User" (id, email)
  SELECT $3, $10::text FROM created
  ON CONFLICT (id) DO NOTHING
), existing AS (
  SELECT "userId" FROM chat."Chat" WHERE id = $1
)
SELECT created.id IS NOT NULL, existing."userId" = $3
FROM (SELECT 1) AS one LEFT JOIN created ON true LEFT JOIN existing ON true"#;

/// $1 chat, $2 the messages as a JSON array of `{id, role, parts,
/// createdAt, status, traceId}` oldest first, $3 owner. "insertionOrder"
/// is generated as rows are inserted, here in the array's order, which
/// orders messages that share a time.
const INSERT_MESSAGES: &str = r#"INSERT INTO chat."Message" (id, "chatId", role, parts, "createdAt", status, "traceId")
SELECT (message->>'id')::uuid, $1, message->>'role', message->'parts', (message->>'createdAt')::timestamp, message->>'status', message->>'traceId'
FROM json_array_elements($2::text::json) WITH ORDINALITY AS given (message, n)
WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $1 AND "userId" = $3)
ORDER BY n
ON CONFLICT (id) DO NOTHING"#;

/// $1 chat, $2 the votes as a JSON array of `{messageId, isUpvoted,
/// comment}`, $3 owner.
const INSERT_VOTES: &str = r#"INSERT INTO chat."Vote" ("chatId", "messageId", "isUpvoted", comment)
SELECT $1, message.id, (vote->>'isUpvoted')::boolean, vote->>'comment'
FROM json_array_elements($2::text::json) AS vote
JOIN chat."Message" AS message
  ON message.id = (vote->>'messageId')::uuid AND message."chatId" = $1 AND message.role = 'assistant'
WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $1 AND "userId" = $3)
ON CONFLICT ("chatId", "messageId") DO NOTHING"#;

/// Creates the import's folders for `owner`; `None` when there are none.
pub fn folders_statement(folders: &[ImportedFolder], owner: &str) -> Option<Statement> {
    if folders.is_empty() {
        return None;
    }
    let folders: Vec<_> = folders
        .iter()
        .map(|folder| FolderRow {
            id: folder.id,
            name: &folder.name,
            position: folder.position,
        })
        .collect();
    Some(Statement::new(
        INSERT_FOLDERS,
        vec![
            SqlParam::Text(owner.to_owned()),
            SqlParam::Text(json_rows(&folders)),
            SqlParam::Int64(i64::from(MAX_FOLDERS)),
        ],
    ))
}

/// Decodes the row of [`ImportedChat::insert_statement`].
pub fn chat_outcome<R: Row>(row: &R) -> Result<ChatOutcome, R::Error> {
    Ok(match (row.boolean(0)?, row.optional_boolean(1)?) {
        (true, _) => ChatOutcome::Created,
        (false, Some(true)) => ChatOutcome::AlreadyThere,
        (false, _) => ChatOutcome::Exists,
    })
}

impl ImportedChat {
    /// Creates the chat for `owner` (whose email the "User" row records);
    /// decode its row with [`chat_outcome`].
    pub fn insert_statement(&self, owner: &str, email: &str) -> Statement {
        // A pin or an archiving keeps its time; the file has none, so it
        // is the chat's last activity.
        let marked = |flag: bool| match flag {
            true => SqlParam::Text(sql_text(self.last_activity_at)),
            false => SqlParam::Null,
        };
        Statement::new(
            INSERT_CHAT,
            vec![
                SqlParam::Uuid(self.id),
                SqlParam::Text(self.title.clone()),
                SqlParam::Text(owner.to_owned()),
                SqlParam::Text(self.visibility.as_str().to_owned()),
                SqlParam::Text(sql_text(self.created_at)),
                SqlParam::Text(sql_text(self.last_activity_at)),
                marked(self.pinned),
                marked(self.archived),
                self.folder_id.map_or(SqlParam::Null, SqlParam::Uuid),
                SqlParam::Text(email.to_owned()),
            ],
        )
    }

    /// Writes the chat's messages, after it was created; `None` for a
    /// chat without any.
    pub fn messages_statement(&self, owner: &str) -> Option<Statement> {
        if self.messages.is_empty() {
            return None;
        }
        let messages: Vec<_> = self
            .messages
            .iter()
            .map(|message| MessageRow {
                id: message.id,
                role: message.role.as_str(),
                // The parts a typed message of this app has.
                parts: RawValue::from_string(text_parts(&message.text))
                    .expect("text_parts writes JSON"),
                created_at: sql_text(message.created_at),
                status: message.status.as_str(),
                trace_id: message.trace_id.as_deref(),
            })
            .collect();
        Some(self.statement(INSERT_MESSAGES, &messages, owner))
    }

    /// Writes the votes on the chat's replies, after its messages; `None`
    /// when there are none.
    pub fn votes_statement(&self, owner: &str) -> Option<Statement> {
        let votes: Vec<_> = self
            .messages
            .iter()
            .filter_map(|message| {
                let vote = message.vote.as_ref()?;
                Some(VoteRow {
                    message_id: message.id,
                    is_upvoted: vote.is_upvoted,
                    comment: vote.comment.as_deref(),
                })
            })
            .collect();
        (!votes.is_empty()).then(|| self.statement(INSERT_VOTES, &votes, owner))
    }

    /// A statement of this chat's rows: $1 chat, $2 rows, $3 owner.
    fn statement(&self, sql: &'static str, rows: &[impl Serialize], owner: &str) -> Statement {
        Statement::new(
            sql,
            vec![
                SqlParam::Uuid(self.id),
                SqlParam::Text(json_rows(rows)),
                SqlParam::Text(owner.to_owned()),
            ],
        )
    }
}

// The rows a statement reads from its JSON parameter, by these names.

#[derive(Serialize)]
struct FolderRow<'a> {
    id: Uuid,
    name: &'a str,
    position: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageRow<'a> {
    id: Uuid,
    role: &'static str,
    parts: Box<RawValue>,
    created_at: String,
    status: &'static str,
    trace_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VoteRow<'a> {
    message_id: Uuid,
    is_upvoted: bool,
    comment: Option<&'a str>,
}

fn json_rows(rows: &[impl Serialize]) -> String {
    serde_json::to_string(rows).expect("rows always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Visibility;
    use crate::chat::conversation::MessageStatus;
    use crate::database::sql::fake::{FakeRow, Value};
    use crate::database::timestamp::UtcDateTime;
    use crate::messages::MessageVote;
    use crate::transfer::{ImportedMessage, Role};
    use serde_json::json;
    use std::collections::BTreeMap;

    const OWNER: &str = "a@example.com";

    fn at(second: u8) -> UtcDateTime {
        UtcDateTime::from_parts(2024, 5, 1, 12, 0, second, 0).unwrap()
    }

    fn chat() -> ImportedChat {
        let message = |id: u128, role, text: &str, second| ImportedMessage {
            id: Uuid::from_u128(id),
            role,
            text: text.to_owned(),
            created_at: at(second),
            status: MessageStatus::Complete,
            trace_id: None,
            vote: None,
        };
        let mut reply = message(12, Role::Assistant, "Paris.", 2);
        reply.status = MessageStatus::Stopped;
        reply.trace_id = Some("tr-1".to_owned());
        reply.vote = Some(MessageVote {
            is_upvoted: false,
            comment: Some("Short".to_owned()),
        });
        ImportedChat {
            id: Uuid::from_u128(1),
            source: "line 2".to_owned(),
            title: "Capitals".to_owned(),
            created_at: at(0),
            last_activity_at: at(3),
            visibility: Visibility::Public,
            pinned: true,
            archived: false,
            folder_id: Some(Uuid::from_u128(0xf0)),
            messages: vec![message(11, Role::User, "Capital of France?", 1), reply],
            skipped_parts: BTreeMap::new(),
        }
    }

    fn json_param(statement: &Statement, index: usize) -> serde_json::Value {
        match &statement.params[index] {
            SqlParam::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("not JSON text: {other:?}"),
        }
    }

    #[test]
    fn the_chat_is_created_with_its_marks_as_times_and_its_folder_if_the_owners() {
        let statement = chat().insert_statement(OWNER, "a@example.com");
        assert_eq!(statement.sql, INSERT_CHAT);
        assert_eq!(
            statement.params,
            vec![
                SqlParam::Uuid(Uuid::from_u128(1)),
                SqlParam::Text("Capitals".into()),
                SqlParam::Text(OWNER.into()),
                SqlParam::Text("public".into()),
                SqlParam::Text("2024-05-01T12:00:00.000Z".into()),
                SqlParam::Text("2024-05-01T12:00:03.000Z".into()),
                // Pinned, at its last activity; not archived.
                SqlParam::Text("2024-05-01T12:00:03.000Z".into()),
                SqlParam::Null,
                SqlParam::Uuid(Uuid::from_u128(0xf0)),
                SqlParam::Text("a@example.com".into()),
            ]
        );
        assert!(INSERT_CHAT.contains(r#"ON CONFLICT (id) DO NOTHING"#));
        assert!(
            INSERT_CHAT.contains(
                r#"(SELECT id FROM chat."Folder" WHERE id = $9::uuid AND "userId" = $3)"#
            )
        );
        let mut unfiled = chat();
        unfiled.folder_id = None;
        unfiled.pinned = false;
        let params = unfiled.insert_statement(OWNER, "a@example.com").params;
        assert_eq!((&params[6], &params[8]), (&SqlParam::Null, &SqlParam::Null));
    }

    #[test]
    fn the_outcome_tells_created_from_there_already_from_someone_elses() {
        let outcome = |created, owners: Value| {
            let row = FakeRow::laid_out_by(
                INSERT_CHAT,
                &[
                    ("created.id IS NOT NULL", Value::Boolean(created)),
                    (r#"existing."userId" = $3"#, owners),
                ],
            );
            chat_outcome(&row).unwrap()
        };
        assert_eq!(outcome(true, Value::Null), ChatOutcome::Created);
        assert_eq!(
            outcome(false, Value::Boolean(true)),
            ChatOutcome::AlreadyThere
        );
        assert_eq!(outcome(false, Value::Boolean(false)), ChatOutcome::Exists);
        assert_eq!(outcome(false, Value::Null), ChatOutcome::Exists);
    }

    #[test]
    fn messages_go_in_order_into_the_owners_chat_only() {
        let statement = chat().messages_statement(OWNER).unwrap();
        assert_eq!(statement.sql, INSERT_MESSAGES);
        assert_eq!(statement.params[0], SqlParam::Uuid(Uuid::from_u128(1)));
        assert_eq!(statement.params[2], SqlParam::Text(OWNER.into()));
        assert_eq!(
            json_param(&statement, 1),
            json!([
                {"id": Uuid::from_u128(11), "role": "user", "parts": [{"type": "text", "text": "Capital of France?"}],
                 "createdAt": "2024-05-01T12:00:01.000Z", "status": "complete", "traceId": null},
                {"id": Uuid::from_u128(12), "role": "assistant", "parts": [{"type": "text", "text": "Paris."}],
                 "createdAt": "2024-05-01T12:00:02.000Z", "status": "stopped", "traceId": "tr-1"},
            ])
        );
        assert!(INSERT_MESSAGES.contains("ORDER BY n"));
        assert!(INSERT_MESSAGES.contains(
            r#"WHERE EXISTS (SELECT 1 FROM chat."Chat" WHERE id = $1 AND "userId" = $3)"#
        ));
        assert!(
            !INSERT_MESSAGES.contains("insertionOrder\","),
            "generated, never set"
        );
        let mut empty = chat();
        empty.messages.clear();
        assert_eq!(empty.messages_statement(OWNER), None);
        assert_eq!(empty.votes_statement(OWNER), None);
    }

    #[test]
    fn votes_go_onto_replies_of_the_owners_chat_only() {
        let statement = chat().votes_statement(OWNER).unwrap();
        assert_eq!(statement.sql, INSERT_VOTES);
        assert_eq!(
            json_param(&statement, 1),
            json!([{"messageId": Uuid::from_u128(12), "isUpvoted": false, "comment": "Short"}])
        );
        assert!(INSERT_VOTES.contains(r#"message."chatId" = $1 AND message.role = 'assistant'"#));
        assert!(INSERT_VOTES.contains(r#"ON CONFLICT ("chatId", "messageId") DO NOTHING"#));
    }

    #[test]
    fn folders_are_added_up_to_the_most_a_user_may_have() {
        assert_eq!(folders_statement(&[], OWNER), None);
        let folders = [ImportedFolder {
            id: Uuid::from_u128(0xf0),
            name: "Geography".to_owned(),
            position: 2,
        }];
        let statement = folders_statement(&folders, OWNER).unwrap();
        assert_eq!(statement.params[0], SqlParam::Text(OWNER.into()));
        assert_eq!(
            json_param(&statement, 1),
            json!([{"id": Uuid::from_u128(0xf0), "name": "Geography", "position": 2}])
        );
        assert_eq!(statement.params[2], SqlParam::Int64(100));
        assert!(INSERT_FOLDERS.contains(
            r#"WHERE n <= $3 - (SELECT count(*) FROM chat."Folder" WHERE "userId" = $1)"#
        ));
    }
}
