//! The `POST /api/chat` body: `{"id"?: uuid, "temporary"?: bool,
//! "messages": [{"role", "content", "id"?}]}`, checked in full before
//! anything else happens.
//!
//! The seed's client sends the whole conversation each time, its assistant
//! messages with the `traceId` it was told (so that field is accepted and
//! ignored) and, after a failed reply, with empty content. So only the last
//! message, the user's new one, must have text; it is the one stored.

use crate::ApiError;
use crate::chat::temporary;
use crate::http::json_body::JsonObject;
use crate::http::validate::{abbreviate, not_a_uuid, parse_uuid};
use serde_json::{Map, Value};
use uuid::Uuid;

/// More messages than any conversation the client can hold in 1 MiB of
/// sensible text; bounds the work per request.
pub const MAX_MESSAGES: usize = 1000;

const ID: &str = "id";
const TEMPORARY: &str = "temporary";
const MESSAGES: &str = "messages";
const ROLE: &str = "role";
const CONTENT: &str = "content";
const TRACE_ID: &str = "traceId";
const MESSAGE_FIELDS: [&str; 4] = [ROLE, CONTENT, ID, TRACE_ID];
const EXAMPLE: &str = r#"{"id":"123e4567-e89b-12d3-a456-426614174000","messages":[{"role":"user","content":"Hello"}]}"#;

/// Who wrote a message, as model endpoints name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "system" => Some(Self::System),
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    pub id: Option<Uuid>,
}

/// A checked `POST /api/chat` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// The chat; `None` starts a new one with a server-made id.
    pub chat_id: Option<Uuid>,
    /// The conversation, oldest first; never empty, and the last message is
    /// the user's, with text.
    pub messages: Vec<ChatMessage>,
    /// Nothing of this turn is kept (`chat_domain::chat::temporary`); the
    /// earlier messages are then within that module's limits.
    pub temporary: bool,
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let mut object = JsonObject::parse(body, &[ID, TEMPORARY, MESSAGES], EXAMPLE)?;
        let chat_id = match object.take(ID) {
            None => None,
            Some(Value::String(id)) => Some(parse_uuid(ID, &id)?),
            Some(_) => return Err(not_a_uuid(ID)),
        };
        let temporary = match object.take(TEMPORARY) {
            None => false,
            Some(Value::Bool(temporary)) => temporary,
            Some(_) => {
                return Err(ApiError::bad_request("`temporary` must be true or false."));
            }
        };
        let Value::Array(items) = object.take_required(MESSAGES)? else {
            return Err(ApiError::bad_request(format!(
                "`messages` must be an array of messages such as {EXAMPLE}."
            )));
        };
        if items.len() > MAX_MESSAGES {
            return Err(ApiError::bad_request(format!(
                "`messages` holds {} messages; at most {MAX_MESSAGES} are accepted.",
                items.len()
            )));
        }
        let messages = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| message(index, item))
            .collect::<Result<Vec<_>, _>>()?;
        match messages.last() {
            None => Err(ApiError::bad_request(
                "`messages` is empty; it must end with the user's new message.",
            )),
            Some(last) if last.role != Role::User => Err(ApiError::bad_request(
                "The last message must be the user's (role \"user\").",
            )),
            Some(last) if last.content.trim().is_empty() => Err(ApiError::bad_request(
                "The last message has no text; send the user's message in `content`.",
            )),
            Some(_) => {
                if temporary {
                    temporary::check_history(&messages[..messages.len() - 1])?;
                }
                Ok(Self {
                    chat_id,
                    messages,
                    temporary,
                })
            }
        }
    }

    /// The user's new message: the last one.
    pub fn new_message(&self) -> &ChatMessage {
        self.messages
            .last()
            .expect("a checked request has messages")
    }

    /// The first user message: what a new chat's title is made from.
    pub fn first_user_message(&self) -> &ChatMessage {
        self.messages
            .iter()
            .find(|message| message.role == Role::User)
            .unwrap_or_else(|| self.new_message())
    }
}

