//! The write-behind journal in the key-value store (its rules and layout are
//! in `chat_domain::resilience::journal`): kept when the database is out of reach,
//! replayed in order by the first request that finds it back.

use crate::Failure;
use crate::postgres::Db;
use crate::store::{self, Remembered, Store};
use crate::{log, writes};
use chat_domain::chat::{stop, temporary};
use chat_domain::feedback::{self, ReplyRecord};
use chat_domain::resilience::journal::{self, ConversationWrite, JournalEntry, PENDING_KEY};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// Whether this instance last saw the journal marker set: while it saw none
/// moments ago, requests skip the store (see `chat_domain::resilience::snapshot`).
static PENDING_SEEN: Remembered<bool> = Remembered::nothing_yet();

/// Keeps a write for later, stamped `written_at`; a write that could not be
/// kept either is logged as lost, with its content.
pub async fn keep(write: ConversationWrite, written_at: u64) {
    let entry = JournalEntry::new(written_at, write);
    let kept = match store::open().await {
        Some(store) => {
            // The entry first, then the marker (see chat_domain::resilience::journal).
            let stored = store.set(entry.key(), entry.to_bytes()).await;
            match stored {
                Ok(()) => mark_pending(&store).await,
                error => error,
            }
            .map_err(|error| format!("{error:?}"))
        }
        None => Err("the key-value store is not available".to_owned()),
    };
    if let Err(error) = kept {
        log::failure(
            &format!(
                "LOST a conversation write (neither the database nor the journal took it): {}",
                entry.summary()
            ),
            &error,
        );
    }
}

/// Keeps the record of a reply sent with a trace id (see
/// `chat_domain::feedback::ReplyRecord`), so it can be rated while the
/// database is out of reach.
pub async fn keep_reply(message_id: Uuid, record: &ReplyRecord) {
    if let Some(store) = store::open().await
        && let Err(error) = store
            .set(&feedback::reply_key(message_id), &record.to_bytes())
            .await
    {
        log::failure(
            "keeping a reply's record for feedback",
            &format!("{error:?}"),
        );
    }
}

/// The earliest time (milliseconds) this instance looks again at whether
/// expired records are due to be removed: once an hour at most, so a reply
/// costs nothing more on most instances.
static NEXT_PRUNE_LOOK_MS: AtomicU64 = AtomicU64::new(0);
const PRUNE_LOOK_INTERVAL_MS: u64 = 3_600_000;

/// Removes expired reply records, old stop signals and the markers of
/// temporary replies whose instance died mid-reply from the store, when
/// the last removal (by any instance) is a day old: a listing of the store
/// and a read of each record, so it runs as a task of its own beside a
/// request, never in the way of its answer.
pub async fn prune_expired_records() {
    let now = store::now_ms();
    if now < NEXT_PRUNE_LOOK_MS.load(Ordering::Relaxed) {
        return;
    }
    NEXT_PRUNE_LOOK_MS.store(now + PRUNE_LOOK_INTERVAL_MS, Ordering::Relaxed);
    let Some(store) = store::open().await else {
        return;
    };
    let pruned_at = store.get(feedback::PRUNED_AT_KEY).await.ok().flatten();
    if !feedback::prune_due(pruned_at.as_deref(), now) {
        return;
    }
    // Claimed first, so other instances do not scan too.
    if let Err(error) = store
        .set(feedback::PRUNED_AT_KEY, now.to_string().as_bytes())
        .await
    {
        log::failure("pruning reply records", &format!("{error:?}"));
        return;
    }
    let keys = match store.keys().await {
        Ok(keys) => keys,
        Err(error) => {
            log::failure("listing reply records", &format!("{error:?}"));
            return;
        }
    };
    let mut removed = 0;
    for key in &keys {
        let prunable: fn(Option<&[u8]>, u64) -> bool = if key.starts_with(feedback::REPLY_PREFIX) {
            feedback::prunable
        } else if key.starts_with(stop::STOP_PREFIX) {
            stop::prunable
        } else if key.starts_with(temporary::MARKER_PREFIX) {
            temporary::prunable
        } else {
            continue;
        };
        let record = store.get(key).await.ok().flatten();
        if prunable(record.as_deref(), now) && store.delete(key).await.is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        log::note(&format!(
            "removed {removed} expired reply records, stop signals and temporary markers from the key-value store"
        ));
    }
}

