//! The history component: `GET /api/session`, `GET /api/history`,
//! `DELETE /api/chat/:chatId`, `PATCH /api/chat/:chatId/visibility` and
//! `PATCH /api/chat/:chatId/title`.

use chat_domain::access;
use chat_domain::access::ChatAction;
use chat_domain::database::sql::Statement;
use chat_domain::history::changes::{self, Deleted, Renamed, VisibilityChanged};
use chat_domain::history::{self, Cursor, HistoryPage, HistoryQuery, finish_page};
use chat_domain::http::routes::{Found, Handler, HistoryHandler};
use chat_domain::identity::Identity;
use chat_domain::identity::session_view::SessionView;
use chat_guest::access::authorize;
use chat_guest::database;
use chat_guest::failure::or_when_unreachable;
use chat_guest::request::{Request, identify, read_body};
use chat_guest::response::{self, HttpResponse};
use chat_guest::router;
use chat_guest::{Db, Failure};
use spin_sdk::http::StatusCode;
use spin_sdk::wit_bindgen::spawn;
use uuid::Uuid;

/// The component whose background work (ratings for MLflow) history
/// requests ride along with.
const FEEDBACK: &str = "feedback";

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::History(handler) => Some(handler),
        _ => None,
    };
    router::serve(request, own, route).await
}

async fn route(request: Request, found: Found<HistoryHandler>) -> Result<HttpResponse, Failure> {
    match found.handler {
        HistoryHandler::Session => session(&request).await,
        HistoryHandler::List => history(&request).await,
        HistoryHandler::Delete => delete_chat(&request, found.chat_id()?).await,
        HistoryHandler::SetVisibility => change_visibility(request, found.chat_id()?).await,
        HistoryHandler::Rename => rename(request, found.chat_id()?).await,
    }
}

/// Who the caller is; needs no database.
async fn session(request: &Request) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    Ok(response::json(
        StatusCode::OK,
        &SessionView::from(&identity),
    ))
}

/// The caller's chats, newest first, one page at a time. All input is checked
/// before the database is touched; when the database cannot be reached the
/// answer is 204 (ephemeral mode: the client keeps chatting without history).
async fn history(request: &Request) -> Result<HttpResponse, Failure> {
    let query = HistoryQuery::from_query(request.uri().query().unwrap_or(""))?;
    let identity = identify(request.headers()).await?;
    let page = query.page_statement(&identity)?;
    let outcome = database::read(async |db| read_page(db, &query, &page, &identity).await)
        .await
        .map(|page| response::json(StatusCode::OK, &page));
    // Every page load asks for the history: where no timer runs the
    // background work (Spin), it rides along after this answer.
    spawn(chat_guest::background::ride(FEEDBACK));
    or_when_unreachable(
        outcome,
        "GET /api/history (answering 204, ephemeral mode)",
        response::no_content,
    )
}

async fn read_page(
    db: &Db,
    query: &HistoryQuery,
    page: &Statement,
    identity: &Identity,
) -> Result<HistoryPage, Failure> {
    let rows = db.query(page).await?;
    // Any row proves the cursor is one of the caller's chats; only an empty
    // page needs the (rare) extra lookup.
    if let Some(cursor) = query.cursor.filter(|_| rows.is_empty()) {
        let rows = db
            .query(&cursor.existence_statement(&identity.user_id))
            .await?;
        if !Cursor::is_known(&rows)? {
            return Err(cursor.unknown_error().into());
        }
    }
    let summaries = rows
        .iter()
        .map(history::chat_summary)
        .collect::<Result<Vec<_>, _>>()?;
    let (data, has_more) = finish_page(summaries, query);
    Ok(HistoryPage { data, has_more })
}

/// Deletes one of the caller's chats; its messages and votes go with it (the
/// foreign keys cascade). Anyone else's chat, or none, is 404.
async fn delete_chat(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let delete = changes::delete_statement(chat_id, &identity.user_id);
    write_owned_chat(chat_id, &identity, ChatAction::Delete, &delete).await?;
    Ok(response::json(StatusCode::OK, &Deleted { success: true }))
}

/// Makes one of the caller's chats public or private. The body is read and
/// checked in full before the database is touched.
async fn change_visibility(request: Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let visibility = changes::requested_visibility(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = changes::set_visibility_statement(chat_id, &identity.user_id, visibility);
    write_owned_chat(chat_id, &identity, ChatAction::ChangeVisibility, &update).await?;
    Ok(response::json(
        StatusCode::OK,
        &VisibilityChanged {
            success: true,
            visibility,
        },
    ))
}

/// Gives one of the caller's chats the title they chose; a title generated
/// later leaves it as it is. The body is checked in full first.
async fn rename(request: Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let title = changes::requested_title(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = changes::rename_statement(chat_id, &identity.user_id, &title);
    write_owned_chat(chat_id, &identity, ChatAction::Rename, &update).await?;
    Ok(response::json(
        StatusCode::OK,
        &Renamed {
            success: true,
            title,
        },
    ))
}

/// Runs `write` once the rules allow `action` on the chat. The write repeats
/// the owner condition, so no row changed means a concurrent request deleted
/// the chat since the check: 404, as for a chat that never was.
async fn write_owned_chat(
    chat_id: Uuid,
    identity: &Identity,
    action: ChatAction,
    write: &Statement,
) -> Result<(), Failure> {
    database::write(async |db| {
        authorize(db, chat_id, &identity.user_id, action).await?;
        match db.execute(write).await? {
            0 => Err(access::chat_not_found().into()),
            _ => Ok(()),
        }
    })
    .await
}
