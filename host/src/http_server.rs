//! Serves the app over HTTP/1.1 with hyper, and drains in-flight requests on
//! shutdown.

use crate::app::LoadedApp;
use anyhow::Result;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long open connections may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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
                let request = request
                    .map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
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
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests were still running after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}
