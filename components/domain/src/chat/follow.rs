//! Following a reply still being written: `GET /api/chat/:chatId/stream`,
//! for a page reloaded (or opened on another device) while its reply
//! streams.
//!
//! The follower reads what the writer checkpoints in the database, wherever
//! the writer runs: the reply so far at once, then what was added every
//! [`FOLLOW_INTERVAL`] until the reply has its final status; so it lags the
//! writer by at most a checkpoint interval. A chat whose last message is
//! the user's, written within [`REPLY_GRACE`], is waited on: its reply has
//! no checkpoint yet.

use crate::access::ChatAccess;
use crate::chat::conversation::reported_status;
use crate::chat::relay::{DONE_FRAME, MetaEvent, data_frame};
use crate::database::sql::{Row, SqlParam, Statement};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// How often a follower looks at the reply again.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// How long after the user's last message its reply is waited for.
pub const REPLY_GRACE: Duration = Duration::from_secs(30);

/// The chat's access facts and its last message as readers see it:
/// "userId", visibility, then id, role, parts, "traceId", status and
/// whether it was written within [`REPLY_GRACE`] (NULL without messages).
/// No row: no such chat.
const CHAT_WITH_LAST_MESSAGE: &str = concat!(
    r#"SELECT chat."userId", chat.visibility, last.id, last.role, last.parts, last."traceId", last.status, last.recent
FROM chat."Chat" AS chat
LEFT JOIN LATERAL (
  SELECT id, role, parts::text AS parts, "traceId", "#,
    reported_status!(),
    r#" AS status,
    "createdAt" > LOCALTIMESTAMP - interval '30 seconds' AS recent
  FROM chat."Message"
  WHERE "chatId" = chat.id
  ORDER BY "createdAt" DESC, "insertionOrder" DESC
  LIMIT 1
) AS last ON true
WHERE chat.id = $1"#
);

/// The followed reply as readers see it: id, role, parts, "traceId",
/// status (the columns of [`CHAT_WITH_LAST_MESSAGE`] from the id on).
const REPLY: &str = concat!(
    r#"SELECT id, role, parts::text, "traceId", "#,
    reported_status!(),
    r#"
FROM chat."Message" WHERE id = $1 AND "chatId" = $2"#
);

pub fn chat_statement(chat_id: Uuid) -> Statement {
    Statement::new(CHAT_WITH_LAST_MESSAGE, vec![SqlParam::Uuid(chat_id)])
}

pub fn reply_statement(chat_id: Uuid, reply_id: Uuid) -> Statement {
    Statement::new(
        REPLY,
        vec![SqlParam::Uuid(reply_id), SqlParam::Uuid(chat_id)],
    )
}

/// What a look at the chat (or the followed reply) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No message worth following: none, or an older message of the user's.
    Nothing,
    /// The user's last message, recent, and no reply stored after it yet.
    AwaitingReply,
    Reply(SeenReply),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenReply {
    pub id: Uuid,
    pub text: String,
    pub trace_id: Option<String>,
    /// As readers see it (`streaming`, `complete`, `incomplete`, `error`,
    /// `stopped`).
    pub status: String,
}

/// Decodes the row of [`chat_statement`]: who may read the chat, and its
/// last message.
pub fn chat_and_last_message<R: Row>(row: &R) -> Result<(ChatAccess, Seen), R::Error> {
    let access = ChatAccess::new(row.text(0)?, &row.text(1)?);
    let seen = match row.optional_text(3)?.as_deref() {
        Some("assistant") => Seen::Reply(seen_reply(row, 2)?),
        Some("user") if row.optional_boolean(7)? == Some(true) => Seen::AwaitingReply,
        _ => Seen::Nothing,
    };
    Ok((access, seen))
}

/// Decodes the row of [`reply_statement`] (none: the reply is gone).
pub fn reply<R: Row>(row: Option<&R>) -> Result<Seen, R::Error> {
    Ok(match row {
        Some(row) => Seen::Reply(seen_reply(row, 0)?),
        None => Seen::Nothing,
    })
}

/// A message's id, role, parts, "traceId" and status from column `first` on.
fn seen_reply<R: Row>(row: &R, first: usize) -> Result<SeenReply, R::Error> {
    let parts = row.text(first + 2)?;
    Ok(SeenReply {
        id: row.uuid(first)?,
        text: text_of(&parts),
        trace_id: row.optional_text(first + 3)?,
        status: row.text(first + 4)?,
    })
}

