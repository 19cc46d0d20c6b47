//! `GET /api/chat/:chatId/stream`: the reply being written in a chat, from
//! what its writer checkpointed (the rules are in `chat_domain::chat::follow`).

use chat_domain::access::{self, ChatAccess, ChatAction};
use chat_domain::chat::follow::{self, FOLLOW_INTERVAL, Follower, Progress, Seen};
use chat_guest::database;
use chat_guest::request::{Request, identify};
use chat_guest::response::{self, EventSender, HttpResponse};
use chat_guest::{Db, Failure, log};
use spin_sdk::wit_bindgen::spawn;
use uuid::Uuid;

/// Streams the reply being written in a chat the caller may read (their
/// own, or a public one), or answers 204 when none is.
pub async fn request(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let seen = database::read(async |db| {
        let found = chat_and_last_message(db, chat_id).await?;
        access::decide(
            found.as_ref().map(|(chat, _)| chat),
            &identity.user_id,
            ChatAction::ReadMessages,
        )?;
        Ok(found.map_or(Seen::Nothing, |(_, seen)| seen))
    })
    .await?;
    let Some(follower) = Follower::start(&seen) else {
        return Ok(response::no_content());
    };
    let (events, response) = response::event_stream();
    spawn(follow_to_the_end(chat_id, follower, seen, events));
    Ok(response)
}

/// Sends what each look finds until the reply ends or the client leaves.
async fn follow_to_the_end(
    chat_id: Uuid,
    mut follower: Follower,
    first: Seen,
    events: EventSender,
) {
    let mut seen = first;
    loop {
        let (frames, finished) = match follower.advance(seen) {
            Progress::Continue(frames) => (frames, false),
            Progress::Finished(frames) => (frames, true),
        };
        for frame in frames {
            if !events.send(frame) {
                return; // the client left
            }
        }
        if finished {
            return;
        }
        spin_sdk::time::sleep(FOLLOW_INTERVAL).await;
        seen = match look(chat_id, follower.reply()).await {
            Ok(seen) => seen,
            Err(failure) => {
                log::failure(
                    "GET /api/chat/:chatId/stream: looking at the reply",
                    &failure,
                );
                events.send(follow::error_event(
                    "The reply cannot be followed right now: the database is out of reach.",
                ));
                return;
            }
        };
    }
}

/// The followed reply, or before one is known the chat's last message.
async fn look(chat_id: Uuid, reply: Option<Uuid>) -> Result<Seen, Failure> {
    database::read_once(async |db| match reply {
        Some(reply_id) => {
            let rows = db
                .query(&follow::reply_statement(chat_id, reply_id))
                .await?;
            Ok(follow::reply(rows.first())?)
        }
        None => {
            let found = chat_and_last_message(db, chat_id).await?;
            Ok(found.map_or(Seen::Nothing, |(_, seen)| seen))
        }
    })
    .await
}

/// Who may read the chat and its last message; `None`: no such chat.
async fn chat_and_last_message(
    db: &Db,
    chat_id: Uuid,
) -> Result<Option<(ChatAccess, Seen)>, Failure> {
    let rows = db.query(&follow::chat_statement(chat_id)).await?;
    Ok(rows
        .first()
        .map(follow::chat_and_last_message)
        .transpose()?)
}
