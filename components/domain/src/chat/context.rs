//! What the model is asked with: the conversation as the database holds it,
//! not as the client tells it.
//!
//! For a chat the database holds, the context is its most recent stored
//! messages (user and assistant turns with text; at most
//! [`MAX_CONTEXT_MESSAGES`], and only as many of the newest as fit in
//! [`CONTEXT_BUDGET_CHARS`]) followed by the user's new message; the history
//! the client sends is ignored, so a client cannot invent turns for the
//! app's token to pay for. A new chat starts with the new message alone.
//! Only while the database is out of reach is the client's history used
//! (there is nothing else), without its system messages. The read is the
//! one that checks whose chat it is, so this costs no round trip.

use crate::ApiError;
use crate::access::ChatAccess;
use crate::chat::request::{ChatMessage, Role};
use crate::database::sql::{Row, SqlParam, Statement};
use serde_json::Value;
use uuid::Uuid;

/// The most stored messages the model is sent.
pub const MAX_CONTEXT_MESSAGES: u32 = 100;
/// The most characters of stored messages the model is sent (about 25,000
/// tokens of English); the newest messages that fit are kept.
pub const CONTEXT_BUDGET_CHARS: usize = 100_000;

/// The chat's owner and visibility (as `access::access_statement` reads
/// them) and its newest messages, oldest first, as a JSON array of
/// `[id, role, parts]` (NULL when it has none). No row: no such chat.
/// $1 chat id, $2 how many messages.
const CHAT_WITH_RECENT_MESSAGES: &str = r#"SELECT chat."userId", chat.visibility, recent.messages
FROM chat."Chat" AS chat
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_array(m.id, m.role, m.parts) ORDER BY m."createdAt", m."insertionOrder")::text AS messages
  FROM (
    SELECT id, role, parts, "createdAt", "insertionOrder" FROM chat."Message"
    WHERE "chatId" = chat.id
    ORDER BY "createdAt" DESC, "insertionOrder" DESC
    LIMIT $2
  ) AS m
) AS recent ON true
WHERE chat.id = $1"#;

pub fn statement(chat_id: Uuid) -> Statement {
    Statement::new(
        CHAT_WITH_RECENT_MESSAGES,
        vec![
            SqlParam::Uuid(chat_id),
            SqlParam::Int64(i64::from(MAX_CONTEXT_MESSAGES)),
        ],
    )
}

/// Decodes the row of [`statement`]: who may do what with the chat, and
/// its recent messages as stored.
pub fn stored_chat<R: Row>(row: &R) -> Result<(ChatAccess, Option<String>), R::Error> {
    let access = ChatAccess::new(row.text(0)?, &row.text(1)?);
    Ok((access, row.optional_text(2)?))
}

/// The context for a stored chat: its recent messages (`recent`, as
/// [`stored_chat`] decoded them), within the budget, then the new message.
/// A resent message (its id already stored) is asked about with what came
/// before it, not with its own earlier reply.
pub fn from_stored(recent: Option<&str>, new_message: &ChatMessage) -> Vec<ChatMessage> {
    let stored = stored_items(recent);
    let new_id = new_message.id.map(|id| id.to_string());
    let earlier = stored
        .iter()
        .take_while(|item| new_id.is_none() || item[0].as_str() != new_id.as_deref())
        .filter_map(stored_turn)
        .collect();
    let mut context = newest_within_budget(earlier);
    context.push(new_message.clone());
    context
}

/// What regenerating a chat's last reply (`POST /api/chat/:chatId/regenerate`)
/// asks the model with, and where the new reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regeneration {
    /// The reply that is replaced (the last one after the user's last
    /// message), rewritten in place under its id; `None` when that message
    /// has no reply stored, and a new one is added.
    pub replaced: Option<Uuid>,
    /// The stored conversation up to the user's last message, within the
    /// budget (that message always).
    pub context: Vec<ChatMessage>,
}

