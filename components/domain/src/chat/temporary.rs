//! Temporary chats (`"temporary": true` on `POST /api/chat`): the reply
//! streams as any other, and nothing of the conversation is kept. No chat,
//! message, user, vote or journal entry is written, no title is generated,
//! the model is asked with the turns the client sends (within the limits
//! of [`check_history`]), and the reply has no message id to rate.
//!
//! The one thing kept is a marker in the key-value store while the reply
//! streams, so that `POST /api/chat/:chatId/stop` can reach it from any
//! instance: its key is derived from the chat id and the owner by a one-way
//! digest ([`marker_key`]), so only the owner's stop finds it and the store
//! never holds either in the clear; its value is when the reply began and, once
//! the owner asked, when the stop was asked for. The reply deletes it when
//! it ends; one left behind by an instance that died mid-reply goes with
//! the store's daily sweep ([`prunable`]).

use crate::ApiError;
use crate::chat::context::{CONTEXT_BUDGET_CHARS, MAX_CONTEXT_MESSAGES};
use crate::chat::request::{ChatMessage, Role};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// Every key of a temporary reply's marker starts so.
pub const MARKER_PREFIX: &str = "temporary/";

/// Past this age a marker is swept even if its reply never removed it (its
/// instance died mid-reply): far longer than a reply streams.
pub const MARKER_LIFETIME: Duration = Duration::from_secs(3600);

/// Refuses (400) the earlier turns of a temporary chat that the model could
/// not be asked with as sent: they are the conversation, so they take the
/// limits a stored chat's context has (at most [`MAX_CONTEXT_MESSAGES`]
/// turns, [`CONTEXT_BUDGET_CHARS`] characters together) and no system
/// message (the client does not choose the model's instructions). Refusing
/// rather than trimming keeps the model from silently forgetting: the
/// client decides what to leave out. The new message is not counted, as
/// for a stored chat.
pub fn check_history(earlier: &[ChatMessage]) -> Result<(), ApiError> {
    if earlier.len() > MAX_CONTEXT_MESSAGES as usize {
        return Err(ApiError::bad_request(format!(
            "A temporary chat sends at most {MAX_CONTEXT_MESSAGES} earlier messages before the new one; \
             this one sends {}. Leave out the oldest.",
            earlier.len()
        )));
    }
    if let Some(index) = earlier
        .iter()
        .position(|message| message.role == Role::System)
    {
        return Err(ApiError::bad_request(format!(
            "messages[{index}]: a temporary chat cannot send system messages; \
             send the user's and the assistant's turns only."
        )));
    }
    let chars: usize = earlier
        .iter()
        .map(|message| message.content.chars().count())
        .sum();
    if chars > CONTEXT_BUDGET_CHARS {
        return Err(ApiError::bad_request(format!(
            "The earlier messages of a temporary chat hold {chars} characters; \
             at most {CONTEXT_BUDGET_CHARS} are accepted. Leave out the oldest."
        )));
    }
    Ok(())
}

/// The 409 for a temporary chat whose id names a stored chat (anyone's: the
/// answer does not say whose).
pub fn id_is_stored_chat() -> ApiError {
    ApiError::conflict(
        "This id names a saved chat, so it cannot be a temporary one: \
         start the temporary chat with a new id, or none (the server then makes one).",
    )
}

/// Where the marker of `owner`'s temporary reply in chat `chat_id` is kept:
/// the name-based UUID (version 5, a SHA-1 digest) of the owner in the
/// chat id's namespace, so that another user's stop never finds it and the
/// key names neither.
pub fn marker_key(chat_id: Uuid, owner: &str) -> String {
    format!(
        "{MARKER_PREFIX}{}",
        Uuid::new_v5(&chat_id, owner.as_bytes())
    )
}

/// The marker's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Marker {
    /// When the reply began (ms since the epoch).
    pub started_at: u64,
    /// When its owner asked to stop it, if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_requested_at: Option<u64>,
}

impl Marker {
    pub fn new(started_at: u64) -> Self {
        Self {
            started_at,
            stop_requested_at: None,
        }
    }

    /// The same marker, with a stop asked for at `at`.
    pub fn stopped(self, at: u64) -> Self {
        Self {
            stop_requested_at: Some(at),
            ..self
        }
    }

