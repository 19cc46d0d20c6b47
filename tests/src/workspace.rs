//! A stand-in Databricks workspace on loopback, written from Databricks'
//! REST documentation and as strict as the real one for what the app calls:
//!
//! - OIDC discovery (`GET /oidc/.well-known/oauth-authorization-server`)
//!   and the token endpoint (`POST /oidc/v1/token`: a form with
//!   `grant_type=client_credentials` and `scope=all-apis`, the client's id
//!   and secret in HTTP Basic; RFC 6749 errors otherwise), issuing
//!   short-lived tokens;
//! - Lakebase credentials (`POST /api/2.0/postgres/credentials`
//!   `{"endpoint"}` → `{token, expire_time}`), each one set as the database
//!   role's password `VALID UNTIL` its expiry, so PostgreSQL itself refuses
//!   an expired one;
//! - a serving endpoint (`POST /serving-endpoints/{name}/invocations`,
//!   streaming a traced chat-completions reply) and MLflow
//!   (`/api/3.0/mlflow/...`, the tests' MLflow stand-in);
//!
//! every call but discovery refusing a missing, unknown or expired token.
//! It records each secret it hands out, so a test can look for them in logs.

use crate::mlflow::{self, MlflowStandIn};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the workspace knows and how long what it issues lives.
#[derive(Clone)]
pub struct WorkspaceSettings {
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: Duration,
    pub credential_lifetime: Duration,
    /// The Lakebase Autoscaling endpoint credentials are issued for.
    pub lakebase_endpoint: String,
    /// A superuser's URL of the database, to set the role's password.
    pub database_admin_url: String,
    /// The role each credential is the password of (the app's principal).
    pub role: String,
    pub serving_endpoint: String,
}

#[derive(Default)]
struct Issued {
    /// Each token with when it expires.
    tokens: BTreeMap<String, Instant>,
    credentials: Vec<(String, Instant)>,
    /// Calls refused for a missing, unknown or expired token, by path.
    refused: Vec<String>,
}

pub struct StandInWorkspace {
    /// `http://127.0.0.1:<port>`, for `DATABRICKS_HOST`.
    pub origin: String,
    pub mlflow: Arc<MlflowStandIn>,
    issued: Arc<Mutex<Issued>>,
    server: JoinHandle<()>,
}

impl StandInWorkspace {
    pub async fn start(settings: WorkspaceSettings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let issued = Arc::new(Mutex::new(Issued::default()));
        let mlflow = Arc::new(MlflowStandIn::default());
        let workspace = Arc::new(Serving {
            settings,
            origin: origin.clone(),
            issued: issued.clone(),
            mlflow: mlflow.clone(),
        });
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let workspace = workspace.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let workspace = workspace.clone();
                        async move { Ok::<_, std::convert::Infallible>(workspace.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            origin,
            mlflow,
            issued,
            server,
        }
    }

    /// How many tokens and credentials it issued.
    pub fn issued(&self) -> (usize, usize) {
        let issued = self.issued.lock().unwrap();
        (issued.tokens.len(), issued.credentials.len())
    }

    /// When the last of the tokens and credentials issued so far expires.
    pub fn last_expiry(&self) -> Option<Instant> {
        let issued = self.issued.lock().unwrap();
        let credentials = issued.credentials.iter().map(|(_, expiry)| expiry);
        issued.tokens.values().chain(credentials).max().copied()
    }

    /// Every token and credential it issued, to look for in logs.
    pub fn secrets(&self) -> Vec<String> {
        let issued = self.issued.lock().unwrap();
        issued
            .tokens
            .keys()
            .cloned()
            .chain(issued.credentials.iter().map(|(secret, _)| secret.clone()))
            .collect()
    }

    /// The paths of the calls it refused for their token.
    pub fn refused(&self) -> Vec<String> {
        self.issued.lock().unwrap().refused.clone()
    }
}

impl Drop for StandInWorkspace {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Serving {
    settings: WorkspaceSettings,
    origin: String,
    issued: Arc<Mutex<Issued>>,
    mlflow: Arc<MlflowStandIn>,
}

type Answer = Response<Full<Bytes>>;

fn json_answer(status: StatusCode, body: &Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    json_answer(status, &json!({"error_code": code, "message": message}))
}

impl Serving {
    async fn answer(&self, request: hyper::Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let path = parts.uri.path().to_owned();
        let method = parts.method.as_str();
        if (method, path.as_str()) == ("GET", "/oidc/.well-known/oauth-authorization-server") {
            return json_answer(
                StatusCode::OK,
                &json!({
                    "issuer": format!("{}/oidc", self.origin),
                    "authorization_endpoint": format!("{}/oidc/v1/authorize", self.origin),
                    "token_endpoint": format!("{}/oidc/v1/token", self.origin),
                    "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                    "scopes_supported": ["all-apis", "offline_access"],
                }),
            );
        }
        if (method, path.as_str()) == ("POST", "/oidc/v1/token") {
            return self.token(header("authorization"), header("content-type"), &body);
        }
        let bearer = header("authorization")
            .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
        if !self.valid(bearer.as_deref()) {
            self.issued.lock().unwrap().refused.push(path.clone());
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Invalid access token.",
            );
        }
        if path.starts_with(mlflow::PREFIX) {
            let call = mlflow::Call {
                method: method.to_owned(),
                path: path.clone(),
                authorization: header("authorization"),
                declared_length: header("content-length").and_then(|v| v.parse().ok()),
                body_bytes: body.len(),
            };
            return match self.mlflow.answer(call, &body) {
                mlflow::Answer::Json(status, answer) => {
                    json_answer(StatusCode::from_u16(status).unwrap(), &answer)
                }
                _ => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "scripted",
                ),
            };
        }
        match (method, path.as_str()) {
            ("POST", "/api/2.0/postgres/credentials") => self.credential(&body).await,
            ("POST", invocation)
                if invocation
                    == format!(
                        "/serving-endpoints/{}/invocations",
                        self.settings.serving_endpoint
                    ) =>
            {
                self.reply(&body)
            }
            _ => error(StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND", "No API found."),
        }
    }