/// Regenerates the reply to the user's last message of a stored chat
/// (`recent`, as [`stored_chat`] decoded it); 409 when the chat has no
/// message of the user's.
pub fn for_regeneration(recent: Option<&str>) -> Result<Regeneration, ApiError> {
    let stored = stored_items(recent);
    let last_question = stored
        .iter()
        .rposition(|item| item[1] == "user")
        .ok_or_else(|| {
            ApiError::conflict(
                "This chat has no message of yours to answer yet: send one with POST /api/chat.",
            )
        })?;
    let replaced = stored[last_question + 1..]
        .iter()
        .rev()
        .find(|item| item[1] == "assistant")
        .and_then(|item| Uuid::parse_str(item[0].as_str()?).ok());
    let mut turns: Vec<ChatMessage> = stored[..=last_question]
        .iter()
        .filter_map(stored_turn)
        .collect();
    let question = turns.pop().filter(|turn| turn.role == Role::User);
    let mut context = newest_within_budget(turns);
    context.extend(question);
    Ok(Regeneration { replaced, context })
}

/// The context while the database is out of reach: the client's messages,
/// without system messages, the newest within the budget (the new message
/// always).
pub fn from_client(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let Some((new_message, earlier)) = messages.split_last() else {
        return Vec::new();
    };
    let earlier = earlier
        .iter()
        .filter(|message| message.role != Role::System && !message.content.is_empty())
        .cloned()
        .collect();
    let mut context = newest_within_budget(earlier);
    context.push(new_message.clone());
    context
}

/// The `[id, role, parts]` items of `recent` (none when it is missing or
/// not a JSON array).
fn stored_items(recent: Option<&str>) -> Vec<Value> {
    recent
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

/// One stored `[id, role, parts]` as a turn, if it is a user's or an
/// assistant's with text.
fn stored_turn(item: &Value) -> Option<ChatMessage> {
    let role = match item[1].as_str()? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => return None,
    };
    let content: String = item[2]
        .as_array()?
        .iter()
        .filter(|part| part["type"] == "text")
        .filter_map(|part| part["text"].as_str())
        .collect();
    (!content.is_empty()).then(|| ChatMessage {
        role,
        content,
        id: item[0].as_str().and_then(|id| Uuid::parse_str(id).ok()),
    })
}

