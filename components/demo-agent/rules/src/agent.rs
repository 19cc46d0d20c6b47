//! The demo agent: a local stand-in for a model-serving endpoint, so the app
//! chats with no cloud. Its replies are deterministic (the same message gets
//! the same reply) but read like an assistant's, stream word by word in the
//! chat-completions format (or the Responses format, asked for with
//! `?format=responses` on the endpoint URL) and carry a trace id. A request
//! without `"stream": true`, such as the title request, gets a short title.

use chat_domain::ApiError;
use chat_domain::http::validate::QueryParams;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The pause before each word of a streamed reply: slow enough to watch the
/// reply arrive, quick enough not to be tedious.
pub const WORD_INTERVAL: Duration = Duration::from_millis(25);

const TITLE_WORDS: usize = 6;
const QUOTED_WORDS: usize = 12;

const OPENINGS: [&str; 3] = [
    "Good question.",
    "Happy to help with that.",
    "Let me think about that for a moment.",
];

/// The two streaming formats an endpoint may use (see [`chat_domain::chat::serving`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyFormat {
    /// OpenAI chat-completions chunks: `choices[0].delta.content`.
    ChatCompletions,
    /// Responses API events: `response.output_text.delta`.
    Responses,
}

impl ReplyFormat {
    /// `format=responses` in the query asks for the Responses format; so an
    /// operator picks it with `serving_endpoint_url` alone.
    pub fn from_query(query: &str) -> Self {
        match QueryParams::parse(query).single("format") {
            Ok(Some(format)) if format == "responses" => Self::Responses,
            _ => Self::ChatCompletions,
        }
    }
}

/// Either request shape (`chat_domain::chat::serving::EndpointApi`): the conversation
/// in `messages` (chat completions) or `input` (Responses API).
#[derive(Deserialize)]
struct InvocationBody {
    messages: Option<Vec<InvocationMessage>>,
    input: Option<Vec<InvocationMessage>>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize)]
struct InvocationMessage {
    role: String,
    content: Value,
}

/// What the demo agent needs of an invocation. Other fields a client may
/// send to an endpoint (`max_tokens`, `temperature`, ...) are ignored, as a
/// real endpoint would accept them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The text of the last user message.
    pub message: String,
    pub stream: bool,
    /// The request came in the Responses API's shape (`input`), so the
    /// answer comes in its format too, as a `ResponsesAgent`'s does.
    pub responses_shape: bool,
}

impl Invocation {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: InvocationBody = serde_json::from_slice(body).map_err(|error| {
            ApiError::bad_request(format!(
                "The body must be {{\"messages\" or \"input\": [{{\"role\", \"content\"}}], \"stream\"?: bool}} ({error})."
            ))
        })?;
        let responses_shape = body.messages.is_none() && body.input.is_some();
        let conversation = body.messages.or(body.input).ok_or_else(|| {
            ApiError::bad_request("The body has neither \"messages\" nor \"input\".")
        })?;
        let message = conversation
            .iter()
            .rev()
            .find(|message| message.role == "user")
            .and_then(|message| message.content.as_str())
            .ok_or_else(|| ApiError::bad_request("There is no user message with text content."))?;
        Ok(Self {
            message: message.to_owned(),
            stream: body.stream,
            responses_shape,
        })
    }
}

/// The reply to `message`: the same message always gets the same reply.
pub fn reply_text(message: &str) -> String {
    let opening = OPENINGS[(fnv1a(message.as_bytes()) % OPENINGS.len() as u64) as usize];
    format!(
        "{opening} I am the demo agent, a local stand-in for a model-serving endpoint, so a \
         real answer to \u{201c}{}\u{201d} is beyond me. What I can show is the path a real \
         reply takes: it streams to you word by word, it is saved with your chat as it \
         arrives, and it carries a trace id for feedback. Set serving_endpoint_url and \
         serving_endpoint_origin to your agent's endpoint, and its answers will appear here \
         instead.",
        first_words(message, QUOTED_WORDS)
    )
}

/// A short title for a chat that starts with `message`: its first words,
/// without punctuation, as the title prompt asks.
pub fn title(message: &str) -> String {
    let words: Vec<&str> = message
        .split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|word| !word.is_empty())
        .take(TITLE_WORDS)
        .collect();
    if words.is_empty() {
        "Demo chat".to_owned()
    } else {
        words.join(" ")
    }
}

/// The pieces a reply streams in: each word with the space after it.
pub fn pieces(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

/// A trace id in MLflow's shape, `tr-` and 32 hex digits.
pub fn trace_id(random: Uuid) -> String {
    format!("tr-{}", random.simple())
}

/// The frame that streams one piece of the reply.
pub fn delta_frame(format: ReplyFormat, piece: &str) -> String {
    let chunk = match format {
        ReplyFormat::ChatCompletions => json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion.chunk",
            "model": "demo-agent",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]
        }),
        ReplyFormat::Responses => json!({
            "type": "response.output_text.delta",
            "item_id": "msg_demo",
            "output_index": 0,
            "content_index": 0,
            "delta": piece
        }),
    };
    format!("data: {chunk}\n\n")
}