    fn valid(&self, token: Option<&str>) -> bool {
        let issued = self.issued.lock().unwrap();
        token
            .and_then(|token| issued.tokens.get(token))
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// RFC 6749 §4.4: client credentials, the client authenticated with
    /// HTTP Basic.
    fn token(
        &self,
        authorization: Option<String>,
        content_type: Option<String>,
        body: &[u8],
    ) -> Answer {
        let oauth_error = |status, code: &str| json_answer(status, &json!({"error": code}));
        if content_type.as_deref() != Some("application/x-www-form-urlencoded") {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
        let expected = format!(
            "{}:{}",
            self.settings.client_id, self.settings.client_secret
        );
        let basic = authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| base64_decode(encoded.trim()));
        if basic.as_deref() != Some(expected.as_bytes()) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        let form: BTreeMap<String, String> = String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        if form.get("scope").map(String::as_str) != Some("all-apis") {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
        }
        let token = format!("dsp-{}", uuid::Uuid::new_v4().simple());
        let lifetime = self.settings.token_lifetime;
        self.issued
            .lock()
            .unwrap()
            .tokens
            .insert(token.clone(), Instant::now() + lifetime);
        json_answer(
            StatusCode::OK,
            &json!({"access_token": token, "token_type": "Bearer",
                "expires_in": lifetime.as_secs(), "scope": "all-apis"}),
        )
    }

    /// A Lakebase credential: a new password for the role, valid until its
    /// expiry in PostgreSQL itself.
    async fn credential(&self, body: &[u8]) -> Answer {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if body["endpoint"] != self.settings.lakebase_endpoint.as_str() {
            return error(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                "Endpoint not found.",
            );
        }
        let password = format!("lbc-{}", uuid::Uuid::new_v4().simple());
        let lifetime = self.settings.credential_lifetime;
        let expiry = SystemTime::now() + lifetime;
        let expire_time = chat_domain::database::timestamp::UtcDateTime::from_unix_millis(
            expiry
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        )
        .to_string();
        let (client, connection) =
            tokio_postgres::connect(&self.settings.database_admin_url, tokio_postgres::NoTls)
                .await
                .expect("the workspace reaches its database");
        tokio::spawn(connection);
        // Identifiers and the literal are the workspace's own, not input.
        client
            .batch_execute(&format!(
                "ALTER ROLE \"{}\" WITH PASSWORD '{password}' VALID UNTIL '{expire_time}'",
                self.settings.role
            ))
            .await
            .expect("setting the role's password");
        self.issued
            .lock()
            .unwrap()
            .credentials
            .push((password.clone(), Instant::now() + lifetime));
        json_answer(
            StatusCode::OK,
            &json!({"token": password, "expire_time": expire_time}),
        )
    }

    /// A streamed chat-completions reply with its trace id, logged in MLflow.
    fn reply(&self, body: &[u8]) -> Answer {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(question) = body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .and_then(|message| message["content"].as_str())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "messages is required",
            );
        };
        let trace_id = format!("tr-{}", uuid::Uuid::new_v4().simple());
        self.mlflow.log_trace(&trace_id);
        let chunk = |delta: Value, finish: Value| {
            json!({"object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut last = chunk(json!({}), json!("stop"));
        last["databricks_output"] = json!({"trace": {"info": {"trace_id": trace_id}}});
        let events = format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            chunk(
                json!({"content": format!("You asked: {question}")}),
                Value::Null
            ),
            last
        );
        let mut response = Response::new(Full::new(Bytes::from(events)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        response
    }
}

/// Standard base64 (RFC 4648), as HTTP Basic carries it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}
