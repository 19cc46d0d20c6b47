//! The history component: `GET /api/session`, `GET /api/history`, the
//! owner's changes to a chat (`DELETE /api/chat/:chatId`,
//! `PATCH /api/chat/:chatId/{visibility,title,pinned,archived,folder}`) and
//! their folders (`/api/folders`).

use chat_domain::ApiError;
use chat_domain::access;
use chat_domain::access::ChatAction;
use chat_domain::database::sql::Statement;
use chat_domain::history::changes::{
    self, ArchiveChanged, BulkDelete, BulkDeleted, Deleted, Filed, PinChanged, Renamed,
    VisibilityChanged,
};
use chat_domain::history::folders::{self, FolderDeleted, FolderList};
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
        HistoryHandler::DeleteMany => delete_chats(request).await,
        HistoryHandler::SetPinned => pin(request, found.chat_id()?).await,
        HistoryHandler::SetArchived => archive(request, found.chat_id()?).await,
        HistoryHandler::File => file(request, found.chat_id()?).await,
        HistoryHandler::Folders => list_folders(&request).await,
        HistoryHandler::CreateFolder => create_folder(request).await,
        HistoryHandler::ChangeFolder => change_folder(request, found.folder_id()?).await,
        HistoryHandler::DeleteFolder => delete_folder(&request, found.folder_id()?).await,
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
    // Any row proves the cursor's chat and the folder are the caller's;
    // only an empty page needs the (rare) extra lookups.
    if rows.is_empty() {
        if let Some(cursor) = query.cursor
            && let Some(chat) = cursor.named_chat()
        {
            let rows = db
                .query(&Cursor::existence_statement(chat, &identity.user_id))
                .await?;
            if !Cursor::is_known(&rows)? {
                return Err(cursor.unknown_error().into());
            }
        }
        if let Some(folder) = query.folder {
            let rows = db
                .query(&folders::existence_statement(folder, &identity.user_id))
                .await?;
            if !folders::is_known(&rows)? {
                return Err(folders::not_found().into());
            }
        }
    }
    let summaries = rows
        .iter()
        .map(history::chat_summary)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(finish_page(summaries, query))
}

/// Deletes one of the caller's chats; its messages and votes go with it (the
/// foreign keys cascade). Anyone else's chat, or none, is 404.
async fn delete_chat(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let delete = changes::delete_statement(chat_id, &identity.user_id);
    write_owned_chat(
        chat_id,
        &identity,
        ChatAction::Delete,
        &delete,
        access::chat_not_found,
    )
    .await?;
    Ok(response::json(StatusCode::OK, &Deleted { success: true }))
}

