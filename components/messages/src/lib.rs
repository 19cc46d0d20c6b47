//! The messages component: `GET /api/messages/:chatId`, a chat's messages
//! oldest first, for its owner or, when the chat is public, for anyone.

use chat_domain::access::ChatAction;
use chat_domain::messages::{self, MessageView, MessagesPage};
use chat_domain::routes::{ApiPath, no_route};
use chat_guest::database::with_database;
use chat_guest::failure::or_when_unreachable;
use chat_guest::reply::{self, HttpResponse};
use chat_guest::request::{Request, allow_only, identify};
use chat_guest::{DbError, DbRow, Failure, access};
use spin_sdk::http::StatusCode;
use uuid::Uuid;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    reply::serve(request, route).await
}

/// The query string is ignored: the route takes no parameters.
async fn route(request: Request) -> Result<HttpResponse, Failure> {
    let path = ApiPath::parse(request.uri().path())?;
    let ApiPath::Messages(chat_id) = path else {
        return Err(no_route(request.uri().path()).into());
    };
    allow_only(request.method(), path.method())?;
    let identity = identify(request.headers()).await?;
    // Without the database nothing is known about the chat, so nothing is
    // shown: the empty mock answer lets the client carry on (ephemeral mode).
    let page = or_when_unreachable(
        load_messages(chat_id, &identity.user_id).await,
        "GET /api/messages (answering source mock)",
        MessagesPage::database_unreachable,
    )?;
    Ok(reply::json(StatusCode::OK, &page))
}

async fn load_messages(chat_id: Uuid, caller: &str) -> Result<MessagesPage, Failure> {
    with_database(async |db| {
        access::authorize(db, chat_id, caller, ChatAction::ReadMessages).await?;
        let messages = db
            .query(&messages::messages_statement(chat_id))
            .await?
            .iter()
            .map(message_view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MessagesPage::live(messages))
    })
    .await
}

/// Decodes a row of the messages statement: id, role, parts, "traceId",
/// "createdAt".
fn message_view(row: &DbRow) -> Result<MessageView, DbError> {
    Ok(MessageView {
        id: row.uuid(0)?,
        role: row.text(1)?,
        parts: row.json_text(2)?,
        trace_id: row.optional_text(3)?,
        created_at: row.timestamp(4)?,
    })
}
