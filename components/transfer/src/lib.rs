//! The transfer component: one's history out and in (docs/export-format.md).
//! `GET /api/export` streams all of the caller's chats as JSON Lines,
//! `GET /api/chat/:chatId/export` answers one chat as Markdown, and
//! `POST /api/import` takes our export or ChatGPT's data export. The rules
//! and the statements are `chat_domain::transfer`'s.

use bytes::Bytes;
use chat_domain::access::{self, ChatAccess, ChatAction};
use chat_domain::database::timestamp::UtcDateTime;
use chat_domain::http::routes::{Found, Handler, TransferHandler};
use chat_domain::identity::Identity;
use chat_domain::messages::MessageView;
use chat_domain::transfer::export::{self, ChatCursor, ChatMessages, FolderRecord};
use chat_domain::transfer::{self, ChatOutcome, ImportedChat, markdown, store};
use chat_guest::request::{Request, identify, read_body};
use chat_guest::response::{self, EventSender, HttpResponse};
use chat_guest::{Db, Failure, database, log, router};
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use spin_sdk::http::box_body;
use spin_sdk::wit_bindgen::spawn;
use uuid::Uuid;

/// The export's media type: JSON Lines, as most tools name it.
const JSON_LINES: &str = "application/x-ndjson";
const MARKDOWN: &str = "text/markdown; charset=utf-8";

/// One import at a time in an instance: an instance serves many requests at
/// once, and each import holds its file (up to 64 MiB, and as much again
/// unpacked from a ZIP) in the instance's memory, which the runtime bounds.
static IMPORTS: futures::lock::Mutex<()> = futures::lock::Mutex::new(());

#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> HttpResponse {
    let own = |handler| match handler {
        Handler::Transfer(handler) => Some(handler),
        _ => None,
    };
    router::serve(request, own, route).await
}

async fn route(request: Request, found: Found<TransferHandler>) -> Result<HttpResponse, Failure> {
    match found.handler {
        TransferHandler::Export => export_all(&request).await,
        TransferHandler::ExportChat => export_chat(&request, found.chat_id()?).await,
        TransferHandler::Import => import(request).await,
    }
}

fn now() -> UtcDateTime {
    UtcDateTime::from_unix_millis(chat_guest::store::now_ms())
}