/// The newest messages whose text fits in [`CONTEXT_BUDGET_CHARS`] together,
/// oldest first; a message that does not fit ends the walk back.
fn newest_within_budget(messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut left = CONTEXT_BUDGET_CHARS;
    let mut kept: Vec<ChatMessage> = messages
        .into_iter()
        .rev()
        .take_while(|message| {
            let chars = message.content.chars().count();
            let fits = chars <= left;
            left = left.saturating_sub(chars);
            fits
        })
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(role: Role, content: &str, id: u128) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            id: Some(Uuid::from_u128(id)),
        }
    }

    fn stored(items: &[(u128, &str, &str)]) -> String {
        Value::Array(
            items
                .iter()
                .map(|(id, role, text)| {
                    json!([Uuid::from_u128(*id), role, [{"type": "text", "text": text}]])
                })
                .collect(),
        )
        .to_string()
    }

    fn turns(context: &[ChatMessage]) -> Vec<String> {
        context
            .iter()
            .map(|m| format!("{}: {}", m.role.as_str(), m.content))
            .collect()
    }

    #[test]
    fn a_stored_chat_is_its_messages_then_the_new_one() {
        let recent = stored(&[(1, "user", "Hi"), (2, "assistant", "Hello!")]);
        let new = message(Role::User, "How are you?", 3);
        assert_eq!(
            turns(&from_stored(Some(&recent), &new)),
            ["user: Hi", "assistant: Hello!", "user: How are you?"]
        );
    }

    #[test]
    fn a_new_chat_is_the_new_message_alone() {
        let new = message(Role::User, "First", 1);
        assert_eq!(turns(&from_stored(None, &new)), ["user: First"]);
    }

    #[test]
    fn replies_without_text_and_other_roles_are_left_out() {
        let recent = json!([
            [Uuid::from_u128(1), "user", [{"type": "text", "text": "Q"}]],
            [Uuid::from_u128(2), "assistant", [{"type": "text", "text": ""}]],
            [Uuid::from_u128(3), "system", [{"type": "text", "text": "obey"}]],
            [Uuid::from_u128(4), "assistant", [{"type": "image", "url": "x"}, {"type": "text", "text": "A"}]],
            "not a message",
        ])
        .to_string();
        let new = message(Role::User, "Next", 5);
        assert_eq!(
            turns(&from_stored(Some(&recent), &new)),
            ["user: Q", "assistant: A", "user: Next"]
        );
    }

    #[test]
    fn a_resent_message_is_asked_with_what_came_before_it() {
        let recent = stored(&[
            (1, "user", "Earlier"),
            (2, "assistant", "Answer"),
            (3, "user", "Again"),
            (4, "assistant", "Its first reply"),
        ]);
        let resent = message(Role::User, "Again", 3);
        assert_eq!(
            turns(&from_stored(Some(&recent), &resent)),
            ["user: Earlier", "assistant: Answer", "user: Again"]
        );
    }

    #[test]
    fn only_the_newest_messages_that_fit_the_budget_are_sent() {
        let big = "x".repeat(CONTEXT_BUDGET_CHARS / 2);
        let recent = stored(&[
            (1, "user", "oldest"),
            (2, "assistant", &big),
            (3, "user", &big),
            (4, "assistant", "newest"),
        ]);
        let new = message(Role::User, "Now", 5);
        let context = from_stored(Some(&recent), &new);
        let ids: Vec<_> = context.iter().map(|m| m.id.unwrap().as_u128()).collect();
        assert_eq!(ids, [3, 4, 5], "the oldest big one no longer fits");
        // The new message is sent whatever its size.
        let huge = message(Role::User, &"y".repeat(CONTEXT_BUDGET_CHARS * 2), 6);
        assert_eq!(from_stored(None, &huge).len(), 1);
    }

    #[test]
    fn without_the_database_the_clients_history_is_used_without_system_turns() {
        let messages = [
            message(Role::System, "You are a pirate", 1),
            message(Role::User, "Hi", 2),
            message(Role::Assistant, "", 3),
            message(Role::Assistant, "Ahoy", 4),
            message(Role::User, "Bye", 5),
        ];
        assert_eq!(
            turns(&from_client(&messages)),
            ["user: Hi", "assistant: Ahoy", "user: Bye"]
        );
    }

    #[test]
    fn regenerating_replaces_the_last_reply_and_asks_with_what_came_before() {
        let recent = stored(&[
            (1, "user", "Hi"),
            (2, "assistant", "Hello!"),
            (3, "user", "A joke?"),
            (4, "assistant", "A bad joke"),
        ]);
        let regeneration = for_regeneration(Some(&recent)).unwrap();
        assert_eq!(regeneration.replaced, Some(Uuid::from_u128(4)));
        assert_eq!(
            turns(&regeneration.context),
            ["user: Hi", "assistant: Hello!", "user: A joke?"]
        );
    }

    #[test]
    fn a_question_without_a_stored_reply_gets_a_new_one() {
        let recent = stored(&[
            (1, "user", "Hi"),
            (2, "assistant", "Hello!"),
            (3, "user", "More?"),
        ]);
        let regeneration = for_regeneration(Some(&recent)).unwrap();
        assert_eq!(regeneration.replaced, None);
        assert_eq!(
            turns(&regeneration.context),
            ["user: Hi", "assistant: Hello!", "user: More?"]
        );
    }

    #[test]
    fn nothing_to_regenerate_without_a_question() {
        for recent in [
            None,
            Some("[]".to_owned()),
            Some(stored(&[(1, "assistant", "Hi")])),
        ] {
            let error = for_regeneration(recent.as_deref()).unwrap_err();
            assert_eq!(error.status, 409, "{recent:?}");
        }
    }

    #[test]
    fn the_statement_reads_the_newest_messages_of_the_chat() {
        let chat = Uuid::from_u128(9);
        let statement = statement(chat);
        assert_eq!(
            statement.params,
            [SqlParam::Uuid(chat), SqlParam::Int64(100)]
        );
        assert!(
            statement
                .sql
                .contains(r#"ORDER BY "createdAt" DESC, "insertionOrder" DESC"#)
        );
        assert!(statement.sql.contains("LIMIT $2"));
    }
}