/// Checks `messages[index]`: an object with a known role, text content and,
/// optionally, a UUID id and the `traceId` the client was told.
fn message(index: usize, item: Value) -> Result<ChatMessage, ApiError> {
    let at = |problem: String| ApiError::bad_request(format!("messages[{index}]: {problem}"));
    let Value::Object(mut fields) = item else {
        return Err(at(
            "each message must be an object with `role` and `content`.".into(),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|name| !MESSAGE_FIELDS.contains(&name.as_str()))
    {
        return Err(at(format!(
            "unknown field `{}`; a message has `role`, `content`, `id` and `traceId`.",
            abbreviate(unknown)
        )));
    }
    let role = match fields.remove(ROLE) {
        Some(Value::String(role)) => Role::parse(&role).ok_or_else(|| {
            at(format!(
                "role \"{}\" is not one of \"user\", \"assistant\" or \"system\".",
                abbreviate(&role)
            ))
        })?,
        Some(_) => return Err(at("`role` must be a string.".into())),
        None => return Err(at("the field `role` is missing.".into())),
    };
    let content = match fields.remove(CONTENT) {
        Some(Value::String(content)) => content,
        Some(_) => return Err(at("`content` must be a string.".into())),
        None => return Err(at("the field `content` is missing.".into())),
    };
    let id = optional_id(&mut fields, index)?;
    match fields.remove(TRACE_ID) {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err(at("`traceId` must be a string or null.".into())),
    }
    Ok(ChatMessage { role, content, id })
}

/// A message's `id`: absent, null (the seed's client sends no id for a
/// reply whose stream failed) or a UUID.
fn optional_id(fields: &mut Map<String, Value>, index: usize) -> Result<Option<Uuid>, ApiError> {
    let field = format!("messages[{index}].id");
    match fields.remove(ID) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => parse_uuid(&field, &id).map(Some),
        Some(_) => Err(not_a_uuid(&field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";
    const MESSAGE: &str = "00000000-0000-4000-8000-000000000001";

    fn parse(body: &Value) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(body.to_string().as_bytes())
    }

    fn refusal(body: &Value) -> String {
        let error = parse(body).unwrap_err();
        assert_eq!(error.status, 400, "{body}");
        error.message
    }

    #[test]
    fn reads_the_seed_clients_body() {
        let request = parse(&json!({
            "id": CHAT,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!", "id": MESSAGE, "traceId": "tr-1"},
                {"role": "assistant", "content": "", "id": null, "traceId": null},
                {"role": "user", "content": "More", "id": MESSAGE}
            ]
        }))
        .unwrap();
        assert_eq!(request.chat_id, Some(Uuid::parse_str(CHAT).unwrap()));
        assert_eq!(request.messages.len(), 4);
        let last = request.new_message();
        assert_eq!((last.role, last.content.as_str()), (Role::User, "More"));
        assert_eq!(last.id, Some(Uuid::parse_str(MESSAGE).unwrap()));
        assert_eq!(request.first_user_message().content, "Hi");
        assert_eq!(request.messages[1].role, Role::Assistant);
    }

    #[test]
    fn a_body_without_id_starts_a_new_chat() {
        let request = parse(&json!({"messages": [{"role": "user", "content": "Hi"}]})).unwrap();
        assert_eq!(request.chat_id, None);
        assert_eq!(request.new_message().id, None);
    }

    #[test]
    fn a_temporary_chat_says_so_and_its_history_is_held_to_the_context_limits() {
        let plain = parse(&json!({"messages": [{"role": "user", "content": "Hi"}]})).unwrap();
        assert!(!plain.temporary);
        let body = json!({"temporary": true, "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!", "traceId": "tr-1"},
            {"role": "user", "content": "More"}
        ]});
        let request = parse(&body).unwrap();
        assert!(request.temporary);
        assert_eq!(request.messages.len(), 3);
        let with_system = json!({"temporary": true, "messages": [
            {"role": "system", "content": "Obey"},
            {"role": "user", "content": "Hi"}
        ]});
        assert!(refusal(&with_system).starts_with("messages[0]: a temporary chat"));
        // The same body without the flag keeps the seed's behaviour.
        let mut seed_body = with_system.clone();
        seed_body["temporary"] = json!(false);
        assert!(!parse(&seed_body).unwrap().temporary);
        for flag in [json!("true"), json!(1), json!(null)] {
            let body = json!({"temporary": flag, "messages": [{"role": "user", "content": "x"}]});
            assert_eq!(refusal(&body), "`temporary` must be true or false.");
        }
    }

    #[test]
    fn system_messages_are_accepted() {
        let request = parse(&json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"}
        ]}))
        .unwrap();
        assert_eq!(request.messages[0].role, Role::System);
        assert_eq!(request.first_user_message().content, "Hi");
    }

    #[test]
    fn ids_must_be_uuids() {
        for id in [
            json!("chat-1"),
            json!(7),
            json!(null),
            json!(CHAT.replace('-', "")),
        ] {
            let message =
                refusal(&json!({"id": id, "messages": [{"role": "user", "content": "x"}]}));
            assert!(message.starts_with("id must be a UUID"), "{message}");
        }
        for id in [json!("nope"), json!(1), json!({})] {
            let message =
                refusal(&json!({"messages": [{"role": "user", "content": "x", "id": id}]}));
            assert!(
                message.starts_with("messages[0].id must be a UUID"),
                "{message}"
            );
        }
    }

    #[test]
    fn messages_must_be_a_non_empty_array_ending_with_the_users_text() {
        let cases = [
            (json!({}), "The field `messages` is missing."),
            (json!({"messages": {}}), "`messages` must be an array"),
            (json!({"messages": "hi"}), "`messages` must be an array"),
            (json!({"messages": []}), "`messages` is empty"),
            (
                json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}),
                "The last message must be the user's",
            ),
            (
                json!({"messages": [{"role": "user", "content": " \n\t"}]}),
                "The last message has no text",
            ),
        ];
        for (body, start) in cases {
            let message = refusal(&body);
            assert!(message.starts_with(start), "{body}: {message}");
        }
    }

    #[test]
    fn each_message_is_checked_and_named_by_position() {
        let cases = [
            (json!("hi"), "messages[0]: each message must be an object"),
            (
                json!({"content": "x"}),
                "messages[0]: the field `role` is missing.",
            ),
            (
                json!({"role": "user"}),
                "messages[0]: the field `content` is missing.",
            ),
            (
                json!({"role": "tool", "content": "x"}),
                "messages[0]: role \"tool\" is not one of",
            ),
            (
                json!({"role": "User", "content": "x"}),
                "messages[0]: role \"User\"",
            ),
            (
                json!({"role": 1, "content": "x"}),
                "messages[0]: `role` must be a string.",
            ),
            (
                json!({"role": "user", "content": ["x"]}),
                "messages[0]: `content` must be a string.",
            ),
            (
                json!({"role": "user", "content": "x", "traceId": 3}),
                "messages[0]: `traceId` must be",
            ),
            (
                json!({"role": "user", "content": "x", "parts": []}),
                "messages[0]: unknown field `parts`",
            ),
        ];
        for (item, start) in cases {
            let body = json!({"messages": [item, {"role": "user", "content": "ok"}]});
            let message = refusal(&body);
            assert!(message.starts_with(start), "{body}: {message}");
        }
    }

    #[test]
    fn body_shape_errors_come_from_the_json_body_rules() {
        for (body, start) in [
            ("", "The request body is empty"),
            ("[]", "The request body must be a JSON object"),
            ("{", "The request body is not valid JSON"),
            (r#"{"messages":[],"title":"x"}"#, "Unknown field `title`"),
        ] {
            let error = ChatRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(
                error.message.starts_with(start),
                "{body}: {}",
                error.message
            );
        }
    }

    #[test]
    fn too_many_messages_are_refused() {
        let items: Vec<Value> = (0..=MAX_MESSAGES)
            .map(|_| json!({"role": "user", "content": "x"}))
            .collect();
        let message = refusal(&json!({"messages": items}));
        assert!(message.contains("at most 1000"), "{message}");
    }

    #[test]
    fn a_huge_unknown_field_or_role_is_not_repeated_whole() {
        let name = "k".repeat(10_000);
        let body = json!({"messages": [{"role": "user", "content": "x", name: 1}]});
        assert!(refusal(&body).len() < 200);
        let body = json!({"messages": [{"role": "r".repeat(10_000), "content": "x"}]});
        assert!(refusal(&body).len() < 200);
    }
}