/// The frames that end a streamed reply: the last chunk, with the trace id
/// (where each format's agents put it), then `[DONE]`.
pub fn closing_frames(format: ReplyFormat, trace_id: &str) -> [String; 2] {
    let last = match format {
        ReplyFormat::ChatCompletions => json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion.chunk",
            "model": "demo-agent",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "databricks_output": {"trace": {"info": {"trace_id": trace_id}}}
        }),
        ReplyFormat::Responses => json!({
            "type": "response.completed",
            "trace_id": trace_id
        }),
    };
    [format!("data: {last}\n\n"), "data: [DONE]\n\n".to_owned()]
}

/// The answer to a request that does not stream.
pub fn answer(format: ReplyFormat, text: &str, trace_id: &str) -> Value {
    match format {
        ReplyFormat::ChatCompletions => json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "model": "demo-agent",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"
            }],
            "databricks_output": {"trace": {"info": {"trace_id": trace_id}}}
        }),
        ReplyFormat::Responses => json!({
            "object": "response",
            "output": [{
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}]
            }],
            "trace_id": trace_id
        }),
    }
}

fn first_words(text: &str, count: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let quoted = words[..words.len().min(count)].join(" ");
    if words.len() > count {
        format!("{quoted}\u{2026}")
    } else {
        quoted
    }
}

/// FNV-1a: a stable hash (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::chat::relay::ReplyRelay;
    use chat_domain::chat::serving::title_from_answer;

    const TRACE: &str = "tr-0123456789abcdef0123456789abcdef";

    #[test]
    fn the_format_comes_from_the_query() {
        assert_eq!(ReplyFormat::from_query(""), ReplyFormat::ChatCompletions);
        assert_eq!(
            ReplyFormat::from_query("format=responses"),
            ReplyFormat::Responses
        );
        assert_eq!(
            ReplyFormat::from_query("a=1&format=responses"),
            ReplyFormat::Responses
        );
        assert_eq!(
            ReplyFormat::from_query("format=chat"),
            ReplyFormat::ChatCompletions
        );
    }

    #[test]
    fn reads_the_last_user_message_and_whether_to_stream() {
        let body = br#"{"messages":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"second"}],"stream":true,"max_tokens":9}"#;
        assert_eq!(
            Invocation::parse(body).unwrap(),
            Invocation {
                message: "second".into(),
                stream: true,
                responses_shape: false,
            }
        );
        let responses = br#"{"input":[{"role":"user","content":"asked"}],"stream":true}"#;
        let invocation = Invocation::parse(responses).unwrap();
        assert_eq!(invocation.message, "asked");
        assert!(invocation.responses_shape);
        let title_request = br#"{"messages":[{"role":"system","content":"Title?"},{"role":"user","content":"Hi"}]}"#;
        assert!(!Invocation::parse(title_request).unwrap().stream);
    }

    #[test]
    fn refuses_what_it_cannot_answer() {
        for body in [
            &b"nope"[..],
            b"{}",
            br#"{"messages":[]}"#,
            br#"{"input":[]}"#,
            br#"{"messages":[{"role":"assistant","content":"x"}]}"#,
            br#"{"messages":[{"role":"user","content":[1]}]}"#,
        ] {
            assert_eq!(Invocation::parse(body).unwrap_err().status, 400, "{body:?}");
        }
    }

    #[test]
    fn replies_are_deterministic_and_quote_the_question() {
        let reply = reply_text("What is the capital of France?");
        assert_eq!(reply, reply_text("What is the capital of France?"));
        assert!(
            reply.contains("\u{201c}What is the capital of France?\u{201d}"),
            "{reply}"
        );
        let long = reply_text(&"word ".repeat(50));
        assert!(long.contains("word word\u{2026}\u{201d}"), "{long}");
        assert!(pieces(&reply).len() > 40);
        assert_eq!(pieces(&reply).concat(), reply);
    }

    #[test]
    fn titles_are_the_first_words_without_punctuation() {
        assert_eq!(
            title("What is the capital of France, today?"),
            "What is the capital of France"
        );
        assert_eq!(title("  Hi!  "), "Hi");
        assert_eq!(title("?!"), "Demo chat");
    }

    /// What chat-stream reads from the demo agent's stream, in either format.
    fn relayed(format: ReplyFormat, text: &str) -> ReplyRelay {
        let mut relay = ReplyRelay::new();
        for piece in pieces(text) {
            assert_eq!(
                relay
                    .receive(delta_frame(format, piece).as_bytes())
                    .unwrap()
                    .len(),
                1
            );
        }
        for frame in closing_frames(format, TRACE) {
            relay.receive(frame.as_bytes()).unwrap();
        }
        relay
    }

    #[test]
    fn chat_stream_reads_the_streamed_reply_in_both_formats() {
        let text = reply_text("Hello there");
        for format in [ReplyFormat::ChatCompletions, ReplyFormat::Responses] {
            let relay = relayed(format, &text);
            assert_eq!(relay.text(), text, "{format:?}");
            assert_eq!(relay.trace_id(), Some(TRACE), "{format:?}");
            assert!(relay.upstream_done(), "{format:?}");
        }
    }

    #[test]
    fn chat_stream_reads_the_title_in_both_formats() {
        for format in [ReplyFormat::ChatCompletions, ReplyFormat::Responses] {
            let body = answer(format, "Paris Trip", TRACE).to_string();
            assert_eq!(
                title_from_answer(body.as_bytes()).as_deref(),
                Some("Paris Trip")
            );
        }
    }

    #[test]
    fn trace_ids_look_like_mlflows() {
        let id = trace_id(Uuid::from_u128(0xabc));
        assert_eq!(id.len(), 35);
        assert!(id.starts_with("tr-000"));
    }
}
