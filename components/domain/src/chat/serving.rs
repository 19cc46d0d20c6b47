//! The model-serving endpoint: what is sent to it,
//! how its answers are read (chat-completions and Responses formats alike),
//! and what a failure to get a reply tells the user.

use crate::chat::request::ChatMessage;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

/// How long the endpoint may stay silent (before its answer begins, and
/// between two reads of it) when `serving_timeout_seconds` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_TIMEOUT_SECONDS: u64 = 3600;

/// A title is this many characters at most (the seed's cut).
pub const MAX_TITLE_CHARS: usize = 80;
/// Without a generated title, the chat is named after this many characters
/// of its first message.
pub const FALLBACK_TITLE_CHARS: usize = 60;
/// How much of the first message the title prompt quotes (the seed's cut).
const TITLE_PROMPT_MESSAGE_CHARS: usize = 500;

const TITLE_INSTRUCTION: &str = "Generate a 4-6 word title summarizing this conversation. Respond with only the title, no punctuation.";

/// The text a chunk adds to the reply: a Responses API
/// `response.output_text.delta` event's `delta`, or a chat-completions
/// chunk's `choices[0].delta.content`.
pub fn extract_delta(chunk: &Value) -> Option<&str> {
    if chunk["type"] == "response.output_text.delta" {
        return chunk["delta"].as_str();
    }
    chunk["choices"][0]["delta"]["content"].as_str()
}

/// The trace id a chunk carries, if any: Databricks'
/// `databricks_output.trace.info.trace_id`, else a top-level `trace_id`.
pub fn extract_trace_id(chunk: &Value) -> Option<&str> {
    chunk["databricks_output"]["trace"]["info"]["trace_id"]
        .as_str()
        .or_else(|| chunk["trace_id"].as_str())
        .filter(|id| !id.is_empty())
}

/// Whether a chunk says the reply is complete: a chat-completions chunk
/// with a `finish_reason`, or a Responses API `response.completed` event.
/// (The stream's `[DONE]` says so too; the relay reads that itself.)
pub fn ends_reply(chunk: &Value) -> bool {
    chunk["type"] == "response.completed" || chunk["choices"][0]["finish_reason"].is_string()
}

/// The `serving_timeout_seconds` setting: whole seconds from 1 to 3600, or
/// unset for [`DEFAULT_TIMEOUT`]. The error says what is wrong.
pub fn timeout_setting(value: Option<&str>) -> Result<Duration, String> {
    crate::http::validate::seconds_setting(
        "serving_timeout_seconds",
        value,
        1..=MAX_TIMEOUT_SECONDS,
        DEFAULT_TIMEOUT,
    )
}

/// The longest name a serving endpoint may have.
const MAX_ENDPOINT_NAME_CHARS: usize = 63;

/// The URL the chat calls: with `serving_endpoint_name` set, the named
/// endpoint's invocations URL on the workspace at `serving_endpoint_origin`
/// (how the seed's users name an endpoint: workspace host and endpoint
/// name); otherwise `serving_endpoint_url` as given. The error says what is
/// wrong.
pub fn endpoint_url(
    url: Option<&str>,
    origin: Option<&str>,
    name: Option<&str>,
) -> Result<String, String> {
    let Some(name) = name else {
        return url
            .map(str::to_owned)
            .ok_or_else(|| "serving_endpoint_url is empty".to_owned());
    };
    let valid_name = name.len() <= MAX_ENDPOINT_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "serving_endpoint_name must be 1 to {MAX_ENDPOINT_NAME_CHARS} letters, digits, '-' or '_', not {name:?}"
        ));
    }
    let origin = origin.ok_or(
        "serving_endpoint_name is set, so serving_endpoint_origin must be the workspace's URL",
    )?;
    let origin = checked_origin("serving_endpoint_origin", origin)?;
    Ok(format!("{origin}/serving-endpoints/{name}/invocations"))
}

