//! Liveness and readiness, answered by the host itself before routing, so
//! a load balancer or Kubernetes can ask without waking a component.
//!
//! - `GET /.well-known/spin/health`: `200 OK` while the process serves, as
//!   Spin answers it.
//! - `GET /.well-known/chat-host/ready`: `200` while this process takes new
//!   requests, `503` from the moment it begins to drain (SIGTERM or Ctrl-C).
//!   Spin has no such route; under Spin, probe the health route for both.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime_wasi_http::WasiBody;

pub const HEALTH_PATH: &str = "/.well-known/spin/health";
pub const READY_PATH: &str = "/.well-known/chat-host/ready";

/// Whether the process still takes new requests; shared by every serving
/// thread and the metrics listener.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// From now on the process only finishes what it has.
    pub fn begin_draining(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The probe's answer when `path` is one of the probe routes.
    pub fn answer(&self, path: &str) -> Option<http::Response<WasiBody>> {
        match path {
            HEALTH_PATH => Some(plain(http::StatusCode::OK, "OK")),
            READY_PATH if self.is_draining() => Some(plain(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "draining: finishing open requests before shutting down",
            )),
            READY_PATH => Some(plain(http::StatusCode::OK, "ready")),
            _ => None,
        }
    }
}

fn plain(status: http::StatusCode, text: &'static str) -> http::Response<WasiBody> {
    let mut response = http::Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_ok_and_readiness_turns_false_when_draining() {
        let readiness = Readiness::default();
        let status = |path| readiness.answer(path).map(|response| response.status());
        assert_eq!(status(HEALTH_PATH), Some(http::StatusCode::OK));
        assert_eq!(status(READY_PATH), Some(http::StatusCode::OK));
        assert_eq!(status("/api/history"), None);
        readiness.clone().begin_draining();
        assert_eq!(status(HEALTH_PATH), Some(http::StatusCode::OK));
        assert_eq!(
            status(READY_PATH),
            Some(http::StatusCode::SERVICE_UNAVAILABLE)
        );
    }
}
