//! A user's own folders, one level deep: `GET /api/folders`,
//! `POST /api/folders`, `PATCH /api/folders/:folderId` and
//! `DELETE /api/folders/:folderId`. A chat is filed in at most one folder
//! (`changes::file_statement`); deleting a folder leaves its chats in the
//! main list (the foreign key sets their `"folderId"` to NULL), never
//! deletes them. Every statement is guarded by the owner, so another
//! user's folder is a folder that does not exist: 404.

use crate::ApiError;
use crate::database::sql::{Row, SqlParam, Statement};
use crate::database::timestamp::UtcDateTime;
use crate::history::changes::{folder_not_found, one_line_name};
use crate::http::json_body::JsonObject;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// The most folders one user may have: all of them come in one answer.
pub const MAX_FOLDERS: u32 = 100;
/// The longest folder name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The highest position a folder may be given.
pub const MAX_POSITION: i64 = 1_000_000;

const NAME: &str = "name";
const POSITION: &str = "position";
const CREATE_EXAMPLE: &str = r#"{"name":"Work"}"#;
const CHANGE_EXAMPLE: &str = r#"{"name":"Work"} or {"position":2}"#;

/// The caller's folders in the sidebar's order. Selects, in order: id,
/// name, position, "createdAt" ([`folder`] decodes them).
const CALLERS_FOLDERS: &str = r#"SELECT id, name, position, "createdAt" FROM chat."Folder"
WHERE "userId" = $1
ORDER BY position, "createdAt", id
LIMIT $2"#;

/// A new folder goes last, unless the caller has [`MAX_FOLDERS`] already:
/// then no row is written (the count and the insert are one statement, so
/// two creations at once cannot both take the last place).
const CREATE_FOLDER: &str = r#"INSERT INTO chat."Folder" ("userId", name, position)
SELECT $1, $2, coalesce(max(position) + 1, 0) FROM chat."Folder" WHERE "userId" = $1
HAVING count(*) < $3
RETURNING id, name, position, "createdAt""#;

/// A NULL leaves that column as it is.
const CHANGE_FOLDER: &str = r#"UPDATE chat."Folder" SET name = coalesce($3, name), position = coalesce($4, position)
WHERE id = $1 AND "userId" = $2
RETURNING id, name, position, "createdAt""#;

const DELETE_FOLDER: &str = r#"DELETE FROM chat."Folder" WHERE id = $1 AND "userId" = $2"#;

const FOLDER_IS_CALLERS: &str =
    r#"SELECT EXISTS (SELECT 1 FROM chat."Folder" WHERE id = $1 AND "userId" = $2)"#;

/// One folder as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub created_at: UtcDateTime,
}

/// Decodes a row of [`CALLERS_FOLDERS`], [`CREATE_FOLDER`] or
/// [`CHANGE_FOLDER`] (the same columns).
pub fn folder<R: Row>(row: &R) -> Result<Folder, R::Error> {
    Ok(Folder {
        id: row.uuid(0)?,
        name: row.text(1)?,
        position: row.int32(2)?,
        created_at: row.timestamp(3)?,
    })
}

/// The `GET /api/folders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderList {
    pub data: Vec<Folder>,
}

pub fn list_statement(owner: &str) -> Statement {
    Statement::new(
        CALLERS_FOLDERS,
        vec![
            SqlParam::Text(owner.to_owned()),
            SqlParam::Int64(i64::from(MAX_FOLDERS)),
        ],
    )
}

pub fn create_statement(owner: &str, name: &str) -> Statement {
    Statement::new(
        CREATE_FOLDER,
        vec![
            SqlParam::Text(owner.to_owned()),
            SqlParam::Text(name.to_owned()),
            SqlParam::Int64(i64::from(MAX_FOLDERS)),
        ],
    )
}

/// The 409 for a folder past [`MAX_FOLDERS`].
pub fn too_many_folders() -> ApiError {
    ApiError::conflict(format!(
        "You have {MAX_FOLDERS} folders, the most there can be; delete one first."
    ))
}

pub fn change_statement(folder: Uuid, owner: &str, change: &FolderChange) -> Statement {
    Statement::new(
        CHANGE_FOLDER,
        vec![
            SqlParam::Uuid(folder),
            SqlParam::Text(owner.to_owned()),
            SqlParam::optional_text(change.name.as_deref()),
            change.position.map_or(SqlParam::Null, SqlParam::Int32),
        ],
    )
}

pub fn delete_statement(folder: Uuid, owner: &str) -> Statement {
    Statement::new(
        DELETE_FOLDER,
        vec![SqlParam::Uuid(folder), SqlParam::Text(owner.to_owned())],
    )
}

/// Answers one boolean: whether the folder is one of the caller's.
pub fn existence_statement(folder: Uuid, owner: &str) -> Statement {
    Statement::new(
        FOLDER_IS_CALLERS,
        vec![SqlParam::Uuid(folder), SqlParam::Text(owner.to_owned())],
    )
}

/// Decodes the rows of [`existence_statement`].
pub fn is_known<R: Row>(rows: &[R]) -> Result<bool, R::Error> {
    rows.first().map_or(Ok(false), |row| row.boolean(0))
}

