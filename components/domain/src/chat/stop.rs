//! Stopping a reply: `POST /api/chat/:chatId/stop`.
//!
//! The stop request may reach another instance (or another process) than
//! the one streaming the reply, so it leaves a signal in the key-value store
//! that every instance shares: the time of the request under the chat's
//! [`stop_key`]. A streaming reply looks at its chat's key every
//! [`STOP_CHECK_INTERVAL`], on a timer of its own rather than per chunk, so
//! a silent model can be stopped too and chunks pay nothing. A signal stops
//! only the replies that began before it, so an old one never stops a later
//! reply and needs no removal on the request path; the daily sweep of the
//! store drops signals older than [`STOP_SIGNAL_LIFETIME`].

use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// How often a streaming reply looks for a stop signal: a stop takes effect
/// within this (plus one key-value read).
pub const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Every key of a stop signal starts so.
pub const STOP_PREFIX: &str = "stop/";

/// Long past any stop's effect: a signal this old has stopped whatever it
/// was going to stop.
pub const STOP_SIGNAL_LIFETIME: Duration = Duration::from_secs(3600);

/// Where a stop of the chat's replies is signalled.
pub fn stop_key(chat_id: Uuid) -> String {
    format!("{STOP_PREFIX}{chat_id}")
}

/// The signal's value: when the stop was asked for (ms since the epoch).
pub fn signal(requested_at_ms: u64) -> Vec<u8> {
    requested_at_ms.to_string().into_bytes()
}

/// When the signal was given, if it is one.
fn requested_at(signal: &[u8]) -> Option<u64> {
    std::str::from_utf8(signal).ok()?.parse().ok()
}

/// Whether the stored signal stops a reply that began at `reply_started_ms`:
/// only a stop asked for after the reply began. Anything unreadable stops
/// nothing.
pub fn stops(signal: Option<&[u8]>, reply_started_ms: u64) -> bool {
    signal
        .and_then(requested_at)
        .is_some_and(|requested| requested >= reply_started_ms)
}

/// Whether a stored signal should go in the store's sweep: old, or not a
/// signal at all.
pub fn prunable(signal: Option<&[u8]>, now_ms: u64) -> bool {
    let lifetime = STOP_SIGNAL_LIFETIME.as_millis() as u64;
    signal
        .and_then(requested_at)
        .is_none_or(|requested| now_ms.saturating_sub(requested) > lifetime)
}

/// `{"success": true}`, with 202: the reply streaming in the chat, if any,
/// ends within a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopRequested {
    pub success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_stops_only_replies_that_began_before_it() {
        let stop = signal(1_000);
        assert!(stops(Some(&stop), 999));
        assert!(stops(Some(&stop), 1_000));
        assert!(!stops(Some(&stop), 1_001), "a later reply goes on");
        assert!(!stops(None, 0));
        assert!(!stops(Some(b"soon"), 0));
        assert!(!stops(Some(b""), 0));
    }

    #[test]
    fn the_key_names_the_chat() {
        let chat = Uuid::from_u128(7);
        assert_eq!(stop_key(chat), format!("stop/{chat}"));
        assert!(stop_key(chat).starts_with(STOP_PREFIX));
    }

    #[test]
    fn old_or_unreadable_signals_are_swept() {
        let hour = STOP_SIGNAL_LIFETIME.as_millis() as u64;
        let stop = signal(10_000);
        assert!(!prunable(Some(&stop), 10_000 + hour));
        assert!(prunable(Some(&stop), 10_001 + hour));
        assert!(prunable(Some(b"?"), 0));
        assert!(prunable(None, 0));
    }

    #[test]
    fn the_answer_serialises_as_documented() {
        assert_eq!(
            serde_json::to_value(StopRequested { success: true }).unwrap(),
            serde_json::json!({"success": true})
        );
    }
}
