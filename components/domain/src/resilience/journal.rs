//! The write-behind journal: what `POST /api/chat` could not write because the
//! database was out of reach waits in the key-value store, and is written to
//! Postgres, oldest first, as soon as a request finds the database back.
//!
//! Every write is idempotent on its ids (a chat is created once, a message is
//! stored once, a reply is rewritten in place), so an entry replayed twice by
//! two instances at once, or replayed after a crash before it was deleted,
//! still ends as exactly one row.
//!
//! Layout in the store: one entry per write under [`ENTRY_PREFIX`], keyed so
//! that key order is replay order, and the [`PENDING_KEY`] marker that spares
//! every request a listing when the journal is empty. A writer stores its
//! entry before it sets the marker; a replayer deletes the marker before it
//! lists the entries. Whatever the interleaving, an entry is never left
//! behind without a marker pointing at it.

use crate::chat::conversation::MessageStatus;
use crate::database::sql::{Row, SqlParam, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Prefix of every journal entry's key (chat-host's metrics count them).
pub const ENTRY_PREFIX: &str = chat_contract::stores::JOURNAL_PREFIX;

/// Set while entries may be waiting.
pub const PENDING_KEY: &str = "journal-pending";

/// One write of a conversation, as performed at once or replayed later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
pub enum ConversationWrite {
    /// The caller is recorded, the chat claimed (created with `title` when
    /// new, refused when someone else's) and the user's message stored.
    UserMessage {
        user_id: String,
        email: String,
        chat_id: Uuid,
        title: String,
        message_id: Uuid,
        text: String,
    },
    /// The assistant's reply as it stands, in `owner`'s chat.
    Reply {
        chat_id: Uuid,
        owner: String,
        message_id: Uuid,
        text: String,
        trace_id: Option<String>,
        status: MessageStatus,
    },
    /// A new chat's generated title.
    Title {
        chat_id: Uuid,
        owner: String,
        title: String,
    },
    /// A rating of a reply in `owner`'s chat (`is_upvoted: None`: the
    /// rating withdrawn), made while the database was out of reach; its
    /// ownership was checked against the reply's kept record
    /// (`feedback::ReplyRecord`) and is checked again when it is replayed.
    Vote {
        chat_id: Uuid,
        message_id: Uuid,
        owner: String,
        email: String,
        is_upvoted: Option<bool>,
        comment: Option<String>,
    },
}

impl ConversationWrite {
    /// Replay order among writes stamped with the same millisecond: the user's
    /// message, then the reply, then the title, then a rating.
    fn rank(&self) -> u8 {
        match self {
            Self::UserMessage { .. } => 0,
            Self::Reply { .. } => 1,
            Self::Title { .. } => 2,
            Self::Vote { .. } => 3,
        }
    }

    /// The row this write is about; a later write of the same row (the next
    /// checkpoint of a reply) replaces its entry.
    fn subject(&self) -> Uuid {
        match self {
            Self::UserMessage { message_id, .. }
            | Self::Reply { message_id, .. }
            | Self::Vote { message_id, .. } => *message_id,
            Self::Title { chat_id, .. } => *chat_id,
        }
    }
}

/// A write waiting for the database, with the time it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Milliseconds since the Unix epoch; becomes the row's "createdAt".
    pub written_at: u64,
    #[serde(flatten)]
    pub write: ConversationWrite,
}