/// Where ratings go: MLflow at `mlflow_origin` when set (a self-hosted
/// MLflow, or the workspace when the agent is served elsewhere, as an agent
/// on Databricks Apps is), else the workspace at `serving_endpoint_origin`.
/// The error says what is wrong.
pub fn mlflow_origin(
    mlflow_origin: Option<&str>,
    serving_endpoint_origin: Option<&str>,
) -> Result<String, String> {
    match (mlflow_origin, serving_endpoint_origin) {
        (Some(origin), _) => checked_origin("mlflow_origin", origin),
        (None, Some(origin)) => checked_origin("serving_endpoint_origin", origin),
        (None, None) => Err("neither mlflow_origin nor serving_endpoint_origin is set".to_owned()),
    }
}

/// `origin` without a trailing slash, if it is a scheme, host and port with
/// no path; else why not, naming the `setting`.
fn checked_origin(setting: &str, origin: &str) -> Result<String, String> {
    let origin = origin.trim_end_matches('/');
    let has_path = origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains('/'));
    if !origin.contains("://") || has_path {
        return Err(format!(
            "{setting} must be a scheme, host and port (like https://adb-123.azuredatabricks.net), not {origin:?}"
        ));
    }
    Ok(origin.to_owned())
}

/// The `Authorization` header for the endpoint: the user's own token when
/// the gateway passed one (the call is made on their behalf), else the
/// app's `serving_token`, else none.
pub fn authorization(user_token: Option<&str>, app_token: Option<&str>) -> Option<String> {
    user_token
        .or(app_token)
        .map(|token| format!("Bearer {token}"))
}

/// The header every request to the endpoint carries, so an agent served by
/// MLflow's AgentServer returns the trace id (a `{"trace_id": ...}` event)
/// that ratings are attached to.
pub const RETURN_TRACE_ID: (&str, &str) = ("x-mlflow-return-trace-id", "true");

/// How the endpoint is asked (`serving_endpoint_api`): the chat-completions
/// shape (`{"messages": [...]}`, Databricks' chat agents and OpenAI-style
/// endpoints) or the Responses API's (`{"input": [...]}`, what MLflow's
/// `ResponsesAgent` and the agents-on-Apps template require). Either way the
/// answer is read in both formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointApi {
    ChatCompletions,
    Responses,
}

impl EndpointApi {
    /// The `serving_endpoint_api` setting: `chat-completions` (also when
    /// unset) or `responses`; the error says what is wrong.
    pub fn setting(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("chat-completions") => Ok(Self::ChatCompletions),
            Some("responses") => Ok(Self::Responses),
            Some(other) => Err(format!(
                "serving_endpoint_api must be \"chat-completions\" or \"responses\", not {other:?}"
            )),
        }
    }

    /// The body's field that holds the conversation.
    fn conversation_field(self) -> &'static str {
        match self {
            Self::ChatCompletions => "messages",
            Self::Responses => "input",
        }
    }
}

#[derive(Serialize)]
struct UpstreamMessage<'m> {
    role: &'m str,
    content: &'m str,
}

/// The streaming request: the conversation as roles and contents (ids and
/// other client fields are not the endpoint's business) and `stream: true`.
pub fn reply_request_body(api: EndpointApi, messages: &[ChatMessage]) -> Vec<u8> {
    let messages: Vec<UpstreamMessage> = messages
        .iter()
        .map(|message| UpstreamMessage {
            role: message.role.as_str(),
            content: &message.content,
        })
        .collect();
    let mut body = json!({ "stream": true });
    body[api.conversation_field()] = json!(messages);
    body.to_string().into_bytes()
}

/// The title request: the same endpoint, not streaming, asked for a short
/// title of the first message.
pub fn title_request_body(api: EndpointApi, first_message: &str) -> Vec<u8> {
    let conversation = json!([
        { "role": "system", "content": TITLE_INSTRUCTION },
        { "role": "user", "content": first_chars(first_message, TITLE_PROMPT_MESSAGE_CHARS) },
    ]);
    let mut body = json!({});
    body[api.conversation_field()] = conversation;
    body.to_string().into_bytes()
}

