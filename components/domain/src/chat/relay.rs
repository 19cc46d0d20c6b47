//! Relaying the endpoint's stream to the client: each upstream event becomes
//! one `data: <json>\n\n` frame as soon as its bytes are in, while the
//! reply's text and trace id are gathered for storing. Then the stream's own
//! ending: the `meta` event and `data: [DONE]`, or an `error` event.

use crate::chat::serving::{UpstreamFailure, ends_reply, extract_delta, extract_trace_id};
use crate::http::sse::{EventTooLarge, SseParser};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// The last frame of a reply that reached its end.
pub const DONE_FRAME: &str = "data: [DONE]\n\n";

/// The data an upstream sends to say its reply is over.
const UPSTREAM_DONE: &str = "[DONE]";

/// Reads the upstream's bytes and says what to forward.
#[derive(Debug, Default)]
pub struct ReplyRelay {
    parser: SseParser,
    text: String,
    trace_id: Option<String>,
    /// The upstream sent `[DONE]`: nothing more is read.
    done: bool,
    /// Something said the reply is complete: `[DONE]`, a finish reason or
    /// `response.completed`.
    complete: bool,
    /// Events whose data was not JSON: not forwarded (the client reads JSON).
    skipped: usize,
}

impl ReplyRelay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one network read of the upstream's body and answers the frames
    /// to forward now. Anything after the upstream's `[DONE]` is ignored.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<String>, UpstreamFailure> {
        let events = self
            .parser
            .push(bytes)
            .map_err(|EventTooLarge| UpstreamFailure::Malformed)?;
        Ok(self.relay(events))
    }

    /// The upstream's body ended; answers the frame of an event it did not
    /// close with a blank line, if any.
    pub fn end_of_body(&mut self) -> Vec<String> {
        let last = self.parser.finish();
        self.relay(last)
    }

    fn relay(&mut self, events: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut frames = Vec::new();
        for data in events {
            if self.done {
                break;
            }
            if data.trim() == UPSTREAM_DONE {
                self.done = true;
                self.complete = true;
                break;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(&data) else {
                self.skipped += 1;
                continue;
            };
            self.complete |= ends_reply(&chunk);
            if let Some(delta) = extract_delta(&chunk) {
                self.text.push_str(delta);
            }
            if let Some(trace_id) = extract_trace_id(&chunk) {
                self.trace_id = Some(trace_id.to_owned());
            }
            // Forwarded as sent, unless the upstream spread its JSON over
            // several `data:` lines: the client reads one line per event, so
            // that JSON is re-encoded on one line.
            frames.push(if data.contains('\n') {
                data_frame(&chunk)
            } else {
                format!("data: {data}\n\n")
            });
        }
        frames
    }

    /// Whether the upstream said its reply is over (`[DONE]`); nothing more
    /// needs to be read.
    pub fn upstream_done(&self) -> bool {
        self.done
    }

    /// Whether the upstream said its reply is complete (`[DONE]`, a finish
    /// reason or `response.completed`); a body that ends before that held
    /// only part of the reply ([`UpstreamFailure::Truncated`]).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The reply's text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The latest trace id any chunk carried.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// How many events were skipped because their data was not JSON.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// `data: <json>\n\n`
pub fn data_frame(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).expect("JSON values and our events always encode");
    format!("data: {json}\n\n")
}

/// The event that ends a reply: the stored message's id and trace id, and
/// the chat's id when the server made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    /// `null` for a temporary chat's reply: it is not stored, so there is
    /// nothing to rate or regenerate.
    #[serde(rename = "assistantMessageId")]
    pub assistant_message_id: Option<Uuid>,
    #[serde(rename = "traceId")]
    pub trace_id: Option<String>,
    #[serde(rename = "chatId", skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<Uuid>,
    /// `"stopped": true` when the owner stopped the reply; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// `"temporary": true` for a temporary chat's reply; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

