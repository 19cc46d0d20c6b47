//! The feedback component: the chat's owner rates the assistant's replies.
//! `PUT /api/feedback` rates one (or changes its rating),
//! `DELETE /api/feedback/:chatId/:messageId` withdraws a rating and
//! `GET /api/feedback/:chatId` lists the chat's ratings. Without the
//! database nothing is written and the answer is 503: whose chat it is
//! cannot be checked.
//!
//! A rating of a traced reply is queued for MLflow in the same statement;
//! every feedback request then delivers due ratings ([`mlflow`]) after its
//! answer is sent.

mod mlflow;

use chat_domain::access::{self, ChatAction};
use chat_domain::feedback::{self, Rating, Target, Vote, Withdrawn};
use chat_domain::identity::Identity;
use chat_domain::routes::{ApiPath, no_route};
use chat_domain::sql::Statement;
use chat_domain::users;
use chat_guest::Failure;
use chat_guest::database::with_database;
use chat_guest::postgres::{Db, DbRow};
use chat_guest::request::{Request, allow_only, identify, read_body};
use chat_guest::response::{self, HttpResponse};
use spin_sdk::http::StatusCode;
use spin_sdk::wit_bindgen::spawn;
use uuid::Uuid;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    response::serve(request, route).await
}

async fn route(request: Request) -> Result<HttpResponse, Failure> {
    let path = ApiPath::parse(request.uri().path())?;
    allow_only(request.method(), path.method())?;
    let answer = match path {
        ApiPath::Feedback => rate(request).await,
        ApiPath::MessageFeedback(chat_id, message_id) => {
            withdraw(&request, chat_id, message_id).await
        }
        ApiPath::ChatFeedback(chat_id) => list(&request, chat_id).await,
        _ => return Err(no_route(request.uri().path()).into()),
    };
    answer.map(|(response, caller)| {
        spawn(mlflow::deliver_due(caller));
        response
    })
}

/// The body is read and checked in full before the database is touched.
async fn rate(request: Request) -> Result<(HttpResponse, Identity), Failure> {
    let (request, body) = request.into_parts();
    let rating = Rating::from_body(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    users::check_storable(&identity)?;
    let statement = rating.statement(&identity.user_id, &identity.email);
    with_database(async |db| write_if_allowed(db, &statement, &identity.user_id).await).await?;
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
    let withdrawn = with_database(async |db| {
        let row = write_if_allowed(db, &statement, &identity.user_id).await?;
        Ok(feedback::was_withdrawn(&row)?)
    })
    .await?;
    let response = response::json(
        StatusCode::OK,
        &Withdrawn {
            success: true,
            withdrawn,
        },
    );
    Ok((response, identity))
}

async fn list(request: &Request, chat_id: Uuid) -> Result<(HttpResponse, Identity), Failure> {
    let identity = identify(request.headers()).await?;
    let votes = with_database(async |db| {
        let rows = db.query(&feedback::chat_votes_statement(chat_id)).await?;
        let (chat, votes) = feedback::chat_votes(chat_id, &rows)?;
        access::decide(chat.as_ref(), &identity.user_id, ChatAction::Rate)?;
        Ok(votes)
    })
    .await?;
    Ok((response::json(StatusCode::OK, &votes), identity))
}

/// Runs a rating write, which writes only what [`feedback::decide`] allows,
/// and answers its row, or the refusal (nothing was written).
async fn write_if_allowed(db: &Db, statement: &Statement, caller: &str) -> Result<DbRow, Failure> {
    let row = db.query(statement).await?.into_iter().next();
    let target = row.as_ref().map(Target::from_row).transpose()?;
    feedback::decide(target.as_ref(), caller)?;
    Ok(row.expect("a rated message has a row"))
}
