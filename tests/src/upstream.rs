//! A model-serving endpoint the tests script: each test says what every
//! answer sends, when, and how it fails, and reads back what was asked.
//!
//! Streaming requests (`"stream": true`) take the next reply script, others
//! (title requests) the next title script; an unscripted request is a 501.
//! Paths under `/api/3.0/mlflow/` go to the MLflow stand-in
//! ([`crate::mlflow`]), as a workspace's MLflow shares its origin.
//! A script can wait for the test client to acknowledge what it received,
//! which proves causally that nothing between them buffers.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::mlflow::{self, MlflowStandIn};

/// The path of the scripted endpoint (any path is answered).
const INVOCATIONS: &str = "/serving-endpoints/scripted/invocations";

/// One answer: its status (`None`: the head never comes) and what its body
/// does, step by step.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: Option<u16>,
    pub content_type: &'static str,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub enum Step {
    /// Sends these bytes as one write.
    Send(String),
    Pause(Duration),
    /// Waits until the test acknowledged at least this many events.
    AwaitAck(usize),
    /// Aborts the connection without ending the body.
    Break,
    /// Sends nothing more and never ends.
    Stall,
}

impl Script {
    /// A 200 `text/event-stream` answer.
    pub fn stream(steps: Vec<Step>) -> Self {
        Self {
            status: Some(200),
            content_type: "text/event-stream",
            steps,
        }
    }

    /// A 200 JSON answer with this body, sent after `steps`.
    pub fn json_after(steps: Vec<Step>, body: &Value) -> Self {
        let mut steps = steps;
        steps.push(Step::Send(body.to_string()));
        Self {
            status: Some(200),
            content_type: "application/json",
            steps,
        }
    }

    /// An error status with a short body.
    pub fn failing(status: u16, body: &str) -> Self {
        Self {
            status: Some(status),
            content_type: "application/json",
            steps: vec![Step::Send(body.to_owned())],
        }
    }

    /// An answer whose head never comes.
    pub fn silent() -> Self {
        Self {
            status: None,
            content_type: "text/event-stream",
            steps: Vec::new(),
        }
    }
}

/// A request the endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request's path, as the endpoint saw it.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// How many body bytes arrived.
    pub body_bytes: usize,
}

impl Received {
    /// The `Content-Length` the request declared, if any.
    pub fn declared_length(&self) -> Option<usize> {
        self.headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse().ok())
    }

    pub fn authorization(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
    }

    pub fn is_streaming(&self) -> bool {
        self.body["stream"] == true
    }
}

#[derive(Default)]
struct Scripts {
    replies: VecDeque<Script>,
    titles: VecDeque<Script>,
    received: Vec<Received>,
    /// Reply scripts that ran every step and ended their body.
    replies_finished: usize,
    /// Scripts waiting at an [`Step::AwaitAck`] right now.
    awaiting_ack: usize,
    /// Answers the app closed before they ended: while they stalled, while
    /// they were still sending, or before they began.
    hung_up: usize,
}

/// Held by an answer that never comes, and dropped (counting a hang-up)
/// when hyper drops that answer because its connection closed.
struct HangUpCounter(Arc<Mutex<Scripts>>);

impl Drop for HangUpCounter {
    fn drop(&mut self) {
        self.0.lock().unwrap().hung_up += 1;
    }
}

/// The endpoint, serving on a loopback port until dropped.
pub struct ScriptedUpstream {
    /// The full invocation URL, for `serving_endpoint_url`.
    pub url: String,
    /// `http://127.0.0.1:<port>`, for `serving_endpoint_origin`.
    pub origin: String,
    scripts: Arc<Mutex<Scripts>>,
    acknowledged: Arc<watch::Sender<usize>>,
    /// The workspace's MLflow, at the same origin.
    pub mlflow: Arc<MlflowStandIn>,
    server: JoinHandle<()>,
}

impl ScriptedUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let scripts = Arc::new(Mutex::new(Scripts::default()));
        let acknowledged = Arc::new(watch::Sender::new(0));
        let mlflow = Arc::new(MlflowStandIn::default());
        let server = tokio::spawn(serve(
            listener,
            scripts.clone(),
            acknowledged.clone(),
            mlflow.clone(),
        ));
        Self {
            url: format!("{origin}{INVOCATIONS}"),
            origin,
            scripts,
            acknowledged,
            mlflow,
            server,
        }
    }

    /// The script of the next streaming request.
    pub fn expect_reply(&self, script: Script) {
        self.scripts.lock().unwrap().replies.push_back(script);
    }

    /// The script of the next non-streaming (title) request.
    pub fn expect_title(&self, script: Script) {
        self.scripts.lock().unwrap().titles.push_back(script);
    }

    /// Tells waiting scripts that the client has received `count` events.
    pub fn acknowledge(&self, count: usize) {
        self.acknowledged.send_replace(count);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.scripts.lock().unwrap().received.clone()
    }

    /// How many scripts are waiting at an [`Step::AwaitAck`] right now.
    pub fn awaiting_ack(&self) -> usize {
        self.scripts.lock().unwrap().awaiting_ack
    }

    /// How many answers the app closed before they ended (while they
    /// stalled or sent, or, for a silent one, before its head).
    pub fn hung_up(&self) -> usize {
        self.scripts.lock().unwrap().hung_up
    }

    /// How many reply scripts sent everything and ended their body.
    pub fn replies_finished(&self) -> usize {
        self.scripts.lock().unwrap().replies_finished
    }
}

