//! The owner's writes to a chat: `DELETE /api/chat/:chatId` and
//! `PATCH /api/chat/:chatId/{visibility,title,pinned,archived,folder}`.
//!
//! Each runs after [`crate::access::decide`] allowed it, and its statement
//! repeats the owner condition: a chat deleted in between changes zero rows,
//! which the component answers as not found.

use crate::ApiError;
use crate::access::Visibility;
use crate::database::sql::{SqlParam, Statement};
use crate::history::MAX_PINNED;
use crate::http::json_body::JsonObject;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Messages and votes go with the chat: their foreign keys cascade.
const DELETE_OWNED_CHAT: &str = r#"DELETE FROM chat."Chat" WHERE id = $1 AND "userId" = $2"#;

/// The caller's chats among the ids in `$2` (a JSON array of UUIDs); any
/// other id deletes nothing.
const DELETE_OWNED_CHATS: &str = r#"DELETE FROM chat."Chat"
WHERE "userId" = $1 AND id IN (SELECT value::uuid FROM json_array_elements_text($2::text::json))"#;

const DELETE_EVERY_OWNED_CHAT: &str = r#"DELETE FROM chat."Chat" WHERE "userId" = $1"#;

/// The most chats one `POST /api/history/delete` names.
pub const MAX_BULK_DELETE: usize = 100;

const SET_VISIBILITY_OF_OWNED_CHAT: &str =
    r#"UPDATE chat."Chat" SET visibility = $3 WHERE id = $1 AND "userId" = $2"#;

/// `"renamedAt"` marks a title the owner chose, which a generated title
/// arriving later leaves alone (`conversation::set_title_statement`).
const RENAME_OWNED_CHAT: &str = r#"UPDATE chat."Chat" SET title = $3, "renamedAt" = CURRENT_TIMESTAMP WHERE id = $1 AND "userId" = $2"#;

/// Pinning brings an archived chat back: a chat is pinned or archived,
/// never both. A chat already pinned keeps its place; a new pin counts
/// against [`MAX_PINNED`], checked in the same statement so two pins at
/// once cannot both pass the last free place.
const PIN_OWNED_CHAT: &str = r#"UPDATE chat."Chat" SET "pinnedAt" = coalesce("pinnedAt", CURRENT_TIMESTAMP), "archivedAt" = NULL
WHERE id = $1 AND "userId" = $2
  AND ("pinnedAt" IS NOT NULL OR (
    SELECT count(*) FROM chat."Chat" WHERE "userId" = $2 AND "pinnedAt" IS NOT NULL AND "archivedAt" IS NULL) < $3)"#;

const UNPIN_OWNED_CHAT: &str =
    r#"UPDATE chat."Chat" SET "pinnedAt" = NULL WHERE id = $1 AND "userId" = $2"#;

/// Archiving unpins: the archive is out of the sidebar's sections.
const ARCHIVE_OWNED_CHAT: &str = r#"UPDATE chat."Chat" SET "archivedAt" = coalesce("archivedAt", CURRENT_TIMESTAMP), "pinnedAt" = NULL WHERE id = $1 AND "userId" = $2"#;

const RESTORE_OWNED_CHAT: &str =
    r#"UPDATE chat."Chat" SET "archivedAt" = NULL WHERE id = $1 AND "userId" = $2"#;

/// Only into a folder of the chat's owner.
const FILE_OWNED_CHAT: &str = r#"UPDATE chat."Chat" SET "folderId" = $3 WHERE id = $1 AND "userId" = $2
  AND EXISTS (SELECT 1 FROM chat."Folder" WHERE id = $3 AND "userId" = $2)"#;

const UNFILE_OWNED_CHAT: &str =
    r#"UPDATE chat."Chat" SET "folderId" = NULL WHERE id = $1 AND "userId" = $2"#;

/// The longest title a user may give a chat, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

const VISIBILITY: &str = "visibility";
const VISIBILITY_EXAMPLE: &str = r#"{"visibility":"public"}"#;
const TITLE: &str = "title";
const TITLE_EXAMPLE: &str = r#"{"title":"Trip to Lisbon"}"#;
const PINNED: &str = "pinned";
const PINNED_EXAMPLE: &str = r#"{"pinned":true}"#;
const ARCHIVED: &str = "archived";
const ARCHIVED_EXAMPLE: &str = r#"{"archived":true}"#;
const FOLDER_ID: &str = "folderId";
const FOLDER_ID_EXAMPLE: &str =
    r#"{"folderId":"0b5c6d1e-8f3a-4c2b-9d7e-1a2b3c4d5e6f"} or {"folderId":null}"#;