/// The title in a non-streaming answer (`choices[0].message.content` or
/// `output[0].content[0].text`), trimmed, unquoted and cut to
/// [`MAX_TITLE_CHARS`]; `None` when there is none worth using.
pub fn title_from_answer(body: &[u8]) -> Option<String> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .or_else(|| answer["output"][0]["content"][0]["text"].as_str())?;
    let title = single_line(text);
    let title =
        title.trim_matches(|c: char| matches!(c, '"' | '\'' | '“' | '”') || c.is_whitespace());
    (!title.is_empty()).then(|| first_chars(title, MAX_TITLE_CHARS).trim_end().to_owned())
}

/// The title a new chat gets at once, and keeps when no better one comes:
/// the first [`FALLBACK_TITLE_CHARS`] characters of its first message, on
/// one line.
pub fn fallback_title(first_message: &str) -> String {
    first_chars(&single_line(first_message), FALLBACK_TITLE_CHARS)
        .trim_end()
        .to_owned()
}

/// Runs of whitespace (newlines included) as one space, trimmed: a title is
/// shown on one line of the sidebar.
fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn first_chars(text: &str, count: usize) -> &str {
    match text.char_indices().nth(count) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// Why the endpoint gave no (complete) reply. Each is told to the user as a
/// sentence in the stream's `error` event; details go to the server log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The endpoint's settings are missing or invalid (the log says which).
    Misconfigured,
    /// The host refused the request: the endpoint is not in the component's
    /// `allowed_outbound_hosts` (see `serving_endpoint_origin`).
    NotAllowed,
    /// No connection could be made, or the request failed before an answer.
    Unreachable,
    /// The endpoint answered with this non-2xx status.
    Status(u16),
    /// The endpoint stayed silent for longer than the timeout.
    TimedOut,
    /// The answer broke off before its end.
    BrokeOff,
    /// The answer's stream ended in good order but without anything that
    /// ends a reply (`[DONE]`, a finish reason, `response.completed`): what
    /// came is only part of the reply.
    Truncated,
    /// An event of the answer was larger than the stream parser accepts.
    Malformed,
}

