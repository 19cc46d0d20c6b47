//! Outbound `wasi:http` for guests, limited to the component's
//! `allowed_outbound_hosts`. A denied request fails with
//! `HTTP-request-denied`; it is never sent. Requests to
//! `http://<component>.spin.internal` (Spin's service chaining) are served
//! in-process by that component.

use chat_manifest::{AllowedHosts, service_chaining_target};
use futures::future::BoxFuture;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, default_send_request};

/// Where a component's requests may go.
pub struct OutboundHttpConfig {
    /// The component, for the log.
    pub component: String,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub chained: Arc<dyn ChainedRequests>,
}

/// Serves a request to another component of the app in-process.
pub trait ChainedRequests: Send + Sync {
    /// The response of `component` to `request`; `None` once the app is
    /// gone.
    fn send(
        &self,
        component: String,
        request: http::Request<WasiBody>,
    ) -> BoxFuture<'static, Option<http::Response<WasiBody>>>;
}

/// One instance's outbound hooks.
pub struct OutboundHttp {
    config: Arc<OutboundHttpConfig>,
}

impl OutboundHttp {
    pub fn new(config: Arc<OutboundHttpConfig>) -> Self {
        Self { config }
    }
}

type BoxedFuture<T> = Box<dyn Future<Output = T> + Send>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: BoxedFuture<Result<(), Error>>,
    ) -> BoxedFuture<Result<(http::Response<WasiBody>, BoxedFuture<Result<(), Error>>), Error>>
    {
        let url = request.uri().to_string();
        if !self.config.allowed_hosts.allows_url(&url) {
            tracing::warn!(
                component = %self.config.component,
                "outbound request to {} denied: not in allowed_outbound_hosts",
                redact_url(&url)
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if let Some(target) = service_chaining_target(&url) {
            let response = self.config.chained.send(target, request);
            return Box::new(async move {
                let response = response.await.ok_or(Error::DestinationUnavailable)?;
                Ok((
                    response,
                    Box::new(async { Ok(()) }) as BoxedFuture<Result<(), Error>>,
                ))
            });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as BoxedFuture<Result<(), Error>>,
            ))
        })
    }
}

/// The URL without its credentials or its query, either of which may carry
/// secrets, for logs.
fn redact_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    chat_contract::redact::url_credentials(without_query).into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn logged_urls_lose_their_credentials_and_query() {
        assert_eq!(
            redact_url("https://user:pw@api.example:8443/invocations?key=k#frag"),
            "https://<redacted>@api.example:8443/invocations"
        );
        assert_eq!(redact_url("http://a.example/x"), "http://a.example/x");
    }
}