/// The text parts of stored `parts`, joined.
fn text_of(parts: &str) -> String {
    let parts: serde_json::Value = serde_json::from_str(parts).unwrap_or_default();
    parts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|part| part["type"] == "text")
        .filter_map(|part| part["text"].as_str())
        .collect()
}

/// What a follower sends after a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// These frames (maybe none); look again after [`FOLLOW_INTERVAL`].
    Continue(Vec<String>),
    /// These frames end the stream.
    Finished(Vec<String>),
}

/// One client following one reply: what it was sent so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    reply: Option<Uuid>,
    sent: String,
}

impl Follower {
    /// A follower of what the first look found; `None` when nothing is being
    /// written in the chat (the route answers 204).
    pub fn start(seen: &Seen) -> Option<Self> {
        let reply = match seen {
            Seen::AwaitingReply => None,
            Seen::Reply(reply) if reply.status == "streaming" => Some(reply.id),
            Seen::Reply(_) | Seen::Nothing => return None,
        };
        Some(Self {
            reply,
            sent: String::new(),
        })
    }

    /// The reply followed, once one was seen: then look at it by id
    /// ([`reply_statement`]), before that at the chat
    /// ([`chat_statement`]).
    pub fn reply(&self) -> Option<Uuid> {
        self.reply
    }

    /// The frames for what a look found: the text added since the last
    /// look, as a chat-completions chunk, and, once the reply has its final
    /// status, how it ended (`meta` and `[DONE]`, after an `error` event
    /// for one that broke off; only the `error` event for one that failed).
    pub fn advance(&mut self, seen: Seen) -> Progress {
        let reply = match seen {
            Seen::Reply(reply) if self.reply.is_none_or(|id| id == reply.id) => reply,
            Seen::AwaitingReply if self.reply.is_none() => return Progress::Continue(Vec::new()),
            _ => {
                return Progress::Finished(vec![error_event(
                    "The reply is no longer being written.",
                )]);
            }
        };
        self.reply = Some(reply.id);
        let mut frames = Vec::new();
        if let Some(added) = reply.text.strip_prefix(self.sent.as_str())
            && !added.is_empty()
        {
            frames.push(data_frame(
                &json!({"choices": [{"index": 0, "delta": {"content": added}}]}),
            ));
            self.sent = reply.text.clone();
        }
        let meta = MetaEvent::new(reply.id, reply.trace_id.as_deref(), None);
        match reply.status.as_str() {
            "streaming" => return Progress::Continue(frames),
            "complete" => frames.push(data_frame(&meta)),
            "stopped" => frames.push(data_frame(&meta.stopped())),
            "incomplete" => {
                frames.push(error_event("The reply broke off before it was complete."));
                frames.push(data_frame(&meta));
            }
            _ => {
                frames.push(error_event("The reply failed."));
                return Progress::Finished(frames);
            }
        }
        frames.push(DONE_FRAME.to_owned());
        Progress::Finished(frames)
    }
}

