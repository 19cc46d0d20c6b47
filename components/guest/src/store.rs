//! The app's key-value store (`default`, which Spin always provides): the
//! circuit breaker's state, the write-behind journal, and the trace ids of
//! replies that could not be stored yet.

use spin_sdk::key_value::Store;
use std::time::{SystemTime, UNIX_EPOCH};

const LABEL: &str = "default";

/// The store, or `None` (logged) when this component may not open it: then
/// the database is used without breaker or journal.
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