impl UpstreamFailure {
    /// A sentence for the user; it names no internals.
    pub fn message(&self) -> String {
        match self {
            Self::Misconfigured => {
                "The app's model endpoint is not configured correctly; the server log says how to fix it."
                    .to_owned()
            }
            Self::NotAllowed => {
                "This app is not allowed to reach its model endpoint; the server log says how to fix it."
                    .to_owned()
            }
            Self::Unreachable => "The model endpoint could not be reached.".to_owned(),
            Self::Status(status) => format!("The model endpoint answered with status {status}."),
            Self::TimedOut => "The model endpoint stopped answering in time.".to_owned(),
            Self::BrokeOff => "The model endpoint's reply broke off.".to_owned(),
            Self::Truncated => {
                "The model endpoint's reply ended before it was complete.".to_owned()
            }
            Self::Malformed => "The model endpoint's reply could not be read.".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_name_on_the_workspace_gives_its_invocations_url() {
        let workspace = Some("https://adb-123.azuredatabricks.net/");
        assert_eq!(
            endpoint_url(Some("http://ignored/x"), workspace, Some("my-agent_2")).unwrap(),
            "https://adb-123.azuredatabricks.net/serving-endpoints/my-agent_2/invocations"
        );
        assert_eq!(
            endpoint_url(Some("https://full/url"), workspace, None).unwrap(),
            "https://full/url"
        );
        assert!(
            endpoint_url(None, workspace, None)
                .unwrap_err()
                .contains("serving_endpoint_url")
        );
        for bad in ["my agent", "a/b", "../x", &"x".repeat(64)] {
            let error = endpoint_url(None, workspace, Some(bad)).unwrap_err();
            assert!(error.contains("serving_endpoint_name"), "{bad}: {error}");
        }
        let error = endpoint_url(None, None, Some("agent")).unwrap_err();
        assert!(error.contains("serving_endpoint_origin"), "{error}");
        for origin in [
            "adb-123.azuredatabricks.net",
            "https://host/serving-endpoints",
        ] {
            let error = endpoint_url(None, Some(origin), Some("agent")).unwrap_err();
            assert!(error.contains("scheme, host and port"), "{origin}: {error}");
        }
    }
    use crate::chat::request::Role;

    #[test]
    fn what_ends_a_reply_in_both_formats() {
        for last in [
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
            json!({"type": "response.completed", "trace_id": "tr-1"}),
        ] {
            assert!(ends_reply(&last), "{last}");
        }
        for not_last in [
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
            json!({"type": "response.output_text.delta", "delta": "lo"}),
            json!({"type": "response.output_text.done", "text": "whole"}),
        ] {
            assert!(!ends_reply(&not_last), "{not_last}");
        }
    }

    #[test]
    fn deltas_in_both_formats() {
        let chat = json!({"choices": [{"index": 0, "delta": {"content": "Hel"}}]});
        assert_eq!(extract_delta(&chat), Some("Hel"));
        let responses = json!({"type": "response.output_text.delta", "delta": "lo"});
        assert_eq!(extract_delta(&responses), Some("lo"));
    }

    #[test]
    fn chunks_without_text_add_nothing() {
        for chunk in [
            json!({"choices": [{"delta": {"role": "assistant"}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
            json!({"choices": []}),
            json!({"choices": [{"delta": {"content": null}}]}),
            json!({"choices": [{"delta": {"content": 5}}]}),
            json!({"type": "response.output_text.done", "text": "whole"}),
            json!({"type": "response.output_text.delta", "delta": 1}),
            // A delta outside its event type is no text.
            json!({"type": "response.created", "delta": "x"}),
            json!("just a string"),
            json!([1, 2]),
        ] {
            assert_eq!(extract_delta(&chunk), None, "{chunk}");
        }
    }

    #[test]
    fn trace_ids_in_either_place() {
        let databricks = json!({"databricks_output": {"trace": {"info": {"trace_id": "tr-1"}}}});
        assert_eq!(extract_trace_id(&databricks), Some("tr-1"));
        assert_eq!(extract_trace_id(&json!({"trace_id": "tr-2"})), Some("tr-2"));
        let both = json!({"trace_id": "tr-top", "databricks_output": {"trace": {"info": {"trace_id": "tr-db"}}}});
        assert_eq!(extract_trace_id(&both), Some("tr-db"));
        for chunk in [
            json!({}),
            json!({"trace_id": null}),
            json!({"trace_id": 7}),
            json!({"trace_id": ""}),
            json!({"databricks_output": {"trace": {}}}),
        ] {
            assert_eq!(extract_trace_id(&chunk), None, "{chunk}");
        }
    }

    #[test]
    fn the_timeout_is_whole_seconds_within_bounds() {
        assert_eq!(timeout_setting(None), Ok(DEFAULT_TIMEOUT));
        assert_eq!(timeout_setting(Some("1")), Ok(Duration::from_secs(1)));
        assert_eq!(
            timeout_setting(Some(" 3600 ")),
            Ok(Duration::from_secs(3600))
        );
        for bad in ["0", "3601", "-1", "1.5", "ten", ""] {
            let error = timeout_setting(Some(bad)).unwrap_err();
            assert!(
                error.starts_with("serving_timeout_seconds must be"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_users_token_goes_first() {
        assert_eq!(
            authorization(Some("user"), Some("app")).as_deref(),
            Some("Bearer user")
        );
        assert_eq!(
            authorization(None, Some("app")).as_deref(),
            Some("Bearer app")
        );
        assert_eq!(authorization(None, None), None);
    }

    #[test]
    fn the_reply_request_streams_roles_and_contents() {
        let messages = [
            ChatMessage {
                role: Role::Assistant,
                content: "Hi".into(),
                id: None,
            },
            ChatMessage {
                role: Role::User,
                content: "Tell me \"more\"".into(),
                id: Some(uuid::Uuid::nil()),
            },
        ];
        let conversation = json!([
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "Tell me \"more\""}
        ]);
        let chat = reply_request_body(EndpointApi::ChatCompletions, &messages);
        let body: Value = serde_json::from_slice(&chat).unwrap();
        assert_eq!(body, json!({"messages": conversation, "stream": true}));
        // A ResponsesAgent refuses `messages`: it requires `input`.
        let responses = reply_request_body(EndpointApi::Responses, &messages);
        let body: Value = serde_json::from_slice(&responses).unwrap();
        assert_eq!(body, json!({"input": conversation, "stream": true}));
    }

    #[test]
    fn ratings_go_to_mlflow_origin_else_to_the_endpoints_workspace() {
        let workspace = Some("https://adb-1.azuredatabricks.net/");
        assert_eq!(
            mlflow_origin(None, workspace).as_deref(),
            Ok("https://adb-1.azuredatabricks.net")
        );
        assert_eq!(
            mlflow_origin(Some("http://127.0.0.1:5000"), workspace).as_deref(),
            Ok("http://127.0.0.1:5000")
        );
        let error = mlflow_origin(Some("http://mlflow:5000/api"), workspace).unwrap_err();
        assert!(error.contains("mlflow_origin"), "{error}");
        assert!(mlflow_origin(None, None).is_err());
    }

    #[test]
    fn the_request_shape_is_a_setting() {
        assert_eq!(EndpointApi::setting(None), Ok(EndpointApi::ChatCompletions));
        assert_eq!(
            EndpointApi::setting(Some("chat-completions")),
            Ok(EndpointApi::ChatCompletions)
        );
        assert_eq!(
            EndpointApi::setting(Some(" responses ")),
            Ok(EndpointApi::Responses)
        );
        let error = EndpointApi::setting(Some("openai")).unwrap_err();
        assert!(error.contains("serving_endpoint_api"), "{error}");
    }

    #[test]
    fn the_title_request_does_not_stream_and_quotes_500_characters() {
        let request = title_request_body(EndpointApi::ChatCompletions, &"é".repeat(600));
        let body: Value = serde_json::from_slice(&request).unwrap();
        assert!(body.get("stream").is_none());
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["role"], "user");
        let quoted = body["messages"][1]["content"].as_str().unwrap();
        assert_eq!(quoted.chars().count(), 500);
        let request = title_request_body(EndpointApi::Responses, "Hi");
        let body: Value = serde_json::from_slice(&request).unwrap();
        assert_eq!(body["input"][1], json!({"role": "user", "content": "Hi"}));
    }

    #[test]
    fn titles_from_either_answer_format() {
        let chat = br#"{"choices":[{"message":{"role":"assistant","content":"  \"Paris Trip Plans\"\n"}}]}"#;
        assert_eq!(title_from_answer(chat).as_deref(), Some("Paris Trip Plans"));
        let responses = br#"{"output":[{"type":"message","content":[{"type":"output_text","text":"Rust Ownership Basics"}]}]}"#;
        assert_eq!(
            title_from_answer(responses).as_deref(),
            Some("Rust Ownership Basics")
        );
        let long = format!(
            r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#,
            "w".repeat(200)
        );
        assert_eq!(
            title_from_answer(long.as_bytes()).unwrap().chars().count(),
            MAX_TITLE_CHARS
        );
    }

    #[test]
    fn no_title_from_an_answer_without_one() {
        for body in [
            &b"not json"[..],
            b"{}",
            br#"{"choices":[{"message":{"content":"  \n "}}]}"#,
            br#"{"choices":[{"message":{"content":null}}]}"#,
            br#"{"output":[]}"#,
        ] {
            assert_eq!(title_from_answer(body), None, "{body:?}");
        }
    }

    #[test]
    fn the_fallback_title_is_the_first_60_characters_on_one_line() {
        assert_eq!(fallback_title("  What is\n\nRust?  "), "What is Rust?");
        let long = "ü".repeat(100);
        assert_eq!(fallback_title(&long), "ü".repeat(60));
        assert_eq!(
            fallback_title(&format!("{} tail", "a".repeat(59))),
            "a".repeat(59)
        );
    }

    #[test]
    fn failure_messages_are_sentences() {
        for failure in [
            UpstreamFailure::Misconfigured,
            UpstreamFailure::NotAllowed,
            UpstreamFailure::Unreachable,
            UpstreamFailure::Status(502),
            UpstreamFailure::TimedOut,
            UpstreamFailure::BrokeOff,
            UpstreamFailure::Malformed,
        ] {
            let message = failure.message();
            assert!(message.ends_with('.'), "{message}");
        }
        assert!(UpstreamFailure::Status(502).message().contains("502"));
    }
}