impl Drop for ScriptedUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

async fn serve(
    listener: TcpListener,
    scripts: Arc<Mutex<Scripts>>,
    acknowledged: Arc<watch::Sender<usize>>,
    mlflow: Arc<MlflowStandIn>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let scripts = scripts.clone();
        let acknowledged = acknowledged.clone();
        let mlflow = mlflow.clone();
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            let (scripts, acknowledged, mlflow) =
                (scripts.clone(), acknowledged.clone(), mlflow.clone());
            async move {
                if request.uri().path().starts_with(mlflow::PREFIX) {
                    answer_mlflow(request, &mlflow).await
                } else {
                    answer(request, scripts, acknowledged, mlflow).await
                }
            }
        });
        // Dropped with the server, so a stalled answer ends with the test.
        connections.spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The whole request body (empty when it broke off).
async fn collected(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// An MLflow call, answered by the stand-in; a dropped answer closes the
/// connection without a response.
async fn answer_mlflow(
    request: hyper::Request<Incoming>,
    mlflow: &MlflowStandIn,
) -> Result<hyper::Response<Body>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = collected(body).await;
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value: &http::HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let call = mlflow::Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        authorization: header(http::header::AUTHORIZATION),
        declared_length: header(http::header::CONTENT_LENGTH).and_then(|value| value.parse().ok()),
        body_bytes: body.len(),
    };
    let respond = |status: u16, content_type: &'static str, body: Bytes| {
        let body = http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed();
        let mut response = hyper::Response::new(body);
        *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        Ok(response)
    };
    match mlflow.answer(call, &body) {
        mlflow::Answer::Json(status, json) => {
            respond(status, "application/json", Bytes::from(json.to_string()))
        }
        mlflow::Answer::Page(status, page) => respond(
            status,
            "text/html; charset=utf-8",
            Bytes::from_static(page.as_bytes()),
        ),
        mlflow::Answer::Hang => std::future::pending().await,
        mlflow::Answer::Drop => Err(std::io::Error::other("a scripted dropped connection")),
    }
}

/// Logs the trace of each `data:` event in `text` that names one.
fn log_traces_in(text: &str, mlflow: &MlflowStandIn) {
    for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
        if let Ok(event) = serde_json::from_str::<Value>(data)
            && let Some(trace_id) = chat_domain::chat::serving::extract_trace_id(&event)
        {
            mlflow.log_trace(trace_id);
        }
    }
}

/// A model request, answered as its script says. A trace id the reply
/// carries is logged in the MLflow stand-in, as the agent that made the
/// trace would log it.
async fn answer(
    request: hyper::Request<Incoming>,
    scripts: Arc<Mutex<Scripts>>,
    acknowledged: Arc<watch::Sender<usize>>,
    mlflow: Arc<MlflowStandIn>,
) -> Result<hyper::Response<Body>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = collected(body).await;
    let received = Received {
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body_bytes: body.len(),
    };
    let streaming = received.is_streaming();
    let script = {
        let mut scripts = scripts.lock().unwrap();
        scripts.received.push(received);
        let queue = if streaming {
            &mut scripts.replies
        } else {
            &mut scripts.titles
        };
        queue.pop_front()
    };
    let script = script.unwrap_or_else(|| Script::failing(501, r#"{"error":"unscripted"}"#));
    let Some(status) = script.status else {
        let _counted_when_dropped = HangUpCounter(scripts.clone());
        std::future::pending::<()>().await;
        unreachable!("a silent answer never comes");
    };
    let Script {
        content_type,
        steps,
        ..
    } = script;
    let (frames, receiver) = mpsc::unbounded_channel::<Result<Frame<Bytes>, std::io::Error>>();
    tokio::spawn(async move {
        let mut acknowledged = acknowledged.subscribe();
        for step in steps {
            match step {
                Step::Send(text) => {
                    log_traces_in(&text, &mlflow);
                    if frames.send(Ok(Frame::data(Bytes::from(text)))).is_err() {
                        scripts.lock().unwrap().hung_up += 1;
                        return;
                    }
                }
                Step::Pause(duration) => tokio::time::sleep(duration).await,
                Step::AwaitAck(count) => {
                    scripts.lock().unwrap().awaiting_ack += 1;
                    let _ = acknowledged.wait_for(|&acked| acked >= count).await;
                    scripts.lock().unwrap().awaiting_ack -= 1;
                }
                Step::Break => {
                    let _ = frames.send(Err(std::io::Error::other("scripted break")));
                    return;
                }
                Step::Stall => {
                    frames.closed().await;
                    scripts.lock().unwrap().hung_up += 1;
                    return;
                }
            }
        }
        if streaming {
            scripts.lock().unwrap().replies_finished += 1;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|frame| (frame, receiver))
    });
    let mut response = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid scripted status");
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(response)
}