/// `{"type":"error","error":<sentence>}`, as `POST /api/chat` sends it.
pub fn error_event(sentence: &str) -> String {
    data_frame(&json!({ "type": "error", "error": sentence }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::conversation::ABANDONED_AFTER;

    fn reply(text: &str, status: &str) -> Seen {
        Seen::Reply(SeenReply {
            id: Uuid::from_u128(7),
            text: text.into(),
            trace_id: Some("tr-1".into()),
            status: status.into(),
        })
    }

    fn chunk(text: &str) -> String {
        data_frame(&json!({"choices": [{"index": 0, "delta": {"content": text}}]}))
    }

    fn meta() -> MetaEvent {
        MetaEvent::new(Uuid::from_u128(7), Some("tr-1"), None)
    }

    #[test]
    fn only_a_reply_being_written_or_awaited_is_followed() {
        assert!(Follower::start(&reply("so far", "streaming")).is_some());
        assert!(Follower::start(&Seen::AwaitingReply).is_some());
        for ended in ["complete", "incomplete", "error", "stopped"] {
            assert_eq!(Follower::start(&reply("all", ended)), None, "{ended}");
        }
        assert_eq!(Follower::start(&Seen::Nothing), None);
    }

    #[test]
    fn the_text_so_far_then_what_is_added_then_the_end() {
        let mut follower = Follower::start(&reply("Once", "streaming")).unwrap();
        assert_eq!(
            follower.advance(reply("Once", "streaming")),
            Progress::Continue(vec![chunk("Once")])
        );
        assert_eq!(
            follower.advance(reply("Once", "streaming")),
            Progress::Continue(vec![])
        );
        assert_eq!(
            follower.advance(reply("Once upon", "streaming")),
            Progress::Continue(vec![chunk(" upon")])
        );
        assert_eq!(
            follower.advance(reply("Once upon a time", "complete")),
            Progress::Finished(vec![
                chunk(" a time"),
                data_frame(&meta()),
                DONE_FRAME.to_owned()
            ])
        );
    }

    #[test]
    fn a_reply_awaited_is_followed_once_it_appears() {
        let mut follower = Follower::start(&Seen::AwaitingReply).unwrap();
        assert_eq!(follower.reply(), None);
        assert_eq!(
            follower.advance(Seen::AwaitingReply),
            Progress::Continue(vec![])
        );
        assert_eq!(
            follower.advance(reply("Hi", "streaming")),
            Progress::Continue(vec![chunk("Hi")])
        );
        assert_eq!(follower.reply(), Some(Uuid::from_u128(7)));
        // Once the user's message is no longer recent, nothing came.
        let mut waited = Follower::start(&Seen::AwaitingReply).unwrap();
        assert_eq!(
            waited.advance(Seen::Nothing),
            Progress::Finished(vec![error_event("The reply is no longer being written.")])
        );
    }

    #[test]
    fn every_ending_is_told_as_post_api_chat_tells_it() {
        let ended = |status: &str| {
            let mut follower = Follower::start(&reply("Part", "streaming")).unwrap();
            follower.advance(reply("Part", "streaming"));
            follower.advance(reply("Part", status))
        };
        assert_eq!(
            ended("stopped"),
            Progress::Finished(vec![data_frame(&meta().stopped()), DONE_FRAME.to_owned()])
        );
        assert_eq!(
            ended("incomplete"),
            Progress::Finished(vec![
                error_event("The reply broke off before it was complete."),
                data_frame(&meta()),
                DONE_FRAME.to_owned()
            ])
        );
        assert_eq!(
            ended("error"),
            Progress::Finished(vec![error_event("The reply failed.")])
        );
        // The reply vanished (its chat was deleted), or another took its place.
        let mut follower = Follower::start(&reply("Part", "streaming")).unwrap();
        assert!(matches!(
            follower.advance(Seen::Nothing),
            Progress::Finished(_)
        ));
        let other = Seen::Reply(SeenReply {
            id: Uuid::from_u128(8),
            text: String::new(),
            trace_id: None,
            status: "streaming".into(),
        });
        let mut follower = Follower::start(&reply("Part", "streaming")).unwrap();
        assert!(matches!(follower.advance(other), Progress::Finished(_)));
    }

    #[test]
    fn rows_decode_as_the_statements_select_them() {
        use crate::database::sql::fake::{FakeRow, Value};
        let row = FakeRow::laid_out_by(
            CHAT_WITH_LAST_MESSAGE,
            &[
                (r#"chat."userId""#, Value::Text("ada")),
                ("chat.visibility", Value::Text("private")),
                ("last.id", Value::Uuid(Uuid::from_u128(7))),
                ("last.role", Value::Text("assistant")),
                (
                    "last.parts",
                    Value::Text(r#"[{"type":"text","text":"Hi"}]"#),
                ),
                (r#"last."traceId""#, Value::Null),
                ("last.status", Value::Text("streaming")),
                ("last.recent", Value::Boolean(true)),
            ],
        );
        let (access, seen) = chat_and_last_message(&row).unwrap();
        assert_eq!(access.owner, "ada");
        assert_eq!(
            seen,
            Seen::Reply(SeenReply {
                id: Uuid::from_u128(7),
                text: "Hi".into(),
                trace_id: None,
                status: "streaming".into()
            })
        );
        let grace = format!("interval '{} seconds'", REPLY_GRACE.as_secs());
        assert!(CHAT_WITH_LAST_MESSAGE.contains(&grace));
        let abandoned = format!("interval '{} seconds'", ABANDONED_AFTER.as_secs());
        assert!(REPLY.contains(&abandoned));
    }
}
