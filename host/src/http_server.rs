//! Serves the app over HTTP/1.1 with hyper, and drains in-flight requests on
//! shutdown.

use crate::app::LoadedApp;
use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How much of a request body nobody read is still received and discarded,
/// and for how long, so the answer is not lost to a connection reset.
const UNREAD_BODY_LIMIT: usize = 16 << 20;
const UNREAD_BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    app: Arc<LoadedApp>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                let request = request.map(|body| {
                    DrainOnDrop(Some(body))
                        .map_err(wasmtime_wasi_http::Error::from)
                        .boxed_unsync()
                });
                Ok::<_, Infallible>(app.handle(request, client).await)
            }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%client, "connection ended with an error: {error}");
            }
        });
    }
    tracing::info!("shutting down: finishing open requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some requests were still running after {SHUTDOWN_GRACE:?}; stopping anyway"
        );
    }
    Ok(())
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
