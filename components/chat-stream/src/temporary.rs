//! A temporary chat's turn (`"temporary": true` on `POST /api/chat`; the
//! rules are in `chat_domain::chat::temporary`): the model is asked with the
//! turns the client sent and the reply streams as any other, but nothing is
//! written to the database or the journal and no title is asked for. While
//! the reply streams, its marker in the key-value store lets its owner stop
//! it; the reply removes it when it ends.

use crate::stop::StopWatch;
use crate::{Keeping, call_model, stream_reply};
use chat_domain::access;
use chat_domain::chat::context;
use chat_domain::chat::request::ChatRequest;
use chat_domain::chat::temporary;
use chat_domain::identity::Identity;
use chat_guest::response::HttpResponse;
use chat_guest::{Failure, database, log, store};
use futures::channel::oneshot;
use uuid::Uuid;

use crate::upstream::Endpoint;

/// Streams the reply to a temporary chat's new message. A chat id the
/// client chose must not be a stored chat's (409), so `temporary` never
/// reaches anyone's saved conversation; without one the server makes it.
pub async fn chat(identity: Identity, chat: ChatRequest) -> Result<HttpResponse, Failure> {
    let chat_id = match chat.chat_id {
        Some(chat_id) => {
            refuse_stored_chat(chat_id).await?;
            chat_id
        }
        None => Uuid::new_v4(),
    };
    let endpoint = Endpoint::configured(identity.access_token.as_deref()).await;
    // The client's turns are the whole conversation, checked against the
    // context's limits when the body was read.
    let (cleared, on_cleared) = oneshot::channel();
    let _ = cleared.send(context::from_client(&chat.messages));
    let upstream = call_model(endpoint, on_cleared);
    let started_at = store::now_ms();
    let marker = Marker::put(chat_id, &identity.user_id, started_at).await;
    let server_made_chat_id = chat.chat_id.is_none().then_some(chat_id);
    Ok(stream_reply(
        Keeping::Temporary(marker),
        started_at,
        server_made_chat_id,
        upstream,
    ))
}

/// 409 when `chat_id` names a stored chat (anyone's). One read, no retries:
/// with the database out of reach the turn goes on, as it reads and writes
/// no stored chat whatever its id, and its marker is its owner's alone.
async fn refuse_stored_chat(chat_id: Uuid) -> Result<(), Failure> {
    let found = database::read_once(async |db| {
        let rows = db.query(&access::access_statement(chat_id)).await?;
        Ok(access::chat_access(&rows)?)
    })
    .await;
    match found {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(temporary::id_is_stored_chat().into()),
        Err(failure) if failure.is_unreachable() => Ok(()),
        Err(failure) => Err(failure),
    }
}

/// The marker of one temporary reply, in the store while the reply streams.
pub struct Marker {
    key: String,
    started_at: u64,
}

impl Marker {
    /// Puts the marker of `owner`'s reply in chat `chat_id`, begun at
    /// `started_at`. Without the store the reply streams all the same, and
    /// cannot be stopped.
    async fn put(chat_id: Uuid, owner: &str, started_at: u64) -> Self {
        let marker = Self {
            key: temporary::marker_key(chat_id, owner),
            started_at,
        };
        let value = temporary::Marker::new(started_at).to_bytes();
        if let Some(store) = store::open().await
            && let Err(error) = store.set(&marker.key, &value).await
        {
            log::failure(
                "POST /api/chat: keeping a temporary reply's marker (it cannot be stopped)",
                &format!("{error:?}"),
            );
        }
        marker
    }

    /// The watch for its owner's stop.
    pub fn stop_watch(&self) -> StopWatch {
        StopWatch::new(self.key.clone(), temporary::stops, self.started_at)
    }

    /// Removes the marker, unless a later reply of the same chat and owner
    /// put its own there meanwhile.
    pub async fn remove(&self) {
        let Some(store) = store::open().await else {
            return;
        };
        let current = store.get(&self.key).await.ok().flatten();
        let ours = current
            .as_deref()
            .and_then(temporary::Marker::from_bytes)
            .is_some_and(|marker| marker.started_at == self.started_at);
        if ours && let Err(error) = store.delete(&self.key).await {
            log::failure(
                "POST /api/chat: removing a temporary reply's marker (the daily sweep will)",
                &format!("{error:?}"),
            );
        }
    }
}
