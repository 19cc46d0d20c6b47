//! Serves the app over HTTP/1.1 with hyper, and drains in-flight requests on
//! shutdown: the listener closes at once (new connections are refused, so a
//! load balancer sends them elsewhere) after the connections the kernel had
//! already queued are taken; every connection is heard to the end of its
//! request; open requests and streams may finish until the drain deadline,
//! and what is still running then is cut (a streamed reply keeps its last
//! checkpoint and reads as incomplete).

use crate::app::LoadedApp;
use crate::metrics::Metrics;
use crate::probes::Readiness;
use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

/// How much of a request body nobody read is still received and discarded,
/// and for how long, so the answer is not lost to a connection reset.
const UNREAD_BODY_LIMIT: usize = 16 << 20;
const UNREAD_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open requests may take to finish once draining begins, unless
/// `chat-host up --drain-deadline` says otherwise.
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// What every serving thread shares about how it serves and stops.
#[derive(Clone)]
pub struct Serving {
    pub readiness: Readiness,
    pub drain_deadline: Duration,
    /// Where requests are counted, when metrics are served.
    pub metrics: Option<Arc<Metrics>>,
}

pub async fn serve(
    app: Arc<LoadedApp>,
    listener: TcpListener,
    serving: Serving,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let drain_deadline = serving.drain_deadline;
    let connections = Connections::new(app, serving);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => connections.serve(stream, client),
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    let queued = accept_queued(listener);
    let queued_count = queued.len();
    for (stream, client) in queued {
        connections.serve(stream, client);
    }
    tracing::info!(
        "draining: new connections are refused; {} open ones ({queued_count} of them still \
         queued in the kernel at the signal) may finish within {drain_deadline:?}",
        connections.open()
    );
    if tokio::time::timeout(drain_deadline, connections.drain())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after the drain deadline of {drain_deadline:?} are cut; \
             a streamed reply keeps its last checkpoint"
        );
    }
    Ok(())
}

/// Takes every connection the kernel has already completed for `listener`,
/// then closes it. Closing a listener resets the connections still queued on
/// it, and a load balancer may have sent a request down one: a reset after
/// the request is sent is a failure it must not retry (a chat would be sent
/// twice), where a refused connection is one it safely sends elsewhere.
/// What remains is the instant between the last accept and the close.
fn accept_queued(listener: TcpListener) -> Vec<(tokio::net::TcpStream, SocketAddr)> {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!("the queued connections cannot be taken: {error}");
            return Vec::new();
        }
    };
    let mut queued = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, client)) => {
                // An accepted socket does not inherit the listener's O_NONBLOCK.
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(stream));
                match stream {
                    Ok(stream) => queued.push((stream, client)),
                    Err(error) => tracing::warn!(%client, "a queued connection is lost: {error}"),
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
            // Out of file descriptors and the like: what is left stays unheard.
            Err(error) => {
                tracing::warn!("accept failed while draining: {error}");
                break;
            }
        }
    }
    drop(listener);
    queued
}

/// How long a connection accepted before draining began may take to send its
/// first request once it has. Its client connected to send one; closing it
/// unheard (as hyper's graceful shutdown does with a connection that has
/// sent nothing yet) would fail that request.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The connections one serving thread has accepted, served until they end
/// or the drain deadline cuts them.
struct Connections {
    app: Arc<LoadedApp>,
    serving: Serving,
    /// Tells every connection that draining began; each holds a receiver
    /// until it ends, so the receivers are the connections still open.
    draining: tokio::sync::watch::Sender<bool>,
}

impl Connections {
    fn new(app: Arc<LoadedApp>, serving: Serving) -> Self {
        Self {
            app,
            serving,
            draining: tokio::sync::watch::Sender::new(false),
        }
    }

    fn open(&self) -> usize {
        self.draining.receiver_count()
    }

    /// Begins draining and waits until every connection has ended.
    async fn drain(&self) {
        self.draining.send_replace(true);
        self.draining.closed().await;
    }

