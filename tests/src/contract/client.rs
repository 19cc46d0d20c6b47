//! An HTTP client for the contract suite that checks every response it
//! receives against `openapi.yaml` before handing it to the test.

use super::openapi::{ApiDescription, Exchange};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The gateway's identity headers.
pub const EMAIL_HEADER: &str = "x-forwarded-email";
pub const USER_HEADER: &str = "x-forwarded-user";
pub const NAME_HEADER: &str = "x-forwarded-preferred-username";

/// Who a request says it comes from, as the gateway would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No identity headers at all.
    Anonymous,
    /// `x-forwarded-email` (the user id), `x-forwarded-user` and a name, as
    /// the gateway sends them for a signed-in user.
    User(String),
}

/// The description, parsed and compiled once per test binary.
pub fn description() -> &'static ApiDescription {
    static DESCRIPTION: OnceLock<ApiDescription> = OnceLock::new();
    DESCRIPTION.get_or_init(ApiDescription::load)
}

/// Sends requests to one base URL and checks every answer.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: Arc<str>,
}

/// A response that matched the description.
#[derive(Debug, Clone)]
pub struct Reply {
    pub method: String,
    pub path: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiClient {
    pub fn new(base_url: &str) -> Self {
        // Generous: a host may spend its database retry budget first.
        Self::with_timeout(base_url, Duration::from_secs(90))
    }

    pub fn with_timeout(base_url: &str, timeout: Duration) -> Self {
        Self::built(base_url, reqwest::Client::builder().timeout(timeout))
    }

    /// Like [`with_timeout`](Self::with_timeout), but every request on a
    /// connection of its own: for requests a runtime may answer by closing
    /// the connection, so they cannot cost a later request its answer.
    pub fn one_connection_per_request(base_url: &str, timeout: Duration) -> Self {
        Self::built(
            base_url,
            reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(0),
        )
    }

    fn built(base_url: &str, builder: reqwest::ClientBuilder) -> Self {
        Self {
            http: builder.build().expect("an HTTP client"),
            base_url: base_url.trim_end_matches('/').into(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A request to `path_and_query` (already encoded as it should be sent).
    pub fn request(&self, method: Method, path_and_query: &str) -> ApiRequest {
        ApiRequest {
            client: self.clone(),
            builder: self
                .http
                .request(method, format!("{}{path_and_query}", self.base_url)),
        }
    }

    pub fn get(&self, path_and_query: &str) -> ApiRequest {
        self.request(Method::GET, path_and_query)
    }

    pub fn delete(&self, path_and_query: &str) -> ApiRequest {
        self.request(Method::DELETE, path_and_query)
    }

    pub fn patch(&self, path_and_query: &str) -> ApiRequest {
        self.request(Method::PATCH, path_and_query)
    }

    pub fn post(&self, path_and_query: &str) -> ApiRequest {
        self.request(Method::POST, path_and_query)
    }

    pub fn put(&self, path_and_query: &str) -> ApiRequest {
        self.request(Method::PUT, path_and_query)
    }

    /// Sends a built request; `Err` carries a transport failure or an answer
    /// that does not match the description (the caller decides how to fail).
    pub async fn try_execute(&self, request: reqwest::Request) -> Result<Reply, String> {
        let exchange = self.exchange(request).await?;
        description().check(&exchange).map_err(|violation| {
            format!(
                "{} {} answered {}, which does not match openapi.yaml: {violation}\n  body: {}",
                exchange.method,
                exchange.path,
                exchange.status,
                String::from_utf8_lossy(&exchange.body[..exchange.body.len().min(600)])
            )
        })?;
        Ok(Reply {
            method: exchange.method,
            path: exchange.path,
            status: StatusCode::from_u16(exchange.status).expect("a status reqwest parsed"),
            headers: exchange.headers,
            body: exchange.body,
        })
    }

    /// Sends a built request and collects the whole answer, unchecked;
    /// `Err` is a transport failure.
    pub async fn exchange(&self, request: reqwest::Request) -> Result<Exchange, String> {
        let method = request.method().to_string();
        let path = request.url().path().to_owned();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|error| format!("{method} {path}: no answer: {error:?}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("{method} {path}: the body broke off: {error:?}"))?;
        Ok(Exchange {
            method,
            path,
            status,
            headers,
            body,
        })
    }
}

/// A request being built; [`send`](Self::send) checks the answer.
pub struct ApiRequest {
    client: ApiClient,
    builder: reqwest::RequestBuilder,
}

impl ApiRequest {
    pub fn caller(mut self, caller: &Caller) -> Self {
        if let Caller::User(email) = caller {
            let name = email.split('@').next().unwrap_or(email);
            self.builder = self
                .builder
                .header(EMAIL_HEADER, email.as_str())
                .header(USER_HEADER, format!("id-{email}"))
                .header(NAME_HEADER, name);
        }
        self
    }

    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<[u8]>) -> Self {
        let name = HeaderName::from_bytes(name.as_ref().as_bytes()).expect("a header name");
        let value = HeaderValue::from_bytes(value.as_ref()).expect("a header value");
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.builder = self.builder.bearer_auth(token);
        self
    }

    /// `value` as an `application/json` body.
    pub fn json(mut self, value: &Value) -> Self {
        self.builder = self.builder.json(value);
        self
    }

    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.body(body);
        self
    }

    /// Sends the request and panics unless the answer matches the description.
    pub async fn send(self) -> Reply {
        let request = self.builder.build().expect("a well-formed request");
        self.client
            .try_execute(request)
            .await
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// The request as it would be sent, for callers that send it themselves.
    pub fn build(self) -> reqwest::Request {
        self.builder.build().expect("a well-formed request")
    }
}

impl Reply {
    /// The body as JSON (the description already said it must be).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{} {} answered {} with a body that is not JSON ({error}): {:?}",
                self.method,
                self.path,
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Panics with the request and body unless the status is `expected`.
    #[track_caller]
    pub fn expect_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "{} {}: expected {expected}, got {} with {}",
            self.method,
            self.path,
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(600)])
        );
        self
    }

    /// Panics unless this is a 405 naming `allowed` in `Allow`.
    #[track_caller]
    pub fn expect_only_allowed(&self, allowed: &str) {
        self.expect_status(405);
        assert_eq!(
            self.header_text("allow"),
            Some(allowed),
            "{} {}",
            self.method,
            self.path
        );
    }

    pub fn header_text(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}