pub fn delete_statement(chat_id: Uuid, owner: &str) -> Statement {
    Statement::new(
        DELETE_OWNED_CHAT,
        vec![SqlParam::Uuid(chat_id), SqlParam::Text(owner.to_owned())],
    )
}

pub fn set_visibility_statement(chat_id: Uuid, owner: &str, visibility: Visibility) -> Statement {
    Statement::new(
        SET_VISIBILITY_OF_OWNED_CHAT,
        vec![
            SqlParam::Uuid(chat_id),
            SqlParam::Text(owner.to_owned()),
            SqlParam::Text(visibility.as_str().to_owned()),
        ],
    )
}

pub fn rename_statement(chat_id: Uuid, owner: &str, title: &str) -> Statement {
    Statement::new(
        RENAME_OWNED_CHAT,
        vec![
            SqlParam::Uuid(chat_id),
            SqlParam::Text(owner.to_owned()),
            SqlParam::Text(title.to_owned()),
        ],
    )
}

/// Pins the chat (`pinned`) or unpins it. A pin that would pass
/// [`MAX_PINNED`] changes no row (see [`pin_refused`]).
pub fn pin_statement(chat_id: Uuid, owner: &str, pinned: bool) -> Statement {
    let mut params = vec![SqlParam::Uuid(chat_id), SqlParam::Text(owner.to_owned())];
    if pinned {
        params.push(SqlParam::Int64(i64::from(MAX_PINNED)));
        Statement::new(PIN_OWNED_CHAT, params)
    } else {
        Statement::new(UNPIN_OWNED_CHAT, params)
    }
}

/// The 409 for a pin that found every place taken: the chat is the
/// caller's (checked before), so no row changed means the limit.
pub fn pin_refused() -> ApiError {
    ApiError::conflict(format!(
        "You have pinned {MAX_PINNED} chats, the most there can be; unpin one first."
    ))
}

pub fn archive_statement(chat_id: Uuid, owner: &str, archived: bool) -> Statement {
    Statement::new(
        if archived {
            ARCHIVE_OWNED_CHAT
        } else {
            RESTORE_OWNED_CHAT
        },
        vec![SqlParam::Uuid(chat_id), SqlParam::Text(owner.to_owned())],
    )
}

/// Files the chat in one of the owner's folders, or in none. Into a folder
/// that is not the owner's it changes no row (see [`folder_not_found`]).
pub fn file_statement(chat_id: Uuid, owner: &str, folder: Option<Uuid>) -> Statement {
    let mut params = vec![SqlParam::Uuid(chat_id), SqlParam::Text(owner.to_owned())];
    match folder {
        Some(folder) => {
            params.push(SqlParam::Uuid(folder));
            Statement::new(FILE_OWNED_CHAT, params)
        }
        None => Statement::new(UNFILE_OWNED_CHAT, params),
    }
}

/// The 404 for a folder that is not one of the caller's (or is no more).
pub fn folder_not_found() -> ApiError {
    ApiError::not_found("There is no such folder of yours; it may have been deleted.")
}

/// Which chats a `POST /api/history/delete` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkDelete {
    /// These, where they are the caller's.
    Chats(Vec<Uuid>),
    /// Every chat of the caller's.
    All,
}

const CHAT_IDS: &str = "chatIds";
const ALL: &str = "all";
const BULK_EXAMPLE: &str =
    r#"{"chatIds":["123e4567-e89b-12d3-a456-426614174000"]} or {"all":true}"#;

impl BulkDelete {
    /// Exactly `{"chatIds": [1 to 100 chat ids]}` or `{"all": true}`.
    pub fn from_body(body: &[u8]) -> Result<Self, ApiError> {
        let mut object = JsonObject::parse(body, &[CHAT_IDS, ALL], BULK_EXAMPLE)?;
        match (object.take(CHAT_IDS), object.take(ALL)) {
            (Some(ids), None) => Self::chats(ids),
            (None, Some(Value::Bool(true))) => Ok(Self::All),
            (None, Some(_)) => Err(ApiError::bad_request(format!(
                "all must be true (to delete every chat of yours); send {BULK_EXAMPLE}."
            ))),
            _ => Err(ApiError::bad_request(format!(
                "Send chatIds or all, one of them: {BULK_EXAMPLE}."
            ))),
        }
    }