    fn serve(&self, stream: tokio::net::TcpStream, client: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let app = self.app.clone();
        let readiness = self.serving.readiness.clone();
        let metrics = self.serving.metrics.clone();
        // Holds a permit once the connection has had a request.
        let requested = Arc::new(tokio::sync::Notify::new());
        let service = service_fn({
            let requested = requested.clone();
            move |request: hyper::Request<hyper::body::Incoming>| {
                requested.notify_one();
                let app = app.clone();
                let probe = readiness.answer(request.uri().path());
                let metrics = metrics.clone();
                async move {
                    if let Some(probe) = probe {
                        return Ok::<_, Infallible>(probe);
                    }
                    let arrived = std::time::Instant::now();
                    let request = with_absolute_uri(request).map(|body| {
                        DrainOnDrop(Some(body))
                            .map_err(wasmtime_wasi_http::Error::from)
                            .boxed_unsync()
                    });
                    let Some(metrics) = metrics else {
                        return Ok::<_, Infallible>(app.handle(request, client).await);
                    };
                    let route = app.route_of(request.uri().path());
                    let response = app.handle(request, client).await;
                    Ok::<_, Infallible>(metrics.observe(route, arrived, response))
                }
            }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let draining = self.draining.subscribe();
        tokio::spawn(async move {
            if let Err(error) = serve_until_drained(connection, draining, &requested).await {
                tracing::debug!(%client, "connection ended with an error: {error}");
            }
        });
    }
}

/// Serves `connection` to its end; once draining begins, it ends after the
/// request in progress (an idle one at once), and one that has had no
/// request yet first gets `FIRST_REQUEST_GRACE` to send it.
async fn serve_until_drained<S>(
    connection: http1::Connection<TokioIo<tokio::net::TcpStream>, S>,
    mut draining: tokio::sync::watch::Receiver<bool>,
    requested: &tokio::sync::Notify,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => return ended,
        _ = draining.wait_for(|draining| *draining) => {}
    }
    tokio::select! {
        ended = connection.as_mut() => return ended,
        () = requested.notified() => {}
        () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

/// The request with its URI made absolute from the `Host` header, as Spin
/// does: wasi:http hands a component the authority but never the `Host`
/// header (a forbidden header there), so without this a component could not
/// tell which host the client addressed. A request whose `Host` is missing
/// or no valid authority keeps its URI as received.
fn with_absolute_uri<B>(mut request: http::Request<B>) -> http::Request<B> {
    let uri = request.uri();
    if uri.authority().is_some() {
        return request;
    }
    let Some(authority) = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
    else {
        return request;
    };
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(absolute) = http::Uri::from_parts(parts) {
        *request.uri_mut() = absolute;
    }
    request
}

/// A request body that, when dropped before its end (a 404 from the host, a
/// 413 decided from `content-length`, a component that ignores the body),
/// receives the rest in the background. Closing the socket while the client
/// is still sending makes the kernel reset the connection, which can destroy
/// the answer already written; draining also keeps the connection reusable.
struct DrainOnDrop(Option<Incoming>);

impl Body for DrainOnDrop {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take().filter(|body| !body.is_end_stream()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut received = 0;
            let discard = async {
                while let Some(Ok(frame)) = body.frame().await {
                    received += frame.data_ref().map_or(0, Bytes::len);
                    if received > UNREAD_BODY_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(UNREAD_BODY_TIMEOUT, discard).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::with_absolute_uri;

    fn request(uri: &str, host: Option<&[u8]>) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(http::header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn an_origin_form_uri_gets_the_host_as_its_authority() {
        let request = with_absolute_uri(request("/api/chat?x=1", Some(b"chat.example:3000")));
        assert_eq!(request.uri(), "http://chat.example:3000/api/chat?x=1");
        assert_eq!(request.headers()[http::header::HOST], "chat.example:3000");
    }

    #[test]
    fn an_absolute_uri_is_kept() {
        let request = with_absolute_uri(request("http://a.example/x", Some(b"b.example")));
        assert_eq!(request.uri(), "http://a.example/x");
    }

    #[test]
    fn without_a_valid_host_the_uri_stays_as_received() {
        assert_eq!(with_absolute_uri(request("/x", None)).uri(), "/x");
        assert_eq!(
            with_absolute_uri(request("/x", Some(b"bad host/"))).uri(),
            "/x"
        );
    }
}
