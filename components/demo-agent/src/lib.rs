//! The demo-agent component: a local stand-in for a model-serving endpoint,
//! so the app chats with no cloud, and for its workspace's MLflow
//! assessments API, so ratings reach an "MLflow" too. What it answers is
//! decided in `rules/` (crate demo-rules). Its route is private: chat-stream and
//! feedback reach it by service chaining, at
//! `http://demo-agent.spin.internal/...`; any path but the MLflow ones is
//! the endpoint.

use chat_guest::request::{Request, allow_only, read_body};
use chat_guest::response::{self, HttpResponse};
use chat_guest::{Failure, store};
use demo_rules::agent::{self, Invocation, ReplyFormat, WORD_INTERVAL};
use demo_rules::mlflow::{self, Route};
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
    if request.uri().path().starts_with(mlflow::PREFIX) {
        return serve_mlflow(request).await;
    }
    allow_only(request.method(), "POST")?;
    let format = ReplyFormat::from_query(request.uri().query().unwrap_or(""));
    let (request, body) = request.into_parts();
    let invocation = Invocation::parse(&read_body(&request.headers, body).await?)?;
    let format = if invocation.responses_shape {
        ReplyFormat::Responses
    } else {
        format
    };
    let trace_id = agent::trace_id(Uuid::new_v4());
    log_trace(&trace_id).await;
    if !invocation.stream {
        let title = agent::title(&invocation.message);
        let answer = agent::answer(format, &title, &trace_id);
        return Ok(response::json(StatusCode::OK, &answer));
    }
    let (events, response) = response::event_stream();
    spawn(async move {
        let text = agent::reply_text(&invocation.message);
        for piece in agent::pieces(&text) {
            spin_sdk::time::sleep(WORD_INTERVAL).await;
            if !events.send(agent::delta_frame(format, piece)) {
                return; // the caller hung up
            }
        }
        for frame in agent::closing_frames(format, &trace_id) {
            events.send(frame);
        }
    });
    Ok(response)
}

/// Makes the trace known to the demo MLflow, as an agent's tracing would
/// (at once here; a real one logs it asynchronously). A store that cannot
/// be written leaves the trace unknown, and ratings of it wait.
async fn log_trace(trace_id: &str) {
    let Some(store) = store::open().await else {
        return;
    };
    let logged = serde_json::to_vec(&mlflow::logged_trace()).expect("JSON values serialise");
    if let Err(error) = store.set(&mlflow::store_key(trace_id), &logged).await {
        chat_guest::log::failure("the demo agent: logging its trace", &format!("{error:?}"));
    }
}

/// An MLflow call, carried out on the trace's assessments in
/// the key-value store (a demo: two calls on one trace at the same moment
/// may overwrite each other).
async fn serve_mlflow(request: Request) -> Result<HttpResponse, Failure> {
    let Some(route) = Route::parse(request.method().as_str(), request.uri().path()) else {
        return Ok(response::html(StatusCode::NOT_FOUND, mlflow::NOT_A_ROUTE));
    };
    let (request, body) = request.into_parts();
    let body = read_body(&request.headers, body).await?;
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let Some(store) = store::open().await else {
        return Err(Failure::Rejected(
            chat_domain::ApiError::service_unavailable(
                "The demo MLflow keeps assessments in the key-value store `default`, which it cannot open.",
            ),
        ));
    };
    let key = mlflow::store_key(route.trace_id());
    let stored = match store.get(&key).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
        _ => None,
    };
    let new_id = format!("demo-{}", Uuid::new_v4().simple());
    let (status, answer, changed) = route.apply(&body, stored, new_id, store::now_ms());
    if let Some(assessments) = changed {
        let bytes = serde_json::to_vec(&assessments).expect("JSON values serialise");
        if let Err(error) = store.set(&key, &bytes).await {
            let error = format!("{error:?}");
            chat_guest::log::failure("the demo MLflow: storing assessments", &error);
            return Err(Failure::Rejected(
                chat_domain::ApiError::service_unavailable(
                    "The demo MLflow could not store the assessment.",
                ),
            ));
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok(response::json(status, &answer))
}
