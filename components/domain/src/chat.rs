//! The owner's writes to a chat: `DELETE /api/chat/:chatId` and
//! `PATCH /api/chat/:chatId/visibility`.
//!
//! Each runs after [`crate::access::decide`] allowed it, and its statement
//! repeats the owner condition: a chat deleted in between changes zero rows,
//! which the component answers as not found.

use crate::ApiError;
use crate::access::Visibility;
use crate::json_body::JsonObject;
use crate::sql::{SqlParam, Statement};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Messages and votes go with the chat: their foreign keys cascade.
const DELETE_OWNED_CHAT: &str = r#"DELETE FROM chat."Chat" WHERE id = $1 AND "userId" = $2"#;

const SET_VISIBILITY_OF_OWNED_CHAT: &str =
    r#"UPDATE chat."Chat" SET visibility = $3 WHERE id = $1 AND "userId" = $2"#;

const VISIBILITY: &str = "visibility";
const VISIBILITY_EXAMPLE: &str = r#"{"visibility":"public"}"#;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_id() -> Uuid {
        Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap()
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
    }
}
