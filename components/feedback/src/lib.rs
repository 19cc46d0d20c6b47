//! The feedback component: the chat's owner rates the assistant's replies.
//! `PUT /api/feedback` rates one (or changes its rating),
//! `DELETE /api/feedback/:chatId/:messageId` withdraws a rating and
//! `GET /api/feedback/:chatId` lists the chat's ratings.
//!
//! Without the database, a rating (or its withdrawal) of a reply whose
//! record was kept in the key-value store when it was sent is checked
//! against that record, waits in the write-behind journal and goes to MLflow
//! at once; any other is 503, nothing written, and the list is 503.
//!
//! A rating of a traced reply is queued for MLflow in the same statement
//! and delivered by background work ([`mlflow`], `chat_domain::background`):
//! at once after the feedback request that made it (its answer already
//! sent), and then by the runs chat-host makes on a timer at
//! `POST /internal/background-work`, a path no public route reaches (under
//! Spin, the same runs ride on the app's requests).

mod mlflow;
mod retention;

use chat_domain::access::{self, ChatAction};
use chat_domain::background;
use chat_domain::feedback::assessment::Delivery;
use chat_domain::feedback::{self, Rating, Vote, Withdrawn};
use chat_domain::http::routes::{FeedbackHandler, Found, Handler};
use chat_domain::identity::Identity;
use chat_domain::identity::users;
use chat_domain::resilience::journal::ConversationWrite;
use chat_guest::database;
use chat_guest::request::{Request, identify, read_body};
use chat_guest::response::{self, HttpResponse};
use chat_guest::router;
use chat_guest::{Failure, journal, log, store, writes};
use spin_sdk::http::StatusCode;
use spin_sdk::wit_bindgen::spawn;
use uuid::Uuid;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::Feedback(handler) => Some(handler),
        _ => None,
    };
    router::serve(request, own, route).await
}

async fn route(request: Request, found: Found<FeedbackHandler>) -> Result<HttpResponse, Failure> {
    let answer = match found.handler {
        FeedbackHandler::BackgroundWork => return Ok(run_background_work().await),
        FeedbackHandler::Rate => rate(request).await,
        FeedbackHandler::Withdraw => {
            withdraw(&request, found.chat_id()?, found.message_id()?).await
        }
        FeedbackHandler::List => list(&request, found.chat_id()?).await,
    };
    answer.map(|(response, caller)| {
        spawn(async move {
            mlflow::deliver_due(Some(&caller), background::AFTER_REQUEST).await;
        });
        response
    })
}

/// One run of the app's background work: the journal written out, due
/// ratings delivered to MLflow with the app's credentials (or none), and
/// the chats past retention deleted. Says what it did.
async fn run_background_work() -> HttpResponse {
    if let Some(store) = store::open().await {
        let now = store::now_ms().to_string();
        if let Err(error) = store.set(background::LAST_RUN_KEY, now.as_bytes()).await {
            log::failure("background work: noting the run", &format!("{error:?}"));
        }
    }
    // Votes kept in the journal during an outage are written (and queued
    // for MLflow) before the deliveries.
    database::replay_journal_in_background().await;
    let ratings = mlflow::deliver_due(None, background::PER_RUN).await;
    let past_retention = retention::sweep(background::PER_RUN).await;
    response::json(
        StatusCode::OK,
        &BackgroundReport {
            ratings,
            past_retention,
        },
    )
}

/// What one background run did.
#[derive(serde::Serialize)]
struct BackgroundReport {
    #[serde(flatten)]
    ratings: mlflow::RunReport,
    /// Chats deleted because they were inactive past `retention_days`.
    #[serde(rename = "pastRetention")]
    past_retention: u64,
}

