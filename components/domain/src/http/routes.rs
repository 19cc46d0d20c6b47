//! The API's request paths. Spin routes by prefix (`/api/chat/...` reaches the
//! history component whatever follows), so each component parses the full
//! path here: a path of no known shape is a 404, a chat id that is not a UUID
//! a 400.

use crate::ApiError;
use crate::http::validate::{abbreviate, parse_uuid};
use uuid::Uuid;

const CHAT_ID: &str = "chatId";
const MESSAGE_ID: &str = "messageId";

/// A path the API serves, with its chat id already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPath {
    /// `/api/session`
    Session,
    /// `/api/history`
    History,
    /// `/api/chat`: send a message, stream the reply.
    ChatStream,
    /// `/api/chat/:chatId`
    Chat(Uuid),
    /// `/api/chat/:chatId/visibility`
    ChatVisibility(Uuid),
    /// `/api/chat/:chatId/title`: rename the chat.
    ChatTitle(Uuid),
    /// `/api/chat/:chatId/stop`: stop the reply streaming in the chat.
    ChatStop(Uuid),
    /// `/api/chat/:chatId/regenerate`: replace the chat's last reply.
    ChatRegenerate(Uuid),
    /// `/api/chat/:chatId/stream`: follow the reply being written.
    ChatFollow(Uuid),
    /// `/api/messages/:chatId`
    Messages(Uuid),
    /// `/api/feedback`: rate a reply.
    Feedback,
    /// `/api/feedback/:chatId`: the chat's ratings.
    ChatFeedback(Uuid),
    /// `/api/feedback/:chatId/:messageId`: withdraw a rating.
    MessageFeedback(Uuid, Uuid),
}

impl ApiPath {
    /// Matches whole segments exactly: a trailing slash, an empty id or an
    /// extra segment is no API path (404).
    pub fn parse(path: &str) -> Result<Self, ApiError> {
        let segments: Vec<&str> = match path.strip_prefix("/api/") {
            Some(rest) => rest.split('/').collect(),
            None => return Err(no_route(path)),
        };
        let chat_id = |id: &str| parse_uuid(CHAT_ID, id);
        match segments.as_slice() {
            ["session"] => Ok(Self::Session),
            ["history"] => Ok(Self::History),
            ["chat"] => Ok(Self::ChatStream),
            ["chat", id] if !id.is_empty() => chat_id(id).map(Self::Chat),
            ["chat", id, "visibility"] if !id.is_empty() => chat_id(id).map(Self::ChatVisibility),
            ["chat", id, "title"] if !id.is_empty() => chat_id(id).map(Self::ChatTitle),
            ["chat", id, "stop"] if !id.is_empty() => chat_id(id).map(Self::ChatStop),
            ["chat", id, "regenerate"] if !id.is_empty() => chat_id(id).map(Self::ChatRegenerate),
            ["chat", id, "stream"] if !id.is_empty() => chat_id(id).map(Self::ChatFollow),
            ["messages", id] if !id.is_empty() => chat_id(id).map(Self::Messages),
            ["feedback"] => Ok(Self::Feedback),
            ["feedback", id] if !id.is_empty() => chat_id(id).map(Self::ChatFeedback),
            ["feedback", id, message] if !id.is_empty() && !message.is_empty() => Ok(
                Self::MessageFeedback(chat_id(id)?, parse_uuid(MESSAGE_ID, message)?),
            ),
            _ => Err(no_route(path)),
        }
    }

    /// The one method the path accepts, as an `Allow` header names it.
    pub fn method(self) -> &'static str {
        match self {
            Self::Session
            | Self::History
            | Self::Messages(_)
            | Self::ChatFeedback(_)
            | Self::ChatFollow(_) => "GET",
            Self::ChatStream | Self::ChatStop(_) | Self::ChatRegenerate(_) => "POST",
            Self::Chat(_) | Self::MessageFeedback(..) => "DELETE",
            Self::ChatVisibility(_) | Self::ChatTitle(_) => "PATCH",
            Self::Feedback => "PUT",
        }
    }
}

