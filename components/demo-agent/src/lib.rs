//! The demo-agent component: a local stand-in for a model-serving endpoint
//! (see `chat_domain::demo_agent`), so the app chats with no cloud. Its route
//! is private: chat-stream reaches it by service chaining, at
//! `http://demo-agent.spin.internal/...`; any path is the endpoint.

use chat_domain::demo_agent::{self, Invocation, ReplyFormat, WORD_INTERVAL};
use chat_guest::Failure;
use chat_guest::request::{Request, allow_only, read_body};
use chat_guest::response::{self, HttpResponse};
use spin_sdk::http::StatusCode;
use spin_sdk::wit_bindgen::spawn;
use uuid::Uuid;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    response::serve(request, route).await
}

/// A streaming invocation gets the reply word by word; any other (such as
/// the title request) a short title at once.
async fn route(request: Request) -> Result<HttpResponse, Failure> {
    allow_only(request.method(), "POST")?;
    let format = ReplyFormat::from_query(request.uri().query().unwrap_or(""));
    let (request, body) = request.into_parts();
    let invocation = Invocation::parse(&read_body(&request.headers, body).await?)?;
    let trace_id = demo_agent::trace_id(Uuid::new_v4());
    if !invocation.stream {
        let title = demo_agent::title(&invocation.message);
        let answer = demo_agent::answer(format, &title, &trace_id);
        return Ok(response::json(StatusCode::OK, &answer));
    }
    let (events, response) = response::event_stream();
    spawn(async move {
        let text = demo_agent::reply_text(&invocation.message);
        for piece in demo_agent::pieces(&text) {
            spin_sdk::time::sleep(WORD_INTERVAL).await;
            if !events.send(demo_agent::delta_frame(format, piece)) {
                return; // the caller hung up
            }
        }
        for frame in demo_agent::closing_frames(format, &trace_id) {
            events.send(frame);
        }
    });
    Ok(response)
}
