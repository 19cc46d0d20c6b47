//! The app's key-value store (`default`, which Spin always provides): the
//! circuit breaker's state, the write-behind journal, and the record of each
//! traced reply, for rating it without the database.

use chat_domain::resilience::snapshot::Snapshot;
use spin_sdk::key_value::Store;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_contract::stores::LABEL;

/// The store, or `None` (logged) when this component may not open it: then
/// each instance keeps its breaker to itself, and there is no journal.
pub async fn open() -> Option<Store> {
    match Store::open(LABEL).await {
        Ok(store) => Some(store),
        Err(error) => {
            crate::log::failure(
                "opening the key-value store `default` (list it in the component's key_value_stores)",
                &format!("{error:?}"),
            );
            None
        }
    }
}

/// Milliseconds since the Unix epoch, the clock the stored state uses.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// What this instance last read from (or wrote to) the store about one
/// piece of shared state, so most requests need not open the store at all
/// (the rules are in `chat_domain::resilience::snapshot`). Request-independent by
/// design, like the cached variables.
pub struct Remembered<T>(Mutex<Option<Snapshot<T>>>);

impl<T: Copy> Remembered<T> {
    pub const fn nothing_yet() -> Self {
        Self(Mutex::new(None))
    }

    /// The value while it may be trusted at `now`.
    pub fn trusted(&self, now: u64) -> Option<T> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .and_then(|snapshot| snapshot.trusted(now))
    }

    pub fn remember(&self, value: T, now: u64) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Snapshot::taken(value, now));
    }
}