/// The 404 for a path no component serves.
pub fn no_route(path: &str) -> ApiError {
    ApiError::not_found(format!("There is nothing at {}.", abbreviate(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";

    fn chat_id() -> Uuid {
        Uuid::parse_str(CHAT).unwrap()
    }

    #[test]
    fn parses_every_shape_and_its_method() {
        let cases = [
            ("/api/session".to_owned(), ApiPath::Session, "GET"),
            ("/api/history".to_owned(), ApiPath::History, "GET"),
            ("/api/chat".to_owned(), ApiPath::ChatStream, "POST"),
            (
                format!("/api/chat/{CHAT}"),
                ApiPath::Chat(chat_id()),
                "DELETE",
            ),
            (
                format!("/api/chat/{CHAT}/visibility"),
                ApiPath::ChatVisibility(chat_id()),
                "PATCH",
            ),
            (
                format!("/api/chat/{CHAT}/title"),
                ApiPath::ChatTitle(chat_id()),
                "PATCH",
            ),
            (
                format!("/api/chat/{CHAT}/stop"),
                ApiPath::ChatStop(chat_id()),
                "POST",
            ),
            (
                format!("/api/chat/{CHAT}/regenerate"),
                ApiPath::ChatRegenerate(chat_id()),
                "POST",
            ),
            (
                format!("/api/chat/{CHAT}/stream"),
                ApiPath::ChatFollow(chat_id()),
                "GET",
            ),
            (
                format!("/api/messages/{CHAT}"),
                ApiPath::Messages(chat_id()),
                "GET",
            ),
            ("/api/feedback".to_owned(), ApiPath::Feedback, "PUT"),
            (
                format!("/api/feedback/{CHAT}"),
                ApiPath::ChatFeedback(chat_id()),
                "GET",
            ),
            (
                format!("/api/feedback/{CHAT}/{CHAT}"),
                ApiPath::MessageFeedback(chat_id(), chat_id()),
                "DELETE",
            ),
        ];
        for (path, expected, method) in cases {
            let parsed = ApiPath::parse(&path).unwrap();
            assert_eq!(parsed, expected, "{path}");
            assert_eq!(parsed.method(), method, "{path}");
        }
    }

    #[test]
    fn ids_in_any_letter_case_name_the_same_chat() {
        assert_eq!(
            ApiPath::parse(&format!("/api/messages/{}", CHAT.to_uppercase())).unwrap(),
            ApiPath::Messages(chat_id())
        );
    }

    #[test]
    fn a_malformed_chat_id_is_400_naming_it() {
        for path in [
            "/api/chat/not-a-uuid",
            "/api/chat/123/visibility",
            "/api/messages/123e4567e89b12d3a456426614174000",
            "/api/messages/%7B123e4567-e89b-12d3-a456-426614174000%7D",
        ] {
            let error = ApiPath::parse(path).unwrap_err();
            assert_eq!(error.status, 400, "{path}");
            assert!(error.message.starts_with("chatId must be a UUID"), "{path}");
        }
    }

    #[test]
    fn a_malformed_message_id_is_400_naming_it() {
        let error = ApiPath::parse(&format!("/api/feedback/{CHAT}/not-a-uuid")).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.starts_with("messageId must be a UUID"));
    }

    #[test]
    fn other_shapes_are_404() {
        for path in [
            "/",
            "/api",
            "/api/",
            "/api/chat/",
            "/api/chat//visibility",
            &format!("/api/chat/{CHAT}/"),
            &format!("/api/chat/{CHAT}/name"),
            &format!("/api/chat/{CHAT}/visibility/x"),
            "/api/messages",
            "/api/messages/",
            &format!("/api/messages/{CHAT}/extra"),
            "/api/feedback/",
            &format!("/api/feedback/{CHAT}/"),
            &format!("/api/feedback/{CHAT}/{CHAT}/x"),
            "/api/history/",
            "/api/sessions",
            "/admin/schema",
        ] {
            let error = ApiPath::parse(path).unwrap_err();
            assert_eq!(error.status, 404, "{path}");
        }
    }

    #[test]
    fn no_route_repeats_only_the_start_of_a_long_path() {
        let path = format!("/api/{}", "x".repeat(10_000));
        let error = no_route(&path);
        assert_eq!(error.status, 404);
        assert!(error.message.len() < 100, "{}", error.message);
    }
}