    fn chats(ids: Value) -> Result<Self, ApiError> {
        let not_ids = || {
            ApiError::bad_request(format!(
                "chatIds must be a list of 1 to {MAX_BULK_DELETE} chat ids (UUIDs), such as {BULK_EXAMPLE}."
            ))
        };
        let Value::Array(ids) = ids else {
            return Err(not_ids());
        };
        if ids.is_empty() || ids.len() > MAX_BULK_DELETE {
            return Err(not_ids());
        }
        ids.iter()
            .map(|id| id.as_str().and_then(|id| Uuid::parse_str(id).ok()))
            .collect::<Option<Vec<_>>>()
            .map(Self::Chats)
            .ok_or_else(not_ids)
    }

    /// The statement, guarded by the owner; its row count is the answer's
    /// `deleted`.
    pub fn statement(&self, owner: &str) -> Statement {
        let owner = SqlParam::Text(owner.to_owned());
        match self {
            Self::Chats(ids) => {
                let ids = serde_json::to_string(ids).expect("UUIDs serialise");
                Statement::new(DELETE_OWNED_CHATS, vec![owner, SqlParam::Text(ids)])
            }
            Self::All => Statement::new(DELETE_EVERY_OWNED_CHAT, vec![owner]),
        }
    }
}

/// `{"success": true, "deleted": n}`: how many of the caller's chats went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkDeleted {
    pub success: bool,
    pub deleted: u64,
}

/// The title a `PATCH /api/chat/:chatId/title` body asks for: exactly
/// `{"title": "..."}`, trimmed, 1 to [`MAX_TITLE_CHARS`] characters, none
/// of them a control character (a title is one line of the sidebar).
pub fn requested_title(body: &[u8]) -> Result<String, ApiError> {
    let mut object = JsonObject::parse(body, &[TITLE], TITLE_EXAMPLE)?;
    one_line_name(
        TITLE,
        object.take_required(TITLE)?,
        MAX_TITLE_CHARS,
        TITLE_EXAMPLE,
    )
}

/// A name shown as one line of the sidebar (a chat's title, a folder's
/// name): a string, trimmed, 1 to `max_chars` characters, none of them a
/// control character.
pub fn one_line_name(
    field: &str,
    value: Value,
    max_chars: usize,
    example: &str,
) -> Result<String, ApiError> {
    let Value::String(name) = value else {
        return Err(ApiError::bad_request(format!(
            "{field} must be a string, such as {example}."
        )));
    };
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(ApiError::bad_request(format!(
            "{field} is empty; give it a name."
        )));
    }
    if chars > max_chars {
        return Err(ApiError::bad_request(format!(
            "{field} has {chars} characters; at most {max_chars} are allowed."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} holds a control character (a line break, a tab or the like); it must be one line of text."
        )));
    }
    Ok(name.to_owned())
}

/// The `PATCH /api/chat/:chatId/pinned` body: exactly `{"pinned": bool}`.
pub fn requested_pin(body: &[u8]) -> Result<bool, ApiError> {
    requested_flag(body, PINNED, PINNED_EXAMPLE)
}

/// The `PATCH /api/chat/:chatId/archived` body: exactly `{"archived": bool}`.
pub fn requested_archive(body: &[u8]) -> Result<bool, ApiError> {
    requested_flag(body, ARCHIVED, ARCHIVED_EXAMPLE)
}

fn requested_flag(body: &[u8], field: &str, example: &str) -> Result<bool, ApiError> {
    let mut object = JsonObject::parse(body, &[field], example)?;
    match object.take_required(field)? {
        Value::Bool(flag) => Ok(flag),
        _ => Err(ApiError::bad_request(format!(
            "{field} must be true or false, such as {example}."
        ))),
    }
}

