//! One chat turn through the app's HTTP API, its answer read whole.

use crate::host::TestHost;
use serde_json::{Value, json};
use uuid::Uuid;

/// What `POST /api/chat` answered.
pub struct Answer {
    /// The whole event stream, as text.
    pub stream: String,
    /// Its `meta` event (the reply's ids).
    pub meta: Value,
}

/// Asks `question` as `email` in `chat` (`None`: a chat the app makes) and
/// reads the whole answer; fails the test when it has no `meta` event.
pub async fn ask(host: &TestHost, email: &str, chat: Option<Uuid>, question: &str) -> Answer {
    let mut body = json!({"messages": [{"role": "user", "content": question}]});
    if let Some(chat) = chat {
        body["id"] = json!(chat);
    }
    let stream = reqwest::Client::new()
        .post(host.url("/api/chat"))
        .header("x-forwarded-email", email)
        .json(&body)
        .send()
        .await
        .expect("POST /api/chat answered")
        .text()
        .await
        .expect("the answer read whole");
    let meta = crate::sse::meta_event(&stream);
    Answer { stream, meta }
}