/// The body is read and checked in full before the database is touched.
async fn rate(request: Request) -> Result<(HttpResponse, Identity), Failure> {
    let (request, body) = request.into_parts();
    let rating = Rating::from_body(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    users::check_storable(&identity)?;
    let statement = rating.statement(&identity.user_id, &identity.email);
    let stored =
        database::write(async |db| writes::rate(db, &statement, &identity.user_id).await).await;
    match stored {
        Ok(_) => {}
        Err(failure) if failure.is_unreachable() => {
            let change = Change {
                chat_id: rating.chat_id,
                message_id: rating.message_id,
                is_upvoted: Some(rating.is_upvoted),
                comment: rating.comment.clone(),
            };
            without_database(&identity, change, failure).await?;
        }
        Err(failure) => return Err(failure),
    }
    Ok((
        response::json(StatusCode::OK, &Vote::from(rating)),
        identity,
    ))
}

async fn withdraw(
    request: &Request,
    chat_id: Uuid,
    message_id: Uuid,
) -> Result<(HttpResponse, Identity), Failure> {
    let identity = identify(request.headers()).await?;
    users::check_storable(&identity)?;
    let statement =
        feedback::withdraw_statement(chat_id, message_id, &identity.user_id, &identity.email);
    let withdrawn = database::write(async |db| {
        let row = writes::rate(db, &statement, &identity.user_id).await?;
        Ok(feedback::was_withdrawn(&row)?)
    })
    .await;
    let withdrawn = match withdrawn {
        Ok(withdrawn) => withdrawn,
        Err(failure) if failure.is_unreachable() => {
            let change = Change {
                chat_id,
                message_id,
                is_upvoted: None,
                comment: None,
            };
            without_database(&identity, change, failure).await?;
            // Whether there was a rating is not known; there is none now.
            true
        }
        Err(failure) => return Err(failure),
    };
    let response = response::json(
        StatusCode::OK,
        &Withdrawn {
            success: true,
            withdrawn,
        },
    );
    Ok((response, identity))
}

/// A rating or its withdrawal (`is_upvoted: None`).
struct Change {
    chat_id: Uuid,
    message_id: Uuid,
    is_upvoted: Option<bool>,
    comment: Option<String>,
}

/// With the database out of reach (`unreachable`, answered when nothing
/// else can be said): the reply's kept record says whose it is; the change
/// waits in the write-behind journal and goes to MLflow at once.
async fn without_database(
    identity: &Identity,
    change: Change,
    unreachable: Failure,
) -> Result<(), Failure> {
    let record = journal::kept_reply(change.message_id).await;
    let now = store::now_ms();
    if let Err(refusal) =
        feedback::may_rate_without_database(record.as_ref(), change.chat_id, &identity.user_id, now)
    {
        if refusal.status == 503 {
            log::failure(
                "PUT or DELETE /api/feedback (nothing written)",
                &unreachable,
            );
        }
        return Err(refusal.into());
    }
    let record = record.expect("a record allowed the change");
    let vote = ConversationWrite::Vote {
        chat_id: change.chat_id,
        message_id: change.message_id,
        owner: identity.user_id.clone(),
        email: identity.email.clone(),
        is_upvoted: change.is_upvoted,
        comment: change.comment.clone(),
    };
    journal::keep(vote, now).await;
    let delivery = Delivery {
        message_id: change.message_id,
        trace_id: record.trace_id,
        user_email: identity.email.clone(),
        is_upvoted: change.is_upvoted,
        comment: change.comment,
        assessment_id: None,
        revision: 0,
        attempts: 0,
        reply_age: std::time::Duration::from_millis(now.saturating_sub(record.kept_at)),
    };
    spawn(mlflow::deliver_now(delivery, identity.clone()));
    Ok(())
}

async fn list(request: &Request, chat_id: Uuid) -> Result<(HttpResponse, Identity), Failure> {
    let identity = identify(request.headers()).await?;
    let votes = database::read(async |db| {
        let rows = db.query(&feedback::chat_votes_statement(chat_id)).await?;
        let (chat, votes) = feedback::chat_votes(chat_id, &rows)?;
        access::decide(chat.as_ref(), &identity.user_id, ChatAction::Rate)?;
        Ok(votes)
    })
    .await?;
    Ok((response::json(StatusCode::OK, &votes), identity))
}
