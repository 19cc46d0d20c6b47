//! Calling the model-serving endpoint: its settings, the request, and the
//! timeout that bounds every wait on it.

use bytes::Bytes;
use chat_domain::chat::serving::{self, EndpointApi, UpstreamFailure};
use chat_guest::config;
use chat_guest::deadline::within;
use chat_guest::log;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use spin_sdk::http::{Response, send};
use spin_sdk::wasip3::http::types::ErrorCode;
use std::time::Duration;

const SERVING_ENDPOINT_URL: &str = "serving_endpoint_url";
const SERVING_ENDPOINT_ORIGIN: &str = "serving_endpoint_origin";
const SERVING_ENDPOINT_NAME: &str = "serving_endpoint_name";
const SERVING_TOKEN: &str = "serving_token";
const SERVING_TIMEOUT_SECONDS: &str = "serving_timeout_seconds";
const SERVING_ENDPOINT_API: &str = "serving_endpoint_api";

/// How much of an error answer is logged.
const LOGGED_ERROR_BYTES: usize = 1024;

/// The endpoint as configured, with the caller's credentials.
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    authorization: Option<String>,
    /// The longest the endpoint may stay silent.
    pub timeout: Duration,
    /// The shape of the requests it takes.
    pub api: EndpointApi,
}

impl Endpoint {
    /// The configured endpoint, called on behalf of the user when the
    /// gateway passed their token. A missing or invalid setting is logged
    /// and becomes the reply's failure.
    pub async fn configured(user_token: Option<&str>) -> Result<Self, UpstreamFailure> {
        let misconfigured = |problem: &dyn std::fmt::Display| {
            log::failure("POST /api/chat: the model endpoint's settings", problem);
            UpstreamFailure::Misconfigured
        };
        let setting = |name| async move {
            config::variable(name)
                .await
                .map_err(|error| misconfigured(&error))
        };
        let url = serving::endpoint_url(
            setting(SERVING_ENDPOINT_URL).await?.as_deref(),
            setting(SERVING_ENDPOINT_ORIGIN).await?.as_deref(),
            setting(SERVING_ENDPOINT_NAME).await?.as_deref(),
        )
        .map_err(|error| misconfigured(&error))?;
        let app_token = setting(SERVING_TOKEN).await?;
        let timeout = serving::timeout_setting(setting(SERVING_TIMEOUT_SECONDS).await?.as_deref())
            .map_err(|error| misconfigured(&error))?;
        let api = EndpointApi::setting(setting(SERVING_ENDPOINT_API).await?.as_deref())
            .map_err(|error| misconfigured(&error))?;
        Ok(Self {
            url,
            authorization: serving::authorization(user_token, app_token.as_deref()),
            timeout,
            api,
        })
    }

    /// POSTs `body` and waits (at most the timeout) for a 2xx answer's head.
    /// A non-2xx answer is a failure; the start of its body is logged.
    pub async fn post(
        &self,
        body: Vec<u8>,
        accept: &'static str,
    ) -> Result<Response, UpstreamFailure> {
        // The body's size is known: declared, the runtime sends it as is
        // rather than chunked, which servers that read only Content-Length
        // (Python's http.server, say) would take for an empty body.
        let mut request = http::Request::post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len())
            .header(ACCEPT, accept)
            .header(serving::RETURN_TRACE_ID.0, serving::RETURN_TRACE_ID.1);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| {
                log::failure(
                    "POST /api/chat: serving_endpoint_url is not a valid URL",
                    &error,
                );
                UpstreamFailure::Misconfigured
            })?;
        let response = within(self.timeout, send(request))
            .await
            .ok_or(UpstreamFailure::TimedOut)?
            .map_err(|code| self.send_failure(code))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let start = self.read_start(response, LOGGED_ERROR_BYTES).await;
        log::failure(
            &format!("POST /api/chat: the model endpoint answered {status}"),
            &String::from_utf8_lossy(&start.unwrap_or_default()),
        );
        Err(UpstreamFailure::Status(status.as_u16()))
    }

    /// Up to `limit` bytes of the answer's body, each read within the
    /// timeout; the rest is not read.
    pub async fn read_start(
        &self,
        response: Response,
        limit: usize,
    ) -> Result<Vec<u8>, UpstreamFailure> {
        let mut body = response.into_body();
        let mut start = Vec::new();
        while start.len() < limit {
            match within(self.timeout, body.frame()).await {
                None => return Err(UpstreamFailure::TimedOut),
                Some(None) => break,
                Some(Some(Err(_))) => return Err(UpstreamFailure::BrokeOff),
                Some(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        start.extend_from_slice(&data[..data.len().min(limit - start.len())]);
                    }
                }
            }
        }
        Ok(start)
    }

    fn send_failure(&self, code: ErrorCode) -> UpstreamFailure {
        match code {
            ErrorCode::HttpRequestDenied => {
                log::failure(
                    "POST /api/chat: the model endpoint is not in allowed_outbound_hosts",
                    &"set serving_endpoint_origin to the scheme, host and port of serving_endpoint_url",
                );
                UpstreamFailure::NotAllowed
            }
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout => UpstreamFailure::TimedOut,
            other => {
                log::failure("POST /api/chat: calling the model endpoint", &other);
                UpstreamFailure::Unreachable
            }
        }
    }
}