impl MetaEvent {
    /// The end of a reply stored as `assistant_message_id`;
    /// `server_made_chat_id`: the chat's id when the request had none.
    pub fn new(
        assistant_message_id: Uuid,
        trace_id: Option<&str>,
        server_made_chat_id: Option<Uuid>,
    ) -> Self {
        Self {
            kind: "meta",
            assistant_message_id: Some(assistant_message_id),
            trace_id: trace_id.map(str::to_owned),
            chat_id: server_made_chat_id,
            stopped: false,
            temporary: false,
        }
    }

    /// The end of a temporary chat's reply, which is stored nowhere. The
    /// trace id is the endpoint's own, told as for any reply.
    pub fn temporary(trace_id: Option<&str>, server_made_chat_id: Option<Uuid>) -> Self {
        Self {
            kind: "meta",
            assistant_message_id: None,
            trace_id: trace_id.map(str::to_owned),
            chat_id: server_made_chat_id,
            stopped: false,
            temporary: true,
        }
    }

    /// The same event for a reply its owner stopped.
    pub fn stopped(self) -> Self {
        Self {
            stopped: true,
            ..self
        }
    }
}

/// `{"type":"error","error":"<sentence>"}`: the stream failed after it began.
pub fn error_frame(failure: &UpstreamFailure) -> String {
    data_frame(&serde_json::json!({ "type": "error", "error": failure.message() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_chunk(text: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"delta": {"content": text}}]})
        )
    }

    #[test]
    fn only_a_terminator_makes_a_reply_complete() {
        let mut relay = ReplyRelay::new();
        relay.receive(chat_chunk("Half ").as_bytes()).unwrap();
        assert!(!relay.is_complete(), "a delta alone");
        relay
            .receive(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
            .unwrap();
        assert!(relay.is_complete(), "a finish reason");

        let mut relay = ReplyRelay::new();
        relay
            .receive(b"data: {\"type\":\"response.completed\"}\n\n")
            .unwrap();
        assert!(relay.is_complete(), "response.completed");

        let mut relay = ReplyRelay::new();
        relay
            .receive(format!("{}data: [DONE]\n\n", chat_chunk("a")).as_bytes())
            .unwrap();
        assert!(relay.is_complete(), "[DONE]");
    }

    #[test]
    fn forwards_each_event_as_one_frame_and_gathers_the_text() {
        let mut relay = ReplyRelay::new();
        let stream = format!("{}{}", chat_chunk("Hel"), chat_chunk("lo"));
        let frames = relay.receive(stream.as_bytes()).unwrap();
        assert_eq!(frames, [chat_chunk("Hel"), chat_chunk("lo")]);
        assert_eq!(relay.text(), "Hello");
        assert!(!relay.upstream_done());
    }

    #[test]
    fn an_event_split_across_reads_is_forwarded_when_complete() {
        let mut relay = ReplyRelay::new();
        let chunk = chat_chunk("Hi");
        let (first, second) = chunk.split_at(10);
        assert!(relay.receive(first.as_bytes()).unwrap().is_empty());
        assert_eq!(relay.receive(second.as_bytes()).unwrap(), [chunk]);
    }

    #[test]
    fn responses_format_and_trace_ids_anywhere() {
        let mut relay = ReplyRelay::new();
        let stream = concat!(
            "data: {\"type\":\"response.created\"}\n\n",
            "data: {\"type\":\"response.output_text.delta\",\"delta\":\"A\",\"trace_id\":\"tr-early\"}\n\n",
            "data: {\"type\":\"response.output_text.delta\",\"delta\":\"B\"}\n\n",
            "data: {\"type\":\"response.completed\",\"databricks_output\":{\"trace\":{\"info\":{\"trace_id\":\"tr-late\"}}}}\n\n",
        );
        assert_eq!(relay.receive(stream.as_bytes()).unwrap().len(), 4);
        assert_eq!(relay.text(), "AB");
        assert_eq!(relay.trace_id(), Some("tr-late"));
    }

    #[test]
    fn the_upstreams_done_ends_the_reply_and_is_not_forwarded() {
        let mut relay = ReplyRelay::new();
        let stream = format!("{}data: [DONE]\n\n{}", chat_chunk("a"), chat_chunk("b"));
        assert_eq!(relay.receive(stream.as_bytes()).unwrap(), [chat_chunk("a")]);
        assert!(relay.upstream_done());
        assert!(
            relay
                .receive(chat_chunk("c").as_bytes())
                .unwrap()
                .is_empty()
        );
        assert_eq!(relay.text(), "a");
    }

    #[test]
    fn multi_line_json_is_forwarded_on_one_line() {
        let mut relay = ReplyRelay::new();
        let frames = relay
            .receive(b"data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"x\"}}]}\n\n")
            .unwrap();
        assert_eq!(frames, [chat_chunk("x")]);
    }

    #[test]
    fn one_line_json_is_forwarded_byte_for_byte() {
        let mut relay = ReplyRelay::new();
        let sent = "data: {\"z\":1.50,\"choices\":[{\"delta\":{\"content\":\"\\u00e9\"}}]}\n\n";
        assert_eq!(relay.receive(sent.as_bytes()).unwrap(), [sent]);
        assert_eq!(relay.text(), "\u{e9}");
    }

    #[test]
    fn data_that_is_not_json_is_skipped_and_counted() {
        let mut relay = ReplyRelay::new();
        let frames = relay.receive(b"data: ping\n\n: comment\n\n").unwrap();
        assert!(frames.is_empty());
        assert_eq!(relay.skipped(), 1);
    }

    #[test]
    fn a_last_event_without_blank_line_is_forwarded_at_the_end() {
        let mut relay = ReplyRelay::new();
        let chunk = chat_chunk("end");
        let unterminated = chunk.trim_end();
        assert!(relay.receive(unterminated.as_bytes()).unwrap().is_empty());
        assert_eq!(relay.end_of_body(), [chunk]);
        assert_eq!(relay.text(), "end");
    }

    #[test]
    fn an_oversized_event_is_a_malformed_reply() {
        let mut relay = ReplyRelay::new();
        let huge = vec![b'x'; crate::http::sse::MAX_EVENT_BYTES + 1];
        assert_eq!(relay.receive(&huge), Err(UpstreamFailure::Malformed));
    }

    #[test]
    fn the_meta_event_names_the_chat_only_when_the_server_made_it() {
        let message = Uuid::from_u128(1);
        let chat = Uuid::from_u128(2);
        assert_eq!(
            data_frame(&MetaEvent::new(message, Some("tr-1"), None)),
            format!(
                "data: {{\"type\":\"meta\",\"assistantMessageId\":\"{message}\",\"traceId\":\"tr-1\"}}\n\n"
            )
        );
        let value = serde_json::to_value(MetaEvent::new(message, None, Some(chat))).unwrap();
        assert_eq!(
            value,
            json!({"type": "meta", "assistantMessageId": message, "traceId": null, "chatId": chat})
        );
        let stopped = serde_json::to_value(MetaEvent::new(message, None, None).stopped()).unwrap();
        assert_eq!(
            stopped,
            json!({"type": "meta", "assistantMessageId": message, "traceId": null, "stopped": true})
        );
    }

    #[test]
    fn a_temporary_replys_meta_event_has_no_message_id() {
        let chat = Uuid::from_u128(2);
        let value = serde_json::to_value(MetaEvent::temporary(Some("tr-1"), Some(chat))).unwrap();
        assert_eq!(
            value,
            json!({"type": "meta", "assistantMessageId": null, "traceId": "tr-1", "chatId": chat, "temporary": true})
        );
        let stopped = serde_json::to_value(MetaEvent::temporary(None, None).stopped()).unwrap();
        assert_eq!(
            stopped,
            json!({"type": "meta", "assistantMessageId": null, "traceId": null, "stopped": true, "temporary": true})
        );
    }

    #[test]
    fn the_error_event_carries_the_sentence() {
        assert_eq!(
            error_frame(&UpstreamFailure::Status(503)),
            "data: {\"error\":\"The model endpoint answered with status 503.\",\"type\":\"error\"}\n\n"
        );
    }
}
