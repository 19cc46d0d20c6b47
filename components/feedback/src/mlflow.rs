//! Delivering the feedback outbox to MLflow's assessments API, in the
//! workspace of the serving endpoint (`serving_endpoint_origin`). The rules
//! (what to call, what an answer means, the backoff) are
//! `chat_domain::assessment`'s; this module makes the calls and records the
//! outcome.
//!
//! Credentials: with `serving_token` set, every due row is delivered with
//! it; without it, a request delivers only its caller's rows, with the
//! caller's `x-forwarded-access-token` (when the gateway passed one), so a
//! failed delivery waits for that user's next feedback request.

use bytes::Bytes;
use chat_domain::assessment::{self, Call, Delivery, MAX_CALLS_PER_DELIVERY, Next};
use chat_domain::identity::Identity;
use chat_domain::serving;
use chat_guest::database::with_database;
use chat_guest::deadline::within;
use chat_guest::{config, log};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::time::Duration;

const SERVING_ENDPOINT_ORIGIN: &str = "serving_endpoint_origin";
const SERVING_TOKEN: &str = "serving_token";
const SERVING_TIMEOUT_SECONDS: &str = "serving_timeout_seconds";
/// The most of an answer that is read.
const ANSWER_BYTES: usize = 256 * 1024;

/// MLflow's workspace and the credentials to call it with.
struct Workspace {
    origin: String,
    authorization: Option<String>,
    timeout: Duration,
}

/// Delivers the due outbox rows this request may deliver (see the module
/// documentation); every outcome is recorded, every failure logged.
pub async fn deliver_due(caller: Identity) {
    let (workspace, only_for) = match workspace(&caller).await {
        Ok(found) => found,
        Err(problem) => {
            log::failure("feedback for MLflow: the workspace's settings", &problem);
            return;
        }
    };
    let claim = assessment::claim_due_statement(only_for.as_deref(), workspace.timeout);
    for _ in 0..assessment::DELIVERIES_PER_REQUEST {
        let claimed = with_database(async |db| match db.query(&claim).await?.first() {
            Some(row) => Ok(Some(Delivery::from_row(row)?)),
            None => Ok(None),
        })
        .await;
        let delivery = match claimed {
            Ok(Some(delivery)) => delivery,
            Ok(None) => return,
            // The outage is logged where it is found; the rows wait for it.
            Err(failure) if failure.is_unreachable() => return,
            Err(failure) => {
                log::failure("feedback for MLflow: claiming a due rating", &failure);
                return;
            }
        };
        let record = match deliver(&workspace, &delivery).await {
            Outcome::Delivered(id) => delivery.delivered_statement(id.as_deref()),
            Outcome::Retry(problem, id) => {
                log::failure("feedback for MLflow: will retry", &problem);
                delivery.retry_statement(&problem, delivery.attempts, id.as_deref())
            }
            Outcome::Refused(problem) => {
                log::failure("feedback for MLflow: refused for good", &problem);
                delivery.refused_statement(&problem)
            }
        };
        if let Err(failure) = with_database(async |db| Ok(db.execute(&record).await?)).await {
            // The lease runs out and the row is delivered again (idempotently).
            log::failure("feedback for MLflow: recording a delivery", &failure);
            return;
        }
    }
}

/// Delivers a rating made while the database is out of reach straight to
/// MLflow; its journaled vote, once replayed, is delivered again through
/// the outbox, which finds and updates this assessment (or makes it, if
/// this failed).
pub async fn deliver_now(delivery: Delivery, caller: Identity) {
    let workspace = match workspace(&caller).await {
        Ok((workspace, _)) => workspace,
        Err(problem) => {
            log::failure("feedback for MLflow: the workspace's settings", &problem);
            return;
        }
    };
    match deliver(&workspace, &delivery).await {
        Outcome::Delivered(_) => {}
        Outcome::Retry(problem, _) | Outcome::Refused(problem) => log::failure(
            "feedback for MLflow (database out of reach; the outbox delivers it later)",
            &problem,
        ),
    }
}

/// The workspace, and whose rows alone may be delivered (`None`: everyone's).
async fn workspace(caller: &Identity) -> Result<(Workspace, Option<String>), String> {
    let origin = config::variable(SERVING_ENDPOINT_ORIGIN)
        .await
        .map_err(|error| error.to_string())?
        .ok_or("serving_endpoint_origin is empty")?;
    let app_token = config::variable(SERVING_TOKEN)
        .await
        .map_err(|error| error.to_string())?;
    let timeout = config::variable(SERVING_TIMEOUT_SECONDS)
        .await
        .map_err(|error| error.to_string())?;
    let timeout = serving::timeout_setting(timeout.as_deref())?;
    let (authorization, only_for) = match app_token.as_deref() {
        Some(token) => (serving::authorization(None, Some(token)), None),
        None => (
            serving::authorization(caller.access_token.as_deref(), None),
            Some(caller.email.clone()),
        ),
    };
    Ok((
        Workspace {
            origin: origin.trim_end_matches('/').to_owned(),
            authorization,
            timeout,
        },
        only_for,
    ))
}

enum Outcome {
    Delivered(Option<String>),
    /// Why, and the assessment's id if it was learned on the way.
    Retry(String, Option<String>),
    Refused(String),
}

async fn deliver(workspace: &Workspace, delivery: &Delivery) -> Outcome {
    let mut call = delivery.first_call();
    for _ in 0..MAX_CALLS_PER_DELIVERY {
        let known_id = call.assessment_id().map(str::to_owned);
        let (status, answer) = match workspace.call(delivery, &call).await {
            Ok(answered) => answered,
            Err(problem) => return Outcome::Retry(problem, known_id),
        };
        match delivery.after_answer(&call, status, &answer) {
            Next::Call(next) => call = next,
            Next::Delivered(id) => return Outcome::Delivered(id),
            Next::Retry(problem) => return Outcome::Retry(problem, known_id),
            Next::Refused(problem) => return Outcome::Refused(problem),
        }
    }
    Outcome::Retry(
        "the assessment kept changing under the delivery".to_owned(),
        None,
    )
}

impl Workspace {
    /// Makes `call` and answers its status and its JSON (null when the
    /// answer is not JSON); `Err` when no answer came.
    async fn call(&self, delivery: &Delivery, call: &Call) -> Result<(u16, Value), String> {
        let (method, path, body) = delivery.request(call);
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        // Requests carry Content-Length, so servers that read only it (not
        // chunked bodies) get the whole body.
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.origin))
            .header(CONTENT_LENGTH, body.len())
            .header(ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| format!("serving_endpoint_origin is not a valid URL: {error}"))?;
        let response = within(self.timeout, spin_sdk::http::send(request))
            .await
            .ok_or_else(|| format!("{method} {path}: no answer within {:?}", self.timeout))?
            .map_err(|code| format!("{method} {path}: {code:?}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut answer = Vec::new();
        while answer.len() < ANSWER_BYTES {
            match within(self.timeout, body.frame()).await {
                None => return Err(format!("{method} {path}: the answer stalled")),
                Some(None) => break,
                Some(Some(Err(error))) => return Err(format!("{method} {path}: {error:?}")),
                Some(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        answer.extend_from_slice(&data);
                    }
                }
            }
        }
        Ok((
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        ))
    }
}
