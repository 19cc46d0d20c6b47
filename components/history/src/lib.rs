//! The history component: `GET /api/session` and `GET /api/history`.

use chat_domain::history::{ChatSummary, HistoryPage, HistoryQuery, finish_page};
use chat_domain::identity::Identity;
use chat_domain::session::SessionView;
use chat_domain::sql::Statement;
use chat_domain::users;
use chat_guest::reply::{self, HttpResponse};
use chat_guest::request::{allow_only, identify, no_route};
use chat_guest::{Db, DbError, DbRow, Failure, schema};
use spin_sdk::http::{Request, StatusCode};

#[spin_sdk::http_service]
async fn handle(request: Request) -> HttpResponse {
    let outcome = route(&request).await;
    reply::finish(&request, outcome)
}

async fn route(request: &Request) -> Result<HttpResponse, Failure> {
    match request.uri().path() {
        "/api/session" => {
            allow_only(request.method(), "GET")?;
            session(request).await
        }
        "/api/history" => {
            allow_only(request.method(), "GET")?;
            history(request).await
        }
        path => Err(no_route(path).into()),
    }
}

/// Who the caller is; needs no database.
async fn session(request: &Request) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    Ok(reply::json(StatusCode::OK, &SessionView::from(&identity)))
}

/// The caller's chats, newest first, one page at a time. All input is checked
/// before the database is touched; when the database cannot be reached the
/// answer is 204 (ephemeral mode: the client keeps chatting without history).
async fn history(request: &Request) -> Result<HttpResponse, Failure> {
    let query = HistoryQuery::from_query(request.uri().query().unwrap_or(""))?;
    let identity = identify(request.headers()).await?;
    let ensure_user = users::ensure_user_statement(&identity)?;
    match load_page(&query, &identity, &ensure_user).await {
        Ok(page) => Ok(reply::json(StatusCode::OK, &page)),
        Err(Failure::Database(error)) if error.is_unreachable() => {
            chat_guest::log::failure("GET /api/history (answering 204, ephemeral mode)", &error);
            Ok(reply::no_content())
        }
        Err(failure) => Err(failure),
    }
}

async fn load_page(
    query: &HistoryQuery,
    identity: &Identity,
    ensure_user: &Statement,
) -> Result<HistoryPage, Failure> {
    let db = Db::connect().await?;
    schema::ensure_schema(&db).await?;
    let rows = db.query(&query.page_statement(&identity.user_id)).await?;
    // Any row proves the cursor is one of the caller's chats; only an empty
    // page needs the (rare) extra lookup.
    if let Some(cursor) = query.cursor.filter(|_| rows.is_empty()) {
        let known = match db
            .query(&cursor.existence_statement(&identity.user_id))
            .await?
            .first()
        {
            Some(row) => row.boolean(0)?,
            None => false,
        };
        if !known {
            return Err(cursor.unknown_error().into());
        }
    }
    let summaries = rows
        .iter()
        .map(chat_summary)
        .collect::<Result<Vec<_>, _>>()?;
    // Recorded only once the request is known to be good, so bad input
    // changes nothing in the database.
    db.execute(ensure_user).await?;
    let (data, has_more) = finish_page(summaries, query);
    Ok(HistoryPage { data, has_more })
}

/// Decodes a row of a page statement: id, title, "createdAt", visibility.
fn chat_summary(row: &DbRow) -> Result<ChatSummary, DbError> {
    Ok(ChatSummary {
        id: row.uuid(0)?,
        title: row.text(1)?,
        created_at: row.timestamp(2)?,
        visibility: row.text(3)?,
    })
}
