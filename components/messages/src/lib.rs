//! The messages component: `GET /api/messages/:chatId`, a page of a chat's
//! messages oldest first, for its owner or, when the chat is public, for
//! anyone.

use chat_domain::access::{self, ChatAction};
use chat_domain::http::routes::{Found, Handler, MessagesHandler};
use chat_domain::messages::{self, MessagesPage, MessagesQuery};
use chat_guest::Failure;
use chat_guest::database;
use chat_guest::failure::or_when_unreachable;
use chat_guest::request::{Request, identify};
use chat_guest::response::{self, HttpResponse};
use chat_guest::router;
use spin_sdk::http::StatusCode;
use uuid::Uuid;

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::Messages(handler) => Some(handler),
        _ => None,
    };
    router::serve(request, own, page).await
}

async fn page(request: Request, found: Found<MessagesHandler>) -> Result<HttpResponse, Failure> {
    let MessagesHandler::Page = found.handler;
    let chat_id = found.chat_id()?;
    let query = MessagesQuery::from_query(request.uri().query().unwrap_or_default())?;
    let identity = identify(request.headers()).await?;
    // Without the database nothing is known about the chat, so nothing is
    // shown: the empty mock answer lets the client carry on (ephemeral mode).
    let page = or_when_unreachable(
        load_messages(chat_id, &query, &identity.user_id).await,
        "GET /api/messages (answering source mock)",
        MessagesPage::database_unreachable,
    )?;
    Ok(response::json(StatusCode::OK, &page))
}

async fn load_messages(
    chat_id: Uuid,
    query: &MessagesQuery,
    caller: &str,
) -> Result<MessagesPage, Failure> {
    database::read(async |db| {
        let rows = db.query(&query.chat_page_statement(chat_id)).await?;
        let (chat, messages) = messages::chat_page(&rows)?;
        access::decide(chat.as_ref(), caller, ChatAction::ReadMessages)?;
        // Any message proves the cursor is a message of this chat; only an
        // empty page needs the (rare) extra lookup.
        if let Some(check) = query
            .cursor_statement(chat_id)
            .filter(|_| messages.is_empty())
        {
            if !MessagesQuery::cursor_is_known(&db.query(&check).await?)? {
                return Err(MessagesQuery::unknown_cursor_error().into());
            }
        }
        let (data, has_more) = messages::finish_page(messages, query);
        Ok(MessagesPage::live(data, has_more))
    })
    .await
}