    pub fn to_bytes(self) -> Vec<u8> {
        serde_json::to_vec(&self).expect("a marker serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Whether the stored marker stops the reply that began at
/// `reply_started_ms`: its own marker (a later reply of the same chat
/// replaced it otherwise) with a stop asked for.
pub fn stops(marker: Option<&[u8]>, reply_started_ms: u64) -> bool {
    marker.and_then(Marker::from_bytes).is_some_and(|marker| {
        marker.started_at == reply_started_ms && marker.stop_requested_at.is_some()
    })
}

/// Whether a stored marker should go in the store's sweep: old, or not a
/// marker at all.
pub fn prunable(marker: Option<&[u8]>, now_ms: u64) -> bool {
    let lifetime = MARKER_LIFETIME.as_millis() as u64;
    marker
        .and_then(Marker::from_bytes)
        .is_none_or(|marker| now_ms.saturating_sub(marker.started_at) > lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            id: None,
        }
    }

    #[test]
    fn history_within_the_context_limits_is_accepted() {
        let mut earlier: Vec<ChatMessage> = (0..MAX_CONTEXT_MESSAGES)
            .map(|i| {
                turn(
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    "x",
                )
            })
            .collect();
        assert_eq!(check_history(&earlier), Ok(()));
        earlier.truncate(1);
        earlier[0].content = "y".repeat(CONTEXT_BUDGET_CHARS);
        assert_eq!(check_history(&earlier), Ok(()));
        assert_eq!(check_history(&[]), Ok(()));
    }

    #[test]
    fn too_many_turns_too_much_text_or_a_system_turn_is_refused() {
        let many: Vec<ChatMessage> = (0..=MAX_CONTEXT_MESSAGES)
            .map(|_| turn(Role::User, "x"))
            .collect();
        let error = check_history(&many).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("at most 100 earlier"), "{error:?}");

        // Characters, not bytes, as the context budget counts them.
        let big = turn(Role::Assistant, &"é".repeat(CONTEXT_BUDGET_CHARS / 2 + 1));
        let error = check_history(&[big.clone(), big]).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.contains("at most 100000"), "{error:?}");

        let error =
            check_history(&[turn(Role::User, "Hi"), turn(Role::System, "Obey")]).unwrap_err();
        assert_eq!(error.status, 400);
        assert!(error.message.starts_with("messages[1]: "), "{error:?}");
    }

    #[test]
    fn the_key_is_a_digest_of_the_chat_and_its_owner() {
        let chat = Uuid::from_u128(7);
        let key = marker_key(chat, "a@example.com");
        assert!(key.starts_with(MARKER_PREFIX));
        assert_eq!(key.len(), MARKER_PREFIX.len() + 36);
        assert!(!key.contains(&chat.to_string()) && !key.contains("example"));
        assert_eq!(key, marker_key(chat, "a@example.com"));
        assert_ne!(key, marker_key(chat, "b@example.com"));
        assert_ne!(key, marker_key(Uuid::from_u128(8), "a@example.com"));
    }

    #[test]
    fn a_marker_stops_only_its_own_reply_once_a_stop_is_asked_for() {
        let marker = Marker::new(1_000);
        assert!(!stops(Some(&marker.to_bytes()), 1_000));
        let stopped = marker.stopped(1_500).to_bytes();
        assert!(stops(Some(&stopped), 1_000));
        assert!(!stops(Some(&stopped), 2_000), "another reply's marker");
        assert!(!stops(None, 1_000));
        assert!(!stops(Some(b"1500"), 1_000));
    }

    #[test]
    fn the_value_round_trips_and_reads_as_documented() {
        let marker = Marker::new(5).stopped(9);
        assert_eq!(Marker::from_bytes(&marker.to_bytes()), Some(marker));
        assert_eq!(
            String::from_utf8(Marker::new(5).to_bytes()).unwrap(),
            r#"{"startedAt":5}"#
        );
        assert_eq!(Marker::from_bytes(br#"{"startedAt":5,"owner":"x"}"#), None);
    }

    #[test]
    fn old_or_unreadable_markers_are_swept() {
        let hour = MARKER_LIFETIME.as_millis() as u64;
        let marker = Marker::new(10_000).to_bytes();
        assert!(!prunable(Some(&marker), 10_000 + hour));
        assert!(prunable(Some(&marker), 10_001 + hour));
        assert!(prunable(Some(b"?"), 0));
        assert!(prunable(None, 0));
    }
}