/// Why a stored entry could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("unreadable journal entry: {0}")]
pub struct CorruptEntry(#[from] serde_json::Error);

impl JournalEntry {
    pub fn new(written_at: u64, write: ConversationWrite) -> Self {
        Self { written_at, write }
    }

    /// `journal/<time, zero-padded>/<rank>/<row id>`: sorting the keys sorts
    /// the writes as they happened.
    pub fn key(&self) -> String {
        format!(
            "{ENTRY_PREFIX}{:020}/{}/{}",
            self.written_at,
            self.write.rank(),
            self.write.subject()
        )
    }

    /// What the entry is, for a log line: its key, the kind of write and the
    /// size of its text, never the text itself or the user's email.
    pub fn summary(&self) -> String {
        let what = match &self.write {
            ConversationWrite::UserMessage { chat_id, text, .. } => {
                format!(
                    "the user's message in chat {chat_id}, {} bytes of text",
                    text.len()
                )
            }
            ConversationWrite::Reply {
                chat_id,
                text,
                status,
                ..
            } => format!(
                "a reply ({}) in chat {chat_id}, {} bytes of text",
                status.as_str(),
                text.len()
            ),
            ConversationWrite::Title { chat_id, title, .. } => {
                format!("the title of chat {chat_id}, {} bytes", title.len())
            }
            ConversationWrite::Vote {
                chat_id,
                message_id,
                ..
            } => format!("a rating of message {message_id} in chat {chat_id}"),
        };
        format!("{} ({what})", self.key())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a journal entry always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CorruptEntry> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// The journal's keys among all of a store's keys, in replay order.
pub fn replay_order(mut keys: Vec<String>) -> Vec<String> {
    keys.retain(|key| key.starts_with(ENTRY_PREFIX));
    keys.sort_unstable();
    keys
}

/// Session advisory-lock key ("chatjnl") held by the one instance replaying
/// the journal, so that entries reach the database in order: a reply never
/// overtakes the message that creates its chat.
const REPLAY_LOCK_KEY: i64 = 0x0063_6861_746a_6e6c;

/// Takes the replay lock if it is free; answers one boolean.
pub fn try_lock_replay_statement() -> Statement {
    Statement::new(
        "SELECT pg_try_advisory_lock($1)",
        vec![SqlParam::Int64(REPLAY_LOCK_KEY)],
    )
}

/// Decodes the rows of [`try_lock_replay_statement`]: whether this session
/// holds the lock now.
pub fn replay_lock_taken<R: Row>(rows: &[R]) -> Result<bool, R::Error> {
    rows.first().map_or(Ok(false), |row| row.boolean(0))
}

pub fn unlock_replay_statement() -> Statement {
    Statement::new(
        "SELECT pg_advisory_unlock($1)",
        vec![SqlParam::Int64(REPLAY_LOCK_KEY)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn user_message(n: u128) -> ConversationWrite {
        ConversationWrite::UserMessage {
            user_id: "ada@example.com".into(),
            email: "ada@example.com".into(),
            chat_id: id(1),
            title: "Hello".into(),
            message_id: id(n),
            text: "Hello there".into(),
        }
    }

    fn reply(n: u128, text: &str) -> ConversationWrite {
        ConversationWrite::Reply {
            chat_id: id(1),
            owner: "ada@example.com".into(),
            message_id: id(n),
            text: text.into(),
            trace_id: Some("tr-1".into()),
            status: MessageStatus::Complete,
        }
    }

    #[test]
    fn a_summary_names_the_write_but_not_its_text_or_the_user() {
        let title = ConversationWrite::Title {
            chat_id: id(1),
            owner: "ada@example.com".into(),
            title: "Greetings".into(),
        };
        for write in [user_message(2), reply(3, "Hi, Ada"), title] {
            let entry = JournalEntry::new(1_764_150_000_000, write);
            let summary = entry.summary();
            assert!(summary.starts_with(&entry.key()), "{summary}");
            assert!(summary.contains(&id(1).to_string()), "{summary}");
            for private in ["Hello", "Hi, Ada", "Greetings", "ada@example.com"] {
                assert!(!summary.contains(private), "{summary}");
            }
        }
    }

    #[test]
    fn entries_round_trip_through_bytes() {
        for write in [
            user_message(2),
            reply(3, "Hi"),
            ConversationWrite::Title {
                chat_id: id(1),
                owner: "ada@example.com".into(),
                title: "Greetings".into(),
            },
        ] {
            let entry = JournalEntry::new(1_764_150_000_000, write);
            assert_eq!(JournalEntry::from_bytes(&entry.to_bytes()).unwrap(), entry);
        }
        assert!(JournalEntry::from_bytes(b"{\"write\":\"unknown\"}").is_err());
    }

    #[test]
    fn a_rating_is_journaled_after_its_reply_and_logged_without_its_comment() {
        let vote = JournalEntry::new(
            7,
            ConversationWrite::Vote {
                chat_id: id(1),
                message_id: id(3),
                owner: "ada".into(),
                email: "ada@example.com".into(),
                is_upvoted: Some(false),
                comment: Some("secret words".into()),
            },
        );
        assert_eq!(JournalEntry::from_bytes(&vote.to_bytes()).unwrap(), vote);
        let reply = JournalEntry::new(7, reply(3, "Hi"));
        assert!(reply.key() < vote.key(), "a rating replays after its reply");
        let summary = vote.summary();
        assert!(summary.contains("a rating of message"), "{summary}");
        assert!(
            !summary.contains("secret") && !summary.contains("ada@"),
            "{summary}"
        );
    }

    #[test]
    fn key_order_is_the_order_the_writes_happened() {
        let later_user = JournalEntry::new(10_000, user_message(4)).key();
        let reply_same_ms = JournalEntry::new(9_000, reply(3, "Hi")).key();
        let user_same_ms = JournalEntry::new(9_000, user_message(2)).key();
        let earliest = JournalEntry::new(999, user_message(5)).key();
        let keys = vec![
            later_user.clone(),
            "trace/x".into(),
            reply_same_ms.clone(),
            user_same_ms.clone(),
            "journal-pending".into(),
            earliest.clone(),
        ];
        assert_eq!(
            replay_order(keys),
            vec![earliest, user_same_ms, reply_same_ms, later_user]
        );
    }

    #[test]
    fn a_later_checkpoint_of_a_reply_replaces_its_entry() {
        let first = JournalEntry::new(5, reply(3, "Hel"));
        let last = JournalEntry::new(5, reply(3, "Hello"));
        assert_eq!(first.key(), last.key());
        assert_ne!(
            JournalEntry::new(5, reply(4, "Hel")).key(),
            first.key(),
            "another reply has an entry of its own"
        );
    }
}