/// The kept record of a reply, if any.
pub async fn kept_reply(message_id: Uuid) -> Option<ReplyRecord> {
    let store = store::open().await?;
    match store.get(&feedback::reply_key(message_id)).await {
        Ok(Some(bytes)) => ReplyRecord::from_bytes(&bytes),
        Ok(None) => None,
        Err(error) => {
            log::failure(
                "reading a reply's record for feedback",
                &format!("{error:?}"),
            );
            None
        }
    }
}

/// Writes every waiting entry to the database, oldest first, deleting each
/// once it is written. Does nothing without a store, when the journal is
/// empty (or was moments ago) or when another instance is replaying it.
/// Fails only when the database is out of reach again (the rest waits for
/// the next request).
pub async fn replay_if_pending(db: &Db) -> Result<(), Failure> {
    let now = store::now_ms();
    if PENDING_SEEN.trusted(now) == Some(false) {
        return Ok(());
    }
    let Some(store) = store::open().await else {
        PENDING_SEEN.remember(false, now);
        return Ok(());
    };
    let pending = matches!(store.exists(PENDING_KEY).await, Ok(true));
    PENDING_SEEN.remember(pending, now);
    if !pending {
        return Ok(());
    }
    let store = &store;
    let locked = db.query(&journal::try_lock_replay_statement()).await?;
    if !journal::replay_lock_taken(&locked)? {
        return Ok(()); // another instance is replaying it
    }
    let replayed = replay_locked(db, store).await;
    if let Err(error) = db.query(&journal::unlock_replay_statement()).await {
        log::failure("releasing the journal's replay lock", &error);
    }
    replayed
}

async fn replay_locked(db: &Db, store: &Store) -> Result<(), Failure> {
    // The marker goes before the listing (see chat_domain::resilience::journal).
    if let Err(error) = store.delete(PENDING_KEY).await {
        log::failure("clearing the journal marker", &format!("{error:?}"));
        return Ok(());
    }
    PENDING_SEEN.remember(false, store::now_ms());
    let keys = match store.keys().await {
        Ok(keys) => journal::replay_order(keys),
        Err(error) => {
            restore_marker(store).await;
            log::failure("listing the journal", &format!("{error:?}"));
            return Ok(());
        }
    };
    let mut written = 0;
    for key in keys {
        let entry = match store.get(&key).await {
            Ok(Some(bytes)) => JournalEntry::from_bytes(&bytes),
            Ok(None) => continue,
            Err(error) => {
                restore_marker(store).await;
                log::failure("reading a journal entry", &format!("{error:?}"));
                return Ok(());
            }
        };
        match entry {
            Ok(entry) => match writes::apply(db, &entry.write, Some(entry.written_at)).await {
                Ok(_) => written += 1,
                Err(failure) if failure.is_unreachable() => {
                    restore_marker(store).await;
                    log::note(&format!(
                        "journal replay paused after {written} writes: the database is out of reach"
                    ));
                    return Err(failure);
                }
                Err(failure) => log::failure(
                    &format!("dropping journal entry {key}, which the database refused"),
                    &failure,
                ),
            },
            Err(corrupt) => log::failure(&format!("dropping journal entry {key}"), &corrupt),
        }
        if let Err(error) = store.delete(&key).await {
            log::failure(
                &format!("deleting journal entry {key}"),
                &format!("{error:?}"),
            );
        }
    }
    if written > 0 {
        log::note(&format!(
            "journal replayed: {written} writes kept during the outage are in the database"
        ));
    }
    Ok(())
}

/// Sets the marker, for every instance, and remembers it for this one.
async fn mark_pending(store: &Store) -> Result<(), store::Error> {
    PENDING_SEEN.remember(true, store::now_ms());
    store.set(PENDING_KEY, b"1").await
}

async fn restore_marker(store: &Store) {
    if let Err(error) = mark_pending(store).await {
        log::failure("restoring the journal marker", &format!("{error:?}"));
    }
}
