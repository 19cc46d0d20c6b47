//! The app's key-value store (`default`, which Spin always provides): the
//! circuit breaker's state, the write-behind journal, and the record of each
//! traced reply, for rating it without the database.
//!
//! Components reach it through [`Store`], which lists the keys only while
//! nothing else in the instance uses the store (see [`Store::keys`]).

use chat_domain::resilience::snapshot::Snapshot;
use std::future::poll_fn;
use std::sync::{Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_contract::stores::LABEL;

pub use spin_sdk::key_value::Error;

/// The store, or `None` (logged) when this component may not open it: then
/// each instance keeps its breaker to itself, and there is no journal.
pub async fn open() -> Option<Store> {
    match spin_sdk::key_value::Store::open(LABEL).await {
        Ok(store) => Some(Store(store)),
        Err(error) => {
            crate::log::failure(
                "opening the key-value store `default` (list it in the component's key_value_stores)",
                &format!("{error:?}"),
            );
            None
        }
    }
}

/// The open store. Reads and writes go side by side, as the SDK's do; a
/// listing of the keys waits for those under way and goes alone.
pub struct Store(spin_sdk::key_value::Store);

impl Store {
    pub async fn get(&self, key: impl AsRef<str>) -> Result<Option<Vec<u8>>, Error> {
        let _turn = Turn::operation().await;
        self.0.get(key).await
    }

    pub async fn set(&self, key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        let _turn = Turn::operation().await;
        self.0.set(key, value).await
    }

    pub async fn delete(&self, key: impl AsRef<str>) -> Result<(), Error> {
        let _turn = Turn::operation().await;
        self.0.delete(key).await
    }

    pub async fn exists(&self, key: impl AsRef<str>) -> Result<bool, Error> {
        let _turn = Turn::operation().await;
        self.0.exists(key).await
    }

    /// Every key in the store, read to the end before any other operation
    /// of this instance reaches the store.
    ///
    /// Spin's local store (SQLite) holds its one connection, for every
    /// component, while it lists the keys, and hands them over a few at a
    /// time as the instance reads them; a get or a set runs on the thread
    /// that runs the instance, waiting for that same connection. So an
    /// operation of this instance started while a listing of more than a
    /// few keys is under way would stop the instance, the listing with it,
    /// for good: every reply it streams stalls, and every component's
    /// store with it.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        let _turn = Turn::listing().await;
        self.0.get_keys().await.collect().await
    }
}

/// Who is using the store in this instance (which may serve many requests
/// at once): operations side by side, or one listing alone.
struct Turns {
    operations: usize,
    listing: bool,
    /// Listings waiting for the operations under way to end: operations
    /// that come meanwhile wait behind them, so a listing always gets its
    /// turn.
    listings_waiting: usize,
    waiting: Vec<Waker>,
}

static TURNS: Mutex<Turns> = Mutex::new(Turns {
    operations: 0,
    listing: false,
    listings_waiting: 0,
    waiting: Vec::new(),
});

fn turns() -> std::sync::MutexGuard<'static, Turns> {
    TURNS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes every task waiting for a turn, to look again.
fn wake_waiting() {
    let waiting = std::mem::take(&mut turns().waiting);
    waiting.into_iter().for_each(Waker::wake);
}

/// A turn at the store, given back when dropped.
enum Turn {
    Operation,
    Listing,
}

impl Turn {
    async fn operation() -> Turn {
        poll_fn(|context| {
            let mut turns = turns();
            if turns.listing || turns.listings_waiting > 0 {
                turns.waiting.push(context.waker().clone());
                return Poll::Pending;
            }
            turns.operations += 1;
            Poll::Ready(Turn::Operation)
        })
        .await
    }

    async fn listing() -> Turn {
        // Counted while it waits, and no longer once it has its turn or is
        // given up (dropped).
        struct Waiting;
        impl Drop for Waiting {
            fn drop(&mut self) {
                turns().listings_waiting -= 1;
                wake_waiting();
            }
        }
        turns().listings_waiting += 1;
        let _waiting = Waiting;
        poll_fn(|context| {
            let mut turns = turns();
            if turns.listing || turns.operations > 0 {
                turns.waiting.push(context.waker().clone());
                return Poll::Pending;
            }
            turns.listing = true;
            Poll::Ready(Turn::Listing)
        })
        .await
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        match self {
            Turn::Operation => turns().operations -= 1,
            Turn::Listing => turns().listing = false,
        }
        wake_waiting();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::Context;

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// One test for every case: the turns are one instance's, shared by
    /// everything the process runs.
    #[test]
    fn a_listing_goes_alone_and_operations_go_side_by_side() {
        let first = pin!(Turn::operation());
        let Poll::Ready(first) = poll(first) else {
            panic!("the store is free")
        };
        let second = pin!(Turn::operation());
        let Poll::Ready(second) = poll(second) else {
            panic!("operations go side by side")
        };

        let mut listing = pin!(Turn::listing());
        assert!(poll(listing.as_mut()).is_pending(), "operations under way");
        let mut late = pin!(Turn::operation());
        assert!(
            poll(late.as_mut()).is_pending(),
            "an operation waits behind a waiting listing"
        );
        drop(first);
        assert!(
            poll(listing.as_mut()).is_pending(),
            "one operation under way"
        );
        drop(second);
        let Poll::Ready(listing) = poll(listing) else {
            panic!("the operations ended")
        };
        assert!(poll(late.as_mut()).is_pending(), "the listing goes alone");
        let mut other_listing = pin!(Turn::listing());
        assert!(
            poll(other_listing.as_mut()).is_pending(),
            "one listing at a time"
        );
        drop(listing);
        let Poll::Ready(other_listing) = poll(other_listing) else {
            panic!("the first listing ended")
        };
        drop(other_listing);
        let Poll::Ready(late) = poll(late) else {
            panic!("no listing left")
        };

        // A listing given up while it waits holds no operation back.
        let mut given_up = Box::pin(Turn::listing());
        assert!(
            poll(given_up.as_mut()).is_pending(),
            "an operation under way"
        );
        drop(given_up);
        let Poll::Ready(after) = poll(pin!(Turn::operation())) else {
            panic!("nothing waits")
        };
        drop((late, after));
        let turns = turns();
        assert_eq!(
            (turns.operations, turns.listing, turns.listings_waiting),
            (0, false, 0)
        );
    }
}