/// The name a `POST /api/folders` body asks for: exactly `{"name": "..."}`.
pub fn requested_name(body: &[u8]) -> Result<String, ApiError> {
    let mut object = JsonObject::parse(body, &[NAME], CREATE_EXAMPLE)?;
    one_line_name(
        NAME,
        object.take_required(NAME)?,
        MAX_NAME_CHARS,
        CREATE_EXAMPLE,
    )
}

/// What a `PATCH /api/folders/:folderId` body changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderChange {
    pub name: Option<String>,
    pub position: Option<i32>,
}

/// `{"name": "..."}`, `{"position": n}` or both; at least one.
pub fn requested_change(body: &[u8]) -> Result<FolderChange, ApiError> {
    let mut object = JsonObject::parse(body, &[NAME, POSITION], CHANGE_EXAMPLE)?;
    let name = object
        .take(NAME)
        .map(|name| one_line_name(NAME, name, MAX_NAME_CHARS, CHANGE_EXAMPLE))
        .transpose()?;
    let position = object.take(POSITION).map(position).transpose()?;
    if name.is_none() && position.is_none() {
        return Err(ApiError::bad_request(format!(
            "Nothing to change: send {CHANGE_EXAMPLE}."
        )));
    }
    Ok(FolderChange { name, position })
}

fn position(value: Value) -> Result<i32, ApiError> {
    value
        .as_i64()
        .filter(|position| (0..=MAX_POSITION).contains(position))
        .and_then(|position| i32::try_from(position).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "position must be a whole number from 0 to {MAX_POSITION}."
            ))
        })
}

/// The 404 for a folder route whose folder is not the caller's.
pub fn not_found() -> ApiError {
    folder_not_found()
}

/// `{"success": true}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderDeleted {
    pub success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::sql::fake::{FakeRow, Value as Column};

    fn folder_id() -> Uuid {
        Uuid::parse_str("0b5c6d1e-8f3a-4c2b-9d7e-1a2b3c4d5e6f").unwrap()
    }

    #[test]
    fn rows_decode_as_each_statement_lists_them() {
        let at = UtcDateTime::from_parts(2026, 12, 7, 15, 0, 0, 0).unwrap();
        for sql in [CALLERS_FOLDERS, CREATE_FOLDER, CHANGE_FOLDER] {
            let row = FakeRow::laid_out_by(
                sql,
                &[
                    ("id", Column::Uuid(folder_id())),
                    ("name", Column::Text("Work")),
                    ("position", Column::Int32(3)),
                    (r#""createdAt""#, Column::Timestamp(at)),
                ],
            );
            assert_eq!(
                folder(&row),
                Ok(Folder {
                    id: folder_id(),
                    name: "Work".into(),
                    position: 3,
                    created_at: at,
                }),
                "{sql}"
            );
        }
    }

    #[test]
    fn every_statement_is_guarded_by_the_owner() {
        let change = FolderChange {
            name: Some("Work".into()),
            position: None,
        };
        for statement in [
            list_statement("ada"),
            create_statement("ada", "Work"),
            change_statement(folder_id(), "ada", &change),
            delete_statement(folder_id(), "ada"),
            existence_statement(folder_id(), "ada"),
        ] {
            assert!(
                statement.sql.contains(r#""userId" = $"#),
                "{}",
                statement.sql
            );
            assert!(statement.params.contains(&SqlParam::Text("ada".into())));
        }
        assert_eq!(
            change_statement(folder_id(), "ada", &change).params[2..],
            [SqlParam::Text("Work".into()), SqlParam::Null]
        );
    }

    #[test]
    fn names_are_one_trimmed_line() {
        assert_eq!(requested_name(br#"{"name":"  Work "}"#), Ok("Work".into()));
        for (body, error) in [
            (r#"{"name":""}"#, "name is empty"),
            (r#"{"name":"a\nb"}"#, "name holds a control character"),
            (r#"{"name":7}"#, "name must be a string"),
            (r#"{"title":"Work"}"#, "Unknown field `title`"),
            ("{}", "The field `name` is missing"),
        ] {
            let refused = requested_name(body.as_bytes()).unwrap_err();
            assert_eq!(refused.status, 400);
            assert!(
                refused.message.starts_with(error),
                "{body}: {}",
                refused.message
            );
        }
        let long = format!(r#"{{"name":"{}"}}"#, "é".repeat(MAX_NAME_CHARS + 1));
        assert!(
            requested_name(long.as_bytes())
                .unwrap_err()
                .message
                .contains("at most 100")
        );
    }

    #[test]
    fn a_change_names_at_least_one_thing_within_bounds() {
        assert_eq!(
            requested_change(br#"{"position":2}"#),
            Ok(FolderChange {
                name: None,
                position: Some(2)
            })
        );
        assert_eq!(
            requested_change(br#"{"name":"Home","position":0}"#),
            Ok(FolderChange {
                name: Some("Home".into()),
                position: Some(0)
            })
        );
        for body in [
            "{}",
            r#"{"position":-1}"#,
            r#"{"position":1.5}"#,
            r#"{"position":"2"}"#,
            r#"{"position":1000001}"#,
        ] {
            assert_eq!(
                requested_change(body.as_bytes()).unwrap_err().status,
                400,
                "{body}"
            );
        }
    }
}
