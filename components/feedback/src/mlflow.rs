//! Delivering the feedback outbox to MLflow's REST API: at `mlflow_origin`,
//! or in the workspace of the serving endpoint (`serving_endpoint_origin`). The rules (what to
//! call, what an answer means, the backoff) are `chat_domain::feedback::assessment`'s;
//! this module makes the calls, waits a little for traces MLflow has not
//! logged yet, and records each outcome.
//!
//! Credentials, in this order: `serving_token` (for every user's ratings);
//! else, on a user's own request, that user's `x-forwarded-access-token`
//! (for their ratings only); else none: a self-hosted MLflow without
//! authentication takes calls without an `Authorization` header.

use bytes::Bytes;
use chat_domain::background::Budget;
use chat_domain::chat::serving;
use chat_domain::feedback::assessment::{
    self, Call, Delivery, MAX_CALLS_PER_DELIVERY, Next, Problem,
};
use chat_domain::identity::Identity;
use chat_guest::database::for_background_work;
use chat_guest::deadline::within;
use chat_guest::{config, log, store};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

const SERVING_ENDPOINT_ORIGIN: &str = "serving_endpoint_origin";
const MLFLOW_ORIGIN: &str = "mlflow_origin";
const SERVING_TOKEN: &str = "serving_token";
const SERVING_TIMEOUT_SECONDS: &str = "serving_timeout_seconds";
const MLFLOW_TRACE_WAIT_SECONDS: &str = "mlflow_trace_wait_seconds";
/// The most of an answer that is read.
const ANSWER_BYTES: usize = 256 * 1024;
/// Between two looks for a trace MLflow has not logged yet, within a run.
const TRACE_POLL: Duration = Duration::from_secs(1);

/// MLflow's workspace and the credentials to call it with.
struct Workspace {
    origin: String,
    authorization: Option<String>,
    timeout: Duration,
    trace_wait: Duration,
}

/// What one run did, as the background route reports it.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    pub delivered: usize,
    pub retrying: usize,
    pub refused: usize,
    /// Why the run stopped before its budget did, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// Delivers due outbox rows within `budget`, with the credentials the app
/// has, or the rating user's own when `caller` is the user whose request
/// this runs after (see the module documentation). Every outcome is
/// recorded and every failure logged. A problem that the next rows would
/// meet as well (MLflow away, credentials refused) ends the run: the rows
/// wait for the next one.
pub async fn deliver_due(caller: Option<&Identity>, budget: Budget) -> RunReport {
    let mut report = RunReport::default();
    let (workspace, only_for) = match workspace(caller).await {
        Ok(found) => found,
        Err(problem) => {
            log::failure("feedback for MLflow: the workspace's settings", &problem);
            report.stopped = Some(problem);
            return report;
        }
    };
    let began = store::now_ms();
    let deadline = began + budget.time.as_millis() as u64;
    let claim =
        assessment::claim_due_statement(only_for.as_deref(), workspace.timeout, budget.time);
    for _ in 0..budget.items {
        if store::now_ms() >= deadline {
            break;
        }
        let claimed = for_background_work(async |db| match db.query(&claim).await?.first() {
            Some(row) => Ok(Some(Delivery::from_row(row)?)),
            None => Ok(None),
        })
        .await;
        let delivery = match claimed {
            Ok(Some(delivery)) => delivery,
            Ok(None) => break,
            // The database is away (user requests find and log that); the
            // rows wait for a run that finds it back.
            Err(failure) if failure.is_unreachable() => {
                report.stopped = Some("the database is out of reach".to_owned());
                break;
            }
            Err(failure) => {
                log::failure("feedback for MLflow: claiming a due rating", &failure);
                report.stopped = Some("claiming a due rating failed".to_owned());
                break;
            }
        };
        let outcome = deliver(&workspace, &delivery, deadline).await;
        // A row that had failed before goes through: MLflow is back.
        let recovered = delivery.attempts > 0 && matches!(outcome, Outcome::Delivered(_));
        let (record, stop) = match outcome {
            Outcome::Delivered(id) => {
                report.delivered += 1;
                (delivery.delivered_statement(id.as_deref()), None)
            }
            Outcome::Retry(problem, id) => {
                report.retrying += 1;
                if !matches!(problem, Problem::NotYet) {
                    log::failure("feedback for MLflow: will retry", &problem);
                }
                let after = delivery.retry_after(&problem);
                let statement =
                    delivery.retry_statement(&problem.to_string(), after, id.as_deref());
                (
                    statement,
                    problem.stops_the_run().then(|| problem.to_string()),
                )
            }
            Outcome::Refused(problem) => {
                report.refused += 1;
                log::failure("feedback for MLflow: refused for good", &problem);
                (delivery.refused_statement(&problem), None)
            }
        };
        let recorded = for_background_work(async |db| {
            db.execute(&record).await?;
            if recovered {
                db.execute(&assessment::outage_over_statement()).await?;
            }
            Ok(())
        })
        .await;
        if let Err(failure) = recorded {
            // The lease runs out and the row is delivered again (idempotently).
            log::failure("feedback for MLflow: recording a delivery", &failure);
            report.stopped = Some("recording a delivery failed".to_owned());
            break;
        }
        if stop.is_some() {
            report.stopped = stop;
            break;
        }
    }
    report
}

