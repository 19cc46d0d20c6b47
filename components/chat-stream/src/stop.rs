//! `POST /api/chat/:chatId/stop`, and the watch a streaming reply keeps for
//! it (the rules are in `chat_domain::chat::stop`).

use chat_domain::ApiError;
use chat_domain::access::ChatAction;
use chat_domain::chat::stop::{self, STOP_CHECK_INTERVAL, StopRequested};
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
/// whichever instance streams it. Whose chat it is must be known first:
/// without the database the answer is 503, never a signal.
pub async fn request(request: &Request, chat_id: Uuid) -> Result<HttpResponse, Failure> {
    let identity = identify(request.headers()).await?;
    database::read(async |db| authorize(db, chat_id, &identity.user_id, ChatAction::Stop).await)
        .await?;
    let unavailable = || {
        ApiError::service_unavailable(
            "The reply cannot be stopped right now: the key-value store is not available.",
        )
    };
    let store = store::open().await.ok_or_else(unavailable)?;
    let signalled = store
        .set(&stop::stop_key(chat_id), &stop::signal(store::now_ms()))
        .await;
    if let Err(error) = signalled {
        log::failure(
            "POST /api/chat/:chatId/stop: writing the stop signal",
            &format!("{error:?}"),
        );
        return Err(unavailable().into());
    }
    Ok(response::json(
        StatusCode::ACCEPTED,
        &StopRequested { success: true },
    ))
}

/// Looks for a stop of one reply, at most once per [`STOP_CHECK_INTERVAL`].
/// The store is opened at the first look, so a reply shorter than that
/// never touches it.
pub struct StopWatch {
    key: String,
    reply_started_ms: u64,
    /// `Some(None)`: the store could not be opened, so nothing can signal a
    /// stop and the watch never sees one.
    store: OnceCell<Option<Store>>,
    next_look: Cell<Instant>,
}

impl StopWatch {
    pub fn new(chat_id: Uuid, reply_started_ms: u64) -> Self {
        Self {
            key: stop::stop_key(chat_id),
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
            Ok(signal) => stop::stops(signal.as_deref(), self.reply_started_ms),
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
