//! Calls to the workspace's REST API: JSON answers, bearer or client
//! credentials, HTTPS (rustls with ring) verified against the public web
//! roots. An error says
//! which call failed and what the workspace answered; no credential is ever
//! part of it.

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error answer is quoted.
const QUOTED_ANSWER: usize = 512;

/// The workspace at one origin (`https://<host>`).
pub struct WorkspaceClient {
    origin: String,
    http: reqwest::Client,
}

impl WorkspaceClient {
    pub fn new(origin: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .context("an HTTP client for the workspace")?;
        Ok(Self { origin, http })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `GET {origin}{path}`, with the bearer token if given.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> Result<T> {
        let mut request = self.http.get(format!("{}{path}", self.origin));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        answer(request, path).await
    }

    /// `POST {origin}{path}` with a JSON body and the bearer token.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        bearer: &str,
    ) -> Result<T> {
        let request = self
            .http
            .post(format!("{}{path}", self.origin))
            .bearer_auth(bearer)
            .json(body);
        answer(request, path).await
    }

    /// `POST url` with a form body, authenticated as the OAuth client. The
    /// client's secret goes only to this workspace: a token endpoint on
    /// another origin is refused.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        form: &[(&str, &str)],
        client_id: &str,
        client_secret: &str,
    ) -> Result<T> {
        let path = url
            .strip_prefix(&self.origin)
            .filter(|path| path.starts_with('/'));
        let Some(path) = path else {
            bail!(
                "the workspace names a token endpoint on another origin ({url}); the app's \
                 client secret is sent only to {}",
                self.origin
            );
        };
        let request = self
            .http
            .post(url)
            .basic_auth(client_id, Some(client_secret))
            .form(form);
        answer(request, path).await
    }
}

async fn answer<T: DeserializeOwned>(request: reqwest::RequestBuilder, path: &str) -> Result<T> {
    let response = request
        .send()
        .await
        .with_context(|| format!("calling the workspace's {path}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the workspace's answer to {path}"))?;
    if !status.is_success() {
        let quoted = String::from_utf8_lossy(&body[..body.len().min(QUOTED_ANSWER)]).into_owned();
        bail!("the workspace answered {path} with {status}: {quoted}");
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("the workspace's answer to {path} is not the JSON expected"))
}
