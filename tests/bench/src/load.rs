//! A closed-loop HTTP/1.1 load generator: every connection sends its next GET
//! as soon as the previous answer has been read in full (keep-alive), and the
//! time from sending to the last byte is one latency sample.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One GET, sent again and again.
#[derive(Clone, Debug)]
pub struct Get {
    pub path_and_query: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Get {
    pub fn as_user(path_and_query: impl Into<String>, email: &str) -> Self {
        Self {
            path_and_query: path_and_query.into(),
            headers: vec![(
                HeaderName::from_static("x-forwarded-email"),
                HeaderValue::from_str(email).expect("a header-safe email"),
            )],
        }
    }

    fn request(&self, addr: SocketAddr) -> Request<Empty<Bytes>> {
        let mut request = Request::get(&self.path_and_query)
            .header(http::header::HOST, addr.to_string())
            .body(Empty::new())
            .expect("a valid request");
        for (name, value) in &self.headers {
            request.headers_mut().insert(name, value.clone());
        }
        request
    }
}

/// Latency samples in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<u64>);

impl Samples {
    pub fn push(&mut self, elapsed: Duration) {
        self.0
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn push_micros(&mut self, micros: u64) {
        self.0.push(micros);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `quantile` (0..=1) in milliseconds, nearest rank; NaN when empty.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    }
}

/// What one or more runs against one target measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latencies: Samples,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn merge(&mut self, other: Measured) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }
}

/// Sends `get` over `connections` connections for `duration`.
pub async fn run(
    addr: SocketAddr,
    get: &Get,
    connections: usize,
    duration: Duration,
) -> Result<Measured> {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection_loop(addr, get.clone(), deadline)))
        .collect();
    let mut measured = Measured::default();
    for worker in workers {
        measured.merge(worker.await.context("a load connection panicked")??);
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

async fn connection_loop(addr: SocketAddr, get: Get, deadline: Instant) -> Result<Measured> {
    let mut measured = Measured::default();
    let mut sender = connect(addr).await?;
    while Instant::now() < deadline {
        let sent = Instant::now();
        match exchange(&mut sender, get.request(addr)).await {
            Ok(StatusCode::OK) => {
                measured.ok += 1;
                measured.latencies.push(sent.elapsed());
            }
            Ok(_) => measured.failed += 1,
            Err(_) => {
                // The connection broke: count it and carry on with a new one.
                measured.failed += 1;
                sender = connect(addr).await?;
            }
        }
    }
    Ok(measured)
}

type Sender = http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads its whole answer.
async fn exchange(sender: &mut Sender, request: Request<Empty<Bytes>>) -> Result<StatusCode> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// One GET on a fresh connection: its status and body.
pub async fn fetch(addr: SocketAddr, get: &Get) -> Result<(StatusCode, Bytes)> {
    let mut sender = connect(addr).await?;
    sender.ready().await?;
    let response = sender.send_request(get.request(addr)).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// A server under measurement, named in messages and tables.
#[derive(Clone, Copy, Debug)]
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
}

/// Fails unless every server answers `get` with 200 and the same body as the
/// first, so the figures compare the same work.
pub async fn expect_same_answer(servers: &[Server], get: &Get) -> Result<()> {
    let answer_of = async |server: &Server| {
        fetch(server.addr, get)
            .await
            .with_context(|| format!("GET {} from {}", get.path_and_query, server.name))
    };
    let (reference, others) = servers.split_first().context("no server to ask")?;
    let expected = answer_of(reference).await?;
    if expected.0 != StatusCode::OK {
        bail!(
            "GET {}: {} answered {} {:?}",
            get.path_and_query,
            reference.name,
            expected.0,
            String::from_utf8_lossy(&expected.1)
        );
    }
    for server in others {
        let answer = answer_of(server).await?;
        if answer != expected {
            bail!(
                "GET {} differs: {} {} {:?}, {} {} {:?}",
                get.path_and_query,
                reference.name,
                expected.0,
                String::from_utf8_lossy(&expected.1),
                server.name,
                answer.0,
                String::from_utf8_lossy(&answer.1)
            );
        }
    }
    Ok(())
}

/// For a server whose answers cannot be byte-identical to the reference's
/// (the seed's app: Express's JSON, timestamps to the millisecond, ties on
/// "createdAt" in any order): fails unless it answers `get` with 200 and a
/// page of as many rows as `reference`'s, with the same `hasMore`, so its
/// figures are of the same work, not of fast errors (the seed's app answers
/// a failed query with 204).
pub async fn expect_same_page(reference: Server, server: Server, get: &Get) -> Result<()> {
    let page_of = async |server: Server| {
        let (status, body) = fetch(server.addr, get)
            .await
            .with_context(|| format!("GET {} from {}", get.path_and_query, server.name))?;
        let describe = || {
            format!(
                "GET {}: {} answered {status} {:?}",
                get.path_and_query,
                server.name,
                String::from_utf8_lossy(&body)
            )
        };
        if status != StatusCode::OK {
            bail!("{}", describe());
        }
        page_shape(&body).with_context(describe)
    };
    let expected = page_of(reference).await?;
    let answered = page_of(server).await?;
    if answered != expected {
        bail!(
            "GET {}: {} answered {} rows with hasMore {}, {} answered {} rows with hasMore {}",
            get.path_and_query,
            reference.name,
            expected.0,
            expected.1,
            server.name,
            answered.0,
            answered.1
        );
    }
    Ok(())
}

/// A page's number of rows (`data`) and its `hasMore`. A page without
/// `hasMore` has no more: the seed's messages route answers every message
/// of the chat at once, and says nothing of more.
fn page_shape(body: &[u8]) -> Result<(usize, bool)> {
    let page: serde_json::Value = serde_json::from_slice(body).context("not JSON")?;
    let rows = page["data"]
        .as_array()
        .context("no `data` array in the answer")?
        .len();
    let has_more = match page.get("hasMore") {
        None => false,
        Some(has_more) => has_more.as_bool().context("`hasMore` is not a boolean")?,
    };
    Ok((rows, has_more))
}
