//! `GET /api/messages/:chatId`: a chat's messages, oldest first.
//!
//! Order: `"createdAt"`, then `"insertionOrder"` (migration 3), the order the
//! rows were written in. Messages written in one transaction share
//! `CURRENT_TIMESTAMP` as their `"createdAt"`, and a random UUID would order
//! such a user message and its reply by chance; insertion order keeps them as
//! they were written, and is unique, so the order is total and stable.

use crate::sql::{SqlParam, Statement};
use crate::timestamp::UtcDateTime;
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

/// Selects, in order: id, role, parts (as text), "traceId", "createdAt".
/// `parts` is a JSON column, which `spin:postgres` cannot return as a value
/// (only JSONB); as text it comes back verbatim.
const CHAT_MESSAGES: &str = r#"SELECT id, role, parts::text, "traceId", "createdAt"
FROM chat."Message"
WHERE "chatId" = $1
ORDER BY "createdAt" ASC, "insertionOrder" ASC"#;

pub fn messages_statement(chat_id: Uuid) -> Statement {
    Statement::new(CHAT_MESSAGES, vec![SqlParam::Uuid(chat_id)])
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
}

impl MessagesPage {
    pub fn live(data: Vec<MessageView>) -> Self {
        Self {
            data,
            source: MessagesSource::Live,
        }
    }

    /// The answer while the database is out of reach: no messages, marked as
    /// such, so the client keeps working in ephemeral mode.
    pub fn database_unreachable() -> Self {
        Self {
            data: Vec::new(),
            source: MessagesSource::Mock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";

    #[test]
    fn statement_orders_oldest_first_then_by_insertion() {
        let id = Uuid::parse_str(CHAT).unwrap();
        let statement = messages_statement(id);
        assert_eq!(statement.params, vec![SqlParam::Uuid(id)]);
        assert!(statement.sql.contains("parts::text"));
        assert!(
            statement
                .sql
                .contains(r#"ORDER BY "createdAt" ASC, "insertionOrder" ASC"#)
        );
    }

    #[test]
    fn live_page_serialises_like_the_seed() {
        let page = MessagesPage::live(vec![MessageView {
            id: Uuid::parse_str(CHAT).unwrap(),
            role: "assistant".into(),
            parts: RawValue::from_string(r#"[{"type": "text", "text": "hi"}]"#.into()).unwrap(),
            trace_id: Some("tr-1".into()),
            created_at: UtcDateTime::from_parts(2024, 5, 1, 12, 0, 0, 0).unwrap(),
        }]);
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            json!({
                "data": [{
                    "id": CHAT,
                    "role": "assistant",
                    "parts": [{"type": "text", "text": "hi"}],
                    "traceId": "tr-1",
                    "createdAt": "2024-05-01T12:00:00.000Z"
                }],
                "source": "live"
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
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["traceId"], serde_json::Value::Null);
    }

    #[test]
    fn the_unreachable_answer_is_an_empty_mock() {
        assert_eq!(
            serde_json::to_value(MessagesPage::database_unreachable()).unwrap(),
            json!({"data": [], "source": "mock"})
        );
    }
}