/// The `PATCH /api/chat/:chatId/folder` body: exactly `{"folderId": id}`,
/// or `{"folderId": null}` for no folder.
pub fn requested_folder(body: &[u8]) -> Result<Option<Uuid>, ApiError> {
    let mut object = JsonObject::parse(body, &[FOLDER_ID], FOLDER_ID_EXAMPLE)?;
    match object.take_required(FOLDER_ID)? {
        Value::Null => Ok(None),
        Value::String(id) => Uuid::parse_str(&id).map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "folderId must be a folder's id (a UUID) or null, such as {FOLDER_ID_EXAMPLE}."
            ))
        }),
        _ => Err(ApiError::bad_request(format!(
            "folderId must be a folder's id (a UUID) or null, such as {FOLDER_ID_EXAMPLE}."
        ))),
    }
}

/// The visibility a `PATCH /api/chat/:chatId/visibility` body asks for:
/// exactly `{"visibility": "public" | "private"}`.
pub fn requested_visibility(body: &[u8]) -> Result<Visibility, ApiError> {
    let mut object = JsonObject::parse(body, &[VISIBILITY], VISIBILITY_EXAMPLE)?;
    match object.take_required(VISIBILITY)? {
        Value::String(value) => Visibility::from_request(&value),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request(r#"visibility must be "public" or "private"."#))
}

/// `{"success": true}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub success: bool,
}

/// `{"success": true, "visibility": "public" | "private"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisibilityChanged {
    pub success: bool,
    pub visibility: Visibility,
}

/// `{"success": true, "pinned": bool}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinChanged {
    pub success: bool,
    pub pinned: bool,
}

/// `{"success": true, "archived": bool}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveChanged {
    pub success: bool,
    pub archived: bool,
}

/// `{"success": true, "folderId": id | null}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filed {
    pub success: bool,
    #[serde(rename = "folderId")]
    pub folder_id: Option<Uuid>,
}

