//! `POST /api/chat/:chatId/stop`, and the watch a streaming reply keeps for
//! it (the rules are in `chat_domain::chat::stop`, and for a temporary
//! chat's reply in `chat_domain::chat::temporary`).

use chat_domain::ApiError;
use chat_domain::access::ChatAction;
use chat_domain::chat::stop::{self, STOP_CHECK_INTERVAL, StopRequested};
use chat_domain::chat::temporary;
use chat_guest::access::authorize;
use chat_guest::database;
use chat_guest::request::{Request, identify};
use chat_guest::response::{self, HttpResponse};
use chat_guest::store::{self, Store};
use chat_guest::{Failure, log};
use spin_sdk::http::StatusCode;
use std::cell::{Cell, OnceCell};
use std::time::Instant;
use uuid::Uuid;

/// Signals a stop to the reply streaming in one of the caller's chats,
/// whichever instance streams it. A temporary reply of the caller's is
/// found by its marker, which only the caller's stop can name, so it needs
/// no database. Otherwise whose chat it is must be known first: without the
/// database the answer is 503, never a signal.
pub async fn request(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    let store = store::open().await;
    if !stop_temporary_reply(store.as_ref(), chat_id, &identity.user_id).await? {
        database::read(async |db| {
            authorize(db, chat_id, &identity.user_id, ChatAction::Stop).await
        })
        .await?;
        let store = store.ok_or_else(unavailable)?;
        let signal = stop::signal(store::now_ms());
        let signalled = store.set(&stop::stop_key(chat_id), &signal).await;
        written("writing the stop signal", signalled)?;
    }
    Ok(response::json(
        StatusCode::ACCEPTED,
        &StopRequested { success: true },
    ))
}

/// Asks the caller's temporary reply in the chat to stop, if one streams
/// (its marker is there): answers whether it did.
async fn stop_temporary_reply(
    store: Option<&Store>,
    chat_id: Uuid,
    caller: &str,
) -> Result<bool, Failure> {
    let Some(store) = store else {
        return Ok(false);
    };
    let key = temporary::marker_key(chat_id, caller);
    // A failed read finds no marker: the chat's stored owner decides then.
    let marker = store.get(&key).await.ok().flatten();
    let Some(marker) = marker.as_deref().and_then(temporary::Marker::from_bytes) else {
        return Ok(false);
    };
    let stopped = marker.stopped(store::now_ms()).to_bytes();
    written(
        "marking the temporary reply stopped",
        store.set(&key, &stopped).await,
    )?;
    Ok(true)
}

fn unavailable() -> ApiError {
    ApiError::service_unavailable(
        "The reply cannot be stopped right now: the key-value store is not available.",
    )
}

/// A failed write of the store is logged and answered 503.
fn written(what: &str, outcome: Result<(), store::Error>) -> Result<(), ApiError> {
    outcome.map_err(|error| {
        log::failure(
            &format!("POST /api/chat/:chatId/stop: {what}"),
            &format!("{error:?}"),
        );
        unavailable()
    })
}

/// Looks for a stop of one reply, at most once per [`STOP_CHECK_INTERVAL`].
/// The store is opened at the first look, so a reply shorter than that
/// never touches it.
pub struct StopWatch {
    key: String,
    /// Whether what the key holds stops the reply that began at the time given.
    stops: fn(Option<&[u8]>, u64) -> bool,
    reply_started_ms: u64,
    /// `Some(None)`: the store could not be opened, so nothing can signal a
    /// stop and the watch never sees one.
    store: OnceCell<Option<Store>>,
    next_look: Cell<Instant>,
}

impl StopWatch {
    /// The watch of a stored chat's reply, on the chat's stop signal.
    pub fn for_chat(chat_id: Uuid, reply_started_ms: u64) -> Self {
        Self::new(stop::stop_key(chat_id), stop::stops, reply_started_ms)
    }

    /// A watch on `key`, which `stops` reads.
    pub fn new(key: String, stops: fn(Option<&[u8]>, u64) -> bool, reply_started_ms: u64) -> Self {
        Self {
            key,
            stops,
            reply_started_ms,
            store: OnceCell::new(),
            next_look: Cell::new(Instant::now() + STOP_CHECK_INTERVAL),
        }
    }

    /// How long until the next look is due (zero: now).
    pub fn next_look_in(&self) -> std::time::Duration {
        self.next_look
            .get()
            .saturating_duration_since(Instant::now())
    }

    /// Whether a stop was asked for, looking in the store only when a look
    /// is due (otherwise `false` at once).
    pub async fn stop_requested(&self) -> bool {
        if !self.next_look_in().is_zero() {
            return false;
        }
        self.next_look.set(Instant::now() + STOP_CHECK_INTERVAL);
        if self.store.get().is_none() {
            let opened = store::open().await;
            let _ = self.store.set(opened);
        }
        let Some(Some(store)) = self.store.get() else {
            return false;
        };
        match store.get(&self.key).await {
            Ok(signal) => (self.stops)(signal.as_deref(), self.reply_started_ms),
            // The next look tries again; a stop is late, never wrong.
            Err(_) => false,
        }
    }

    /// Resolves once a stop is asked for (never, without the store).
    pub async fn until_requested(&self) {
        loop {
            spin_sdk::time::sleep(self.next_look_in()).await;
            if self.stop_requested().await {
                return;
            }
        }
    }
}