/// The caller's folders and chats as JSON Lines, streamed: the folders are
/// read before answering (so a database out of reach is a 503, not a file
/// cut short), then the chats a page at a time, each chat's line sent as
/// soon as it is read, so however many chats there are, the export holds
/// one chat and a page of their summaries. A failure after the answer
/// began breaks the answer off: the client sees the download fail (and a
/// file without its end line is known to be cut short).
async fn export_all(request: &Request) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let exported_at = now();
    let folders = database::read(async |db| {
        let rows = db
            .query(&export::folders_statement(&identity.user_id))
            .await?;
        Ok(rows
            .iter()
            .map(export::folder)
            .collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    let (sender, mut response) = response::streamed(JSON_LINES);
    as_download(&mut response, &export::file_name(exported_at));
    spawn(async move {
        let user = identity.user_id;
        if let Err(failure) = write_export(&sender, &user, exported_at, &folders).await {
            log::failure("GET /api/export (the answer is broken off)", &failure);
            sender.fail();
        }
    });
    Ok(response)
}

/// Marks an answer as a file to save as `name`, never to be cached.
fn as_download(response: &mut HttpResponse, name: &str) {
    let headers = response.headers_mut();
    if let Ok(disposition) = HeaderValue::from_str(&transfer::attachment(name)) {
        headers.insert(CONTENT_DISPOSITION, disposition);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Sends the export's lines: the header, the folders, the chats, the end.
/// A client that leaves ends it early.
async fn write_export(
    sender: &EventSender,
    user: &str,
    exported_at: UtcDateTime,
    folders: &[FolderRecord<'_>],
) -> Result<(), Failure> {
    let framing = std::iter::once(export::header_line(user, exported_at))
        .chain(folders.iter().map(export::folder_line));
    for line in framing {
        if !sender.send_paced(line).await {
            return Ok(());
        }
    }
    let mut cursor: Option<ChatCursor> = None;
    let mut chats = 0;
    loop {
        let page = database::read(async |db| {
            let rows = db
                .query(&export::chats_statement(user, cursor.as_ref()))
                .await?;
            Ok(rows
                .iter()
                .map(export::chat)
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
        let last_page = page.len() < export::CHATS_PER_PAGE as usize;
        for (mut chat, next) in page {
            // Each chat on a connection of its own, given back before its
            // line waits for the client: a slow download holds none.
            let (access, messages) =
                database::read(async |db| read_messages(db, chat.id).await).await?;
            cursor = Some(next);
            // Deleted since the page was read: not exported.
            if access.is_none() {
                continue;
            }
            chat.messages = messages;
            if !sender.send_paced(export::chat_line(&chat)).await {
                return Ok(());
            }
            chats += 1;
        }
        if last_page {
            break;
        }
    }
    sender
        .send_paced(export::end_line(chats, folders.len() as u64))
        .await;
    Ok(())
}

/// Who may read the chat (`None`: no such chat) and all its messages,
/// oldest first.
async fn read_messages(
    db: &Db,
    chat: Uuid,
) -> Result<(Option<ChatAccess>, Vec<MessageView>), Failure> {
    let mut reader = ChatMessages::of(chat);
    while let Some(statement) = reader.next_statement() {
        reader.add_page(&db.query(&statement).await?)?;
    }
    Ok(reader.finish())
}

/// One chat as a Markdown document, for whoever may read its messages (the
/// owner, or anyone when it is public), refused as the messages route
/// refuses (404 unknown, 403 private).
async fn export_chat(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let caller = identity.user_id.as_str();
    let (title, messages) = database::read(async |db| {
        let chat = markdown::chat(&db.query(&markdown::chat_statement(chat_id)).await?)?;
        access::decide(
            chat.as_ref().map(|(access, _)| access),
            caller,
            ChatAction::ReadMessages,
        )?;
        let (access, messages) = read_messages(db, chat_id).await?;
        // Deleted meanwhile: as if it never was.
        access::decide(access.as_ref(), caller, ChatAction::ReadMessages)?;
        Ok((chat.map(|(_, title)| title).unwrap_or_default(), messages))
    })
    .await?;
    let mut document = markdown::heading(&title);
    for message in &messages {
        document.push_str(&markdown::message(message));
    }
    let mut response = Response::new(box_body(Full::new(Bytes::from(document))));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(MARKDOWN));
    as_download(&mut response, &markdown::file_name(&title));
    Ok(response)
}

/// Imports a file into the caller's history: our export or ChatGPT's. A
/// file that cannot be read is refused whole (400, saying where) before
/// anything is written; then its folders, then each chat in a transaction
/// of its own, so a cut connection leaves whole chats only and importing
/// the file again adds what is missing. Answers what came of each chat.
async fn import(request: Request) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let _one_at_a_time = IMPORTS.lock().await;
    let (request, body) = request.into_parts();
    let file = read_body(&request.headers, body).await?;
    let import = transfer::read(&file, &identity.user_id, now())?;
    let mut report = import.report();
    if let Some(folders) = store::folders_statement(&import.folders, &identity.user_id) {
        database::write(async |db| {
            db.execute(&folders).await?;
            Ok(())
        })
        .await?;
    }
    for chat in import.chats() {
        match chat {
            Ok(chat) => {
                let outcome = database::write(async |db| {
                    db.transaction(async |db| write_chat(db, &chat, &identity).await)
                        .await
                })
                .await?;
                report.record(&chat, outcome);
            }
            Err(skipped) => report.skip(skipped),
        }
    }
    Ok(response::json(StatusCode::OK, &report))
}

/// Writes one chat, inside its transaction: the chat, and only if this
/// created it, its messages and votes.
async fn write_chat(
    db: &Db,
    chat: &ImportedChat,
    owner: &Identity,
) -> Result<ChatOutcome, Failure> {
    let rows = db
        .query(&chat.insert_statement(&owner.user_id, &owner.email))
        .await?;
    let row = rows.first().ok_or_else(|| {
        chat_domain::ApiError::internal("Creating an imported chat answered no row.")
    })?;
    let outcome = store::chat_outcome(row)?;
    if outcome == ChatOutcome::Created {
        let rows = [
            chat.messages_statement(&owner.user_id),
            chat.votes_statement(&owner.user_id),
        ];
        for statement in rows.iter().flatten() {
            db.execute(statement).await?;
        }
    }
    Ok(outcome)
}