/// Delivers a rating made while the database is out of reach straight to
/// MLflow; its journaled vote, once replayed, is delivered again through
/// the outbox, which finds and updates this assessment (or makes it, if
/// this failed).
pub async fn deliver_now(delivery: Delivery, caller: Identity) {
    let workspace = match workspace(Some(&caller)).await {
        Ok((workspace, _)) => workspace,
        Err(problem) => {
            log::failure("feedback for MLflow: the workspace's settings", &problem);
            return;
        }
    };
    let deadline = store::now_ms() + chat_domain::background::AFTER_REQUEST.time.as_millis() as u64;
    let problem = match deliver(&workspace, &delivery, deadline).await {
        Outcome::Delivered(_) => return,
        Outcome::Retry(problem, _) => problem.to_string(),
        Outcome::Refused(problem) => problem,
    };
    log::failure(
        "feedback for MLflow (database out of reach; the outbox delivers it later)",
        &problem,
    );
}

/// The workspace, and whose rows alone may be delivered (`None`: everyone's).
async fn workspace(caller: Option<&Identity>) -> Result<(Workspace, Option<String>), String> {
    let setting = |name| async move {
        config::variable(name)
            .await
            .map_err(|error| error.to_string())
    };
    let origin = serving::mlflow_origin(
        setting(MLFLOW_ORIGIN).await?.as_deref(),
        setting(SERVING_ENDPOINT_ORIGIN).await?.as_deref(),
    )?;
    let timeout = serving::timeout_setting(setting(SERVING_TIMEOUT_SECONDS).await?.as_deref())?;
    let trace_wait =
        assessment::trace_wait_setting(setting(MLFLOW_TRACE_WAIT_SECONDS).await?.as_deref())?;
    let app_token = setting(SERVING_TOKEN).await?;
    let user_token = caller.and_then(|caller| caller.access_token.as_deref());
    let (authorization, only_for) = match (app_token.as_deref(), user_token) {
        (Some(token), _) => (serving::authorization(None, Some(token)), None),
        (None, Some(token)) => (
            serving::authorization(Some(token), None),
            caller.map(|caller| caller.email.clone()),
        ),
        (None, None) => (None, None),
    };
    Ok((
        Workspace {
            origin,
            authorization,
            timeout,
            trace_wait,
        },
        only_for,
    ))
}

enum Outcome {
    Delivered(Option<String>),
    /// Why, and the assessment's id if it was learned on the way.
    Retry(Problem, Option<String>),
    Refused(String),
}

/// Makes the calls one row needs. A trace MLflow has not logged yet is
/// looked for again every second while the run has time (it usually lands
/// within seconds), so a rating made right after its reply is delivered by
/// the same run.
async fn deliver(workspace: &Workspace, delivery: &Delivery, deadline: u64) -> Outcome {
    let mut call = delivery.first_call();
    let mut calls = 0;
    while calls < MAX_CALLS_PER_DELIVERY {
        calls += 1;
        let known_id = call.assessment_id().map(str::to_owned);
        let (status, answer) = match workspace.call(delivery, &call).await {
            Ok(answered) => answered,
            Err(problem) => return Outcome::Retry(Problem::Outage(problem), known_id),
        };
        match delivery.after_answer(&call, status, answer.as_ref(), workspace.trace_wait) {
            Next::Call(next) => call = next,
            Next::Delivered(id) => return Outcome::Delivered(id),
            Next::Retry(Problem::NotYet)
                if store::now_ms() + TRACE_POLL.as_millis() as u64 <= deadline =>
            {
                spin_sdk::time::sleep(TRACE_POLL).await;
                calls -= 1;
            }
            Next::Retry(problem) => return Outcome::Retry(problem, known_id),
            Next::Refused(problem) => return Outcome::Refused(problem),
        }
    }
    Outcome::Retry(
        Problem::Outage("the assessment kept changing under the delivery".to_owned()),
        None,
    )
}

impl Workspace {
    /// Makes `call` and answers its status and its JSON (`None` when the
    /// answer is not JSON); `Err` when no answer came.
    async fn call(&self, delivery: &Delivery, call: &Call) -> Result<(u16, Option<Value>), String> {
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
            .map_err(|error| format!("MLflow's address is not a valid URL: {error}"))?;
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
        Ok((status, serde_json::from_slice(&answer).ok()))
    }
}
