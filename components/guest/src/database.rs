//! How components use the database: behind the circuit breaker, under the
//! cold-start retry policy, with the schema current; writes (and the
//! background work) write out the write-behind journal first, reads do
//! not; background work runs in one attempt that leaves the breaker alone.

use crate::failure::Failure;
use crate::postgres::Db;
use crate::{circuit, journal, log, schema};
use chat_contract::retry::COLD_START_RETRY_POLICY;

/// For a route that only reads: runs `work` on a connection with the
/// schema current. Failures the policy retries (and the host has not
/// retried already) get another attempt after its backoff; an unreachable
/// database after that opens the breaker, and while it is open this fails
/// at once with an unreachable error, for the caller's ephemeral fallback.
/// A read never replays the journal: that is the writes' and the
/// background work's job, so a page load costs only its own statements.
pub async fn read<T>(mut work: impl AsyncFnMut(&Db) -> Result<T, Failure>) -> Result<T, Failure> {
    guarded(async || work(&schema::connect_migrated().await?).await).await
}

/// [`read`], in one attempt: for a look repeated on an interval (following
/// a reply), where the next look is the retry.
pub async fn read_once<T>(work: impl AsyncFnOnce(&Db) -> Result<T, Failure>) -> Result<T, Failure> {
    once(async || work(&schema::connect_migrated().await?).await).await
}

/// For a route that writes: [`read`]'s breaker and retries, with the
/// journal written out first, so what waited there lands before this
/// write (a turn kept during an outage comes before the next one).
pub async fn write<T>(mut work: impl AsyncFnMut(&Db) -> Result<T, Failure>) -> Result<T, Failure> {
    guarded(async || work(&with_journal_replayed().await?).await).await
}

/// [`write`] in one attempt, for writes whose fallback (the journal) is
/// better than making a streaming reply wait out a backoff.
pub async fn write_once<T>(
    work: impl AsyncFnOnce(&Db) -> Result<T, Failure>,
) -> Result<T, Failure> {
    once(async || work(&with_journal_replayed().await?).await).await
}

/// Runs `attempt` behind the breaker under the cold-start retry policy.
async fn guarded<T>(mut attempt: impl AsyncFnMut() -> Result<T, Failure>) -> Result<T, Failure> {
    let gate = circuit::admit().await?;
    let outcome = COLD_START_RETRY_POLICY
        .run(Failure::retry_code, spin_sdk::time::sleep, async || {
            attempt().await
        })
        .await;
    gate.record(outcome.as_ref().is_err_and(Failure::is_unreachable))
        .await;
    outcome
}

/// Runs `attempt` once behind the breaker.
async fn once<T>(attempt: impl AsyncFnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    let gate = circuit::admit().await?;
    let outcome = attempt().await;
    gate.record(outcome.as_ref().is_err_and(Failure::is_unreachable))
        .await;
    outcome
}

/// For background work, which no user waits for: while the breaker is
/// closed, one attempt on a connection with the schema current. No backoff
/// holds the run, the journal is replayed only by the run's own step for it
/// ([`replay_journal_in_background`]), and its failures never open the
/// breaker, so a database that blinks during background work sends no
/// user request to ephemeral mode; the work waits for the next run.
pub async fn for_background_work<T>(
    work: impl AsyncFnOnce(&Db) -> Result<T, Failure>,
) -> Result<T, Failure> {
    if !circuit::is_closed().await {
        let skipped = crate::DbError::Skipped {
            for_about: std::time::Duration::ZERO,
        };
        return Err(skipped.into());
    }
    work(&schema::connect_migrated().await?).await
}

/// The background work's share of the journal: written out on the
/// background-work mechanism (chat-host's timer, or a ride on Spin), so a
/// journal kept during an outage reaches the database once it is back even
/// when no one writes. Like all background work, it waits while the
/// breaker is not closed (a request's read closes it once the database
/// answers); a failure is logged and the entries wait for the next run or
/// write.
pub async fn replay_journal_in_background() {
    // Unreachable is the outage itself (or the breaker's skip): nothing to
    // report until the database is back.
    if let Err(failure) = for_background_work(journal::replay_if_pending).await
        && !failure.is_unreachable()
    {
        log::failure("background work: replaying the journal", &failure);
    }
}

/// A connection with the schema current and the journal written out. Only
/// an unreachable database fails the request here: any other replay failure
/// is the journal's problem, logged, and the entries wait for the next
/// write or background run.
async fn with_journal_replayed() -> Result<Db, Failure> {
    let db = schema::connect_migrated().await?;
    match journal::replay_if_pending(&db).await {
        Err(failure) if failure.is_unreachable() => return Err(failure),
        Err(failure) => log::failure("replaying the journal", &failure),
        Ok(()) => {}
    }
    Ok(db)
}
