//! The SSE proxy benchmark: a native model endpoint that streams a fixed
//! number of chunks at a fixed spacing, and a client that holds many streams
//! open at once, either against that endpoint directly or through
//! `POST /api/chat`. Each chunk carries the instant the endpoint sent it (the
//! endpoint runs in this process, so both ends read the same clock), which
//! gives every chunk's delay from the endpoint to the client.

use crate::load::Samples;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chat_domain::http::sse::SseParser;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

const INVOCATIONS: &str = "/serving-endpoints/bench/invocations";

/// Microseconds on a clock both the endpoint and the client read.
fn now_micros() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// How the endpoint streams each reply.
#[derive(Clone, Copy, Debug)]
pub struct ReplyShape {
    pub chunks: usize,
    pub spacing: Duration,
    /// How long the endpoint thinks before its first chunk, as a model does
    /// before its first token. Asked for in the question itself (see
    /// [`question`]), the one thing the proxy passes on unchanged.
    pub first_chunk_after: Duration,
}

impl ReplyShape {
    pub fn with_first_chunk_after(self, first_chunk_after: Duration) -> Self {
        Self {
            first_chunk_after,
            ..self
        }
    }
}

const THINK_PREFIX: &str = "Hello; first chunk after ms=";

/// The user's question, which tells the endpoint how long to think.
fn question(shape: ReplyShape) -> String {
    format!("{THINK_PREFIX}{}", shape.first_chunk_after.as_millis())
}

/// How long the question asks the endpoint to think.
fn thinking_time(request: &Value) -> Duration {
    let asked = request["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["content"].as_str())
        .and_then(|content| content.strip_prefix(THINK_PREFIX))
        .and_then(|ms| ms.parse().ok());
    Duration::from_millis(asked.unwrap_or(0))
}

/// The endpoint, serving on a loopback port for the life of the process.
pub struct Upstream {
    pub addr: SocketAddr,
}

impl Upstream {
    pub async fn start(shape: ReplyShape) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let service = service_fn(move |request| answer(request, shape));
                tokio::spawn(
                    server::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Ok(Self { addr })
    }

    /// The full invocation URL, for `serving_endpoint_url`.
    pub fn url(&self) -> String {
        format!("{}{INVOCATIONS}", self.origin())
    }

    /// For `serving_endpoint_origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A streaming request gets the chunks; a title request a JSON title at once.
async fn answer(
    request: Request<Incoming>,
    shape: ReplyShape,
) -> Result<hyper::Response<UpstreamBody>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    let streaming = body["stream"] == true;
    let thinking = thinking_time(&body);
    if !streaming {
        let title = json!({"choices": [{"message": {"content": "Benchmark chat"}}]});
        return Ok(hyper::Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(title.to_string())).boxed())
            .expect("a valid response"));
    }
    let frames = futures_util::stream::unfold(0, move |sent| async move {
        if sent > shape.chunks {
            return None;
        }
        let pause = if sent == 0 { thinking } else { shape.spacing };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let event = if sent == shape.chunks {
            "data: [DONE]\n\n".to_owned()
        } else {
            let chunk = json!({
                "choices": [{"delta": {"content": format!("word{sent} ")}}],
                "trace_id": "bench-trace",
                "sent_micros": now_micros(),
            });
            format!("data: {chunk}\n\n")
        };
        Some((Ok(Frame::data(Bytes::from(event))), sent + 1))
    });
    Ok(hyper::Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .body(StreamBody::new(frames).boxed())
        .expect("a valid response"))
}

/// Where streams are opened: the endpoint itself, or chat-host's `/api/chat`.
#[derive(Clone, Debug)]
pub enum Route {
    Direct(SocketAddr),
    /// Client `n` posts as `n@<domain>`: one user per concurrent stream, as
    /// when that many people chat at once.
    Proxy {
        host: SocketAddr,
        domain: String,
    },
}

/// What a batch of streams measured.
#[derive(Debug, Default)]
pub struct StreamRun {
    /// From sending the request to the first chunk.
    pub time_to_first_chunk: Samples,
    /// From the endpoint sending a chunk to the client reading it.
    pub chunk_delay: Samples,
    pub completed: usize,
    pub failed: usize,
    pub elapsed: Duration,
}

/// Holds `concurrency` streams open: each of that many clients opens
/// `rounds` streams one after another. Clients start spread over one reply's
/// duration, so arrivals are steady rather than one burst.
pub async fn run(
    route: &Route,
    shape: ReplyShape,
    concurrency: usize,
    rounds: usize,
) -> Result<StreamRun> {
    let reply_duration = shape.spacing * shape.chunks as u32;
    let started = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|client| {
            let route = route.clone();
            let delay = reply_duration * client as u32 / concurrency as u32;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut run = StreamRun::default();
                for _ in 0..rounds {
                    match one_stream(&route, client, shape).await {
                        Ok((first, delays)) => {
                            run.completed += 1;
                            run.time_to_first_chunk.push(first);
                            run.chunk_delay.extend(delays);
                        }
                        Err(error) => {
                            eprintln!("stream failed: {error:#}");
                            run.failed += 1;
                        }
                    }
                }
                run
            })
        })
        .collect();
    let mut total = StreamRun::default();
    for client in clients {
        let run = client.await.context("a stream client panicked")?;
        total.completed += run.completed;
        total.failed += run.failed;
        total.time_to_first_chunk.extend(run.time_to_first_chunk);
        total.chunk_delay.extend(run.chunk_delay);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// One reply read to its end: the time to its first chunk and every chunk's
/// delay. A reply through the proxy must end with `[DONE]`, which chat-stream
/// sends only once the reply is stored.
async fn one_stream(
    route: &Route,
    client: usize,
    shape: ReplyShape,
) -> Result<(Duration, Samples)> {
    let chunks = shape.chunks;
    let (addr, request, body) = match route {
        Route::Direct(upstream) => (
            *upstream,
            Request::post(INVOCATIONS),
            json!({"messages": [{"role": "user", "content": question(shape)}], "stream": true}),
        ),
        Route::Proxy { host, domain } => (
            *host,
            Request::post("/api/chat").header("x-forwarded-email", format!("{client}@{domain}")),
            json!({
                "id": Uuid::new_v4(),
                "messages": [{"role": "user", "content": question(shape), "id": Uuid::new_v4()}],
            }),
        ),
    };
    let request = request
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) = client::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let sent = Instant::now();
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::OK {
        bail!("status {}", response.status());
    }
    let mut body = response.into_body();
    let mut parser = SseParser::new();
    let mut first_chunk = None;
    let mut delays = Samples::default();
    let mut done = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let received = now_micros();
        for event in parser
            .push(&data)
            .map_err(|_| anyhow::anyhow!("an oversized event"))?
        {
            if event == "[DONE]" {
                done = true;
                continue;
            }
            let event: Value = serde_json::from_str(&event).context("an event that is not JSON")?;
            if event["type"] == "error" {
                bail!("the proxy reported {event}");
            }
            if let Some(sent_micros) = event["sent_micros"].as_u64() {
                first_chunk.get_or_insert_with(|| sent.elapsed());
                delays.push_micros(received.saturating_sub(sent_micros));
            }
        }
    }
    if !done || delays.len() != chunks {
        bail!("the stream ended after {} of {chunks} chunks", delays.len());
    }
    Ok((first_chunk.expect("chunks arrived"), delays))
}