/// `{"success": true, "title": "..."}`: the title as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renamed {
    pub success: bool,
    pub title: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_id() -> Uuid {
        Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap()
    }

    #[test]
    fn a_bulk_delete_names_chats_or_all_and_only_ever_the_callers() {
        let ids = BulkDelete::from_body(format!(r#"{{"chatIds":["{}"]}}"#, chat_id()).as_bytes());
        assert_eq!(ids, Ok(BulkDelete::Chats(vec![chat_id()])));
        let statement = ids.unwrap().statement("ada");
        assert_eq!(
            statement.params,
            [
                SqlParam::Text("ada".into()),
                SqlParam::Text(format!(r#"["{}"]"#, chat_id()))
            ]
        );
        assert!(statement.sql.contains(r#"WHERE "userId" = $1 AND id IN"#));
        assert_eq!(
            BulkDelete::from_body(br#"{"all":true}"#),
            Ok(BulkDelete::All)
        );
        assert!(
            BulkDelete::All
                .statement("ada")
                .sql
                .ends_with(r#"WHERE "userId" = $1"#)
        );
        let too_many = json!({"chatIds": vec![chat_id(); MAX_BULK_DELETE + 1]}).to_string();
        for body in [
            r#"{"all":false}"#,
            r#"{"all":"yes"}"#,
            r#"{"chatIds":[]}"#,
            r#"{"chatIds":["nope"]}"#,
            r#"{"chatIds":"123e4567-e89b-12d3-a456-426614174000"}"#,
            r#"{"chatIds":[],"all":true}"#,
            "{}",
            too_many.as_str(),
        ] {
            assert_eq!(
                BulkDelete::from_body(body.as_bytes()).unwrap_err().status,
                400,
                "{body}"
            );
        }
    }

    #[test]
    fn writes_are_guarded_by_the_owner() {
        let delete = delete_statement(chat_id(), "ada");
        assert_eq!(
            delete.params,
            vec![SqlParam::Uuid(chat_id()), SqlParam::Text("ada".into())]
        );
        assert!(delete.sql.contains(r#"AND "userId" = $2"#));
        let update = set_visibility_statement(chat_id(), "ada", Visibility::Public);
        assert_eq!(
            update.params,
            vec![
                SqlParam::Uuid(chat_id()),
                SqlParam::Text("ada".into()),
                SqlParam::Text("public".into())
            ]
        );
        assert!(update.sql.contains(r#"AND "userId" = $2"#));
        let rename = rename_statement(chat_id(), "ada", "Plans");
        assert_eq!(
            rename.params,
            vec![
                SqlParam::Uuid(chat_id()),
                SqlParam::Text("ada".into()),
                SqlParam::Text("Plans".into())
            ]
        );
        assert!(rename.sql.contains(r#"AND "userId" = $2"#));
        assert!(rename.sql.contains(r#""renamedAt" = CURRENT_TIMESTAMP"#));
    }

    #[test]
    fn reads_the_requested_title_trimmed() {
        assert_eq!(
            requested_title(br#"{"title":"  Trip to Lisbon \u00a0"}"#),
            Ok("Trip to Lisbon".to_owned())
        );
        let longest = "\u{e9}".repeat(MAX_TITLE_CHARS);
        assert_eq!(
            requested_title(json!({ "title": longest }).to_string().as_bytes()),
            Ok(longest)
        );
        assert_eq!(
            requested_title("{\"title\":\"Caf\u{e9} \u{1f600} <b>\"}".as_bytes()),
            Ok("Caf\u{e9} \u{1f600} <b>".to_owned())
        );
    }

    #[test]
    fn a_bad_title_is_refused_saying_why() {
        let too_long = json!({ "title": "x".repeat(MAX_TITLE_CHARS + 1) }).to_string();
        let cases = [
            (r#"{"title":""}"#, "title is empty"),
            (r#"{"title":" \n\t "}"#, "title is empty"),
            (r#"{"title":"a\nb"}"#, "title holds a control character"),
            (r#"{"title":"a\u0000b"}"#, "title holds a control character"),
            (r#"{"title":"a\u007fb"}"#, "title holds a control character"),
            (too_long.as_str(), "title has 201 characters; at most 200"),
            (r#"{"title":1}"#, "title must be a string"),
            (r#"{"title":null}"#, "title must be a string"),
            (r#"{"title":["a"]}"#, "title must be a string"),
            ("{}", "The field `title` is missing."),
            (
                r#"{"title":"a","visibility":"public"}"#,
                "Unknown field `visibility`",
            ),
        ];
        for (body, start) in cases {
            let error = requested_title(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, 400, "{body}");
            assert!(
                error.message.starts_with(start),
                "{body}: {}",
                error.message
            );
        }
    }

    #[test]
    fn reads_the_requested_visibility() {
        assert_eq!(
            requested_visibility(br#"{"visibility":"public"}"#),
            Ok(Visibility::Public)
        );
        assert_eq!(
            requested_visibility(b"{ \"visibility\" : \"private\" }\n"),
            Ok(Visibility::Private)
        );
    }

    #[test]
    fn a_bad_value_is_refused_without_repeating_it() {
        let huge = format!(r#"{{"visibility":"{}"}}"#, "p".repeat(100_000));
        for body in [
            r#"{"visibility":1}"#,
            r#"{"visibility":null}"#,
            r#"{"visibility":true}"#,
            r#"{"visibility":["public"]}"#,
            r#"{"visibility":{"value":"public"}}"#,
            r#"{"visibility":"Public"}"#,
            r#"{"visibility":"shared"}"#,
            r#"{"visibility":""}"#,
            &huge,
        ] {
            let error = requested_visibility(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, 400, "{body}");
            assert_eq!(
                error.message, r#"visibility must be "public" or "private"."#,
                "{body}"
            );
        }
    }

    #[test]
    fn body_shape_errors_name_the_problem() {
        let cases = [
            ("", "The request body is empty"),
            ("{", "The request body is not valid JSON"),
            ("[]", "The request body must be a JSON object"),
            ("{}", "The field `visibility` is missing."),
            (
                r#"{"visibility":"public","title":"x"}"#,
                "Unknown field `title`: this request accepts only `visibility`.",
            ),
            (
                r#"{"visibility":"public","visibility":"private"}"#,
                "The field `visibility` is given more than once",
            ),
        ];
        for (body, start) in cases {
            let error = requested_visibility(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, 400, "{body}");
            assert!(
                error.message.starts_with(start),
                "{body}: {}",
                error.message
            );
        }
    }

    #[test]
    fn answers_serialise_as_documented() {
        assert_eq!(
            serde_json::to_value(Deleted { success: true }).unwrap(),
            json!({"success": true})
        );
        assert_eq!(
            serde_json::to_value(VisibilityChanged {
                success: true,
                visibility: Visibility::Private
            })
            .unwrap(),
            json!({"success": true, "visibility": "private"})
        );
        assert_eq!(
            serde_json::to_value(Renamed {
                success: true,
                title: "Plans".into()
            })
            .unwrap(),
            json!({"success": true, "title": "Plans"})
        );
    }
}