/// Makes one of the caller's chats public or private. The body is read and
/// checked in full before the database is touched.
async fn change_visibility(request: Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let visibility = changes::requested_visibility(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = changes::set_visibility_statement(chat_id, &identity.user_id, visibility);
    write_owned_chat(
        chat_id,
        &identity,
        ChatAction::ChangeVisibility,
        &update,
        access::chat_not_found,
    )
    .await?;
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
    write_owned_chat(
        chat_id,
        &identity,
        ChatAction::Rename,
        &update,
        access::chat_not_found,
    )
    .await?;
    Ok(response::json(
        StatusCode::OK,
        &Renamed {
            success: true,
            title,
        },
    ))
}

/// Deletes several of the caller's chats, or all of them; ids that are
/// not theirs delete nothing. Answers how many went.
async fn delete_chats(request: Request) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let which = BulkDelete::from_body(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let delete = which.statement(&identity.user_id);
    let deleted = database::write(async |db| Ok(db.execute(&delete).await?)).await?;
    Ok(response::json(
        StatusCode::OK,
        &BulkDeleted {
            success: true,
            deleted,
        },
    ))
}

/// Pins or unpins one of the caller's chats (409 past the most pins).
async fn pin(request: Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let pinned = changes::requested_pin(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = changes::pin_statement(chat_id, &identity.user_id, pinned);
    write_owned_chat(
        chat_id,
        &identity,
        ChatAction::Organise,
        &update,
        changes::pin_refused,
    )
    .await?;
    Ok(response::json(
        StatusCode::OK,
        &PinChanged {
            success: true,
            pinned,
        },
    ))
}

/// Archives one of the caller's chats, or restores it from the archive.
async fn archive(request: Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let archived = changes::requested_archive(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = changes::archive_statement(chat_id, &identity.user_id, archived);
    write_owned_chat(
        chat_id,
        &identity,
        ChatAction::Organise,
        &update,
        access::chat_not_found,
    )
    .await?;
    Ok(response::json(
        StatusCode::OK,
        &ArchiveChanged {
            success: true,
            archived,
        },
    ))
}

/// Files one of the caller's chats in one of their folders, or in none.
async fn file(request: Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let folder = changes::requested_folder(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = changes::file_statement(chat_id, &identity.user_id, folder);
    write_owned_chat(
        chat_id,
        &identity,
        ChatAction::Organise,
        &update,
        changes::folder_not_found,
    )
    .await?;
    Ok(response::json(
        StatusCode::OK,
        &Filed {
            success: true,
            folder_id: folder,
        },
    ))
}

/// Runs `write` once the rules allow `action` on the chat. The write repeats
/// the owner condition and may have one of its own (a free place for a pin,
/// a folder of the owner's): when no row changed, the chat either went since
/// the check (asking again answers 404, as for a chat that never was) or the
/// write's own condition refused (`unchanged`).
async fn write_owned_chat(
    chat_id: Uuid,
    identity: &Identity,
    action: ChatAction,
    write: &Statement,
    unchanged: fn() -> ApiError,
) -> Result<(), Failure> {
    database::write(async |db| {
        authorize(db, chat_id, &identity.user_id, action).await?;
        if db.execute(write).await? > 0 {
            return Ok(());
        }
        authorize(db, chat_id, &identity.user_id, action).await?;
        Err(unchanged().into())
    })
    .await
}

/// The caller's folders, in order; like the history, 204 when the database
/// cannot be reached (ephemeral mode).
async fn list_folders(request: &Request) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let list = folders::list_statement(&identity.user_id);
    let outcome = database::read(async |db| {
        let rows = db.query(&list).await?;
        let data = rows
            .iter()
            .map(folders::folder)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FolderList { data })
    })
    .await
    .map(|list| response::json(StatusCode::OK, &list));
    or_when_unreachable(
        outcome,
        "GET /api/folders (answering 204, ephemeral mode)",
        response::no_content,
    )
}

/// A new folder of the caller's, placed last (409 past the most folders).
async fn create_folder(request: Request) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let name = folders::requested_name(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let create = folders::create_statement(&identity.user_id, &name);
    let folder = database::write(async |db| {
        let rows = db.query(&create).await?;
        let row = rows.first().ok_or_else(folders::too_many_folders)?;
        Ok(folders::folder(row)?)
    })
    .await?;
    Ok(response::json(StatusCode::CREATED, &folder))
}

/// Renames or moves one of the caller's folders.
async fn change_folder(request: Request, folder_id: Uuid) -> Result<HttpResponse, Failure> {
    let (request, body) = request.into_parts();
    let change = folders::requested_change(&read_body(&request.headers, body).await?)?;
    let identity = identify(&request.headers).await?;
    let update = folders::change_statement(folder_id, &identity.user_id, &change);
    let folder = database::write(async |db| {
        let rows = db.query(&update).await?;
        let row = rows.first().ok_or_else(folders::not_found)?;
        Ok(folders::folder(row)?)
    })
    .await?;
    Ok(response::json(StatusCode::OK, &folder))
}

/// Deletes one of the caller's folders; its chats go back to the main list.
async fn delete_folder(request: &Request, folder_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let delete = folders::delete_statement(folder_id, &identity.user_id);
    database::write(async |db| match db.execute(&delete).await? {
        0 => Err(folders::not_found().into()),
        _ => Ok(()),
    })
    .await?;
    Ok(response::json(
        StatusCode::OK,
        &FolderDeleted { success: true },
    ))
}
