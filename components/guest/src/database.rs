//! How components use the database: behind the circuit breaker, under the
//! cold-start retry policy, with the schema current and the write-behind
//! journal replayed first; background work in one attempt that leaves the
//! breaker alone.

use crate::failure::Failure;
use crate::postgres::Db;
use crate::{circuit, journal, log, schema};
use chat_contract::retry::COLD_START_RETRY_POLICY;

/// Runs `work` on a connection to the `db_url` database. Failures the policy
/// retries (and the host has not retried already) get another attempt after
/// its backoff; an unreachable database after that opens the breaker, and
/// while it is open this fails at once with an unreachable error, for the
/// caller's ephemeral fallback.
pub async fn with_database<T>(
    mut work: impl AsyncFnMut(&Db) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let gate = circuit::admit().await?;
    let outcome = COLD_START_RETRY_POLICY
        .run(Failure::retry_code, spin_sdk::time::sleep, async || {
            work(&ready().await?).await
        })
        .await;
    gate.record(outcome.as_ref().is_err_and(Failure::is_unreachable))
        .await;
    outcome
}

/// Like [`with_database`] but a single attempt, for writes whose fallback
/// (the journal) is better than making a streaming reply wait out a backoff.
pub async fn once<T>(work: impl AsyncFnOnce(&Db) -> Result<T, Failure>) -> Result<T, Failure> {
    let gate = circuit::admit().await?;
    let outcome = async { work(&ready().await?).await }.await;
    gate.record(outcome.as_ref().is_err_and(Failure::is_unreachable))
        .await;
    outcome
}

/// For background work, which no user waits for: while the breaker is
/// closed, one attempt on a connection with the schema current. No backoff
/// holds the run, no journal is replayed, and its failures never open the
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

/// A connection with the schema current and the journal written out. Only
/// an unreachable database fails the request here: any other replay failure
/// is the journal's problem, logged, and the entries wait for the next
/// request.
async fn ready() -> Result<Db, Failure> {
    let db = schema::connect_migrated().await?;
    match journal::replay_if_pending(&db).await {
        Err(failure) if failure.is_unreachable() => return Err(failure),
        Err(failure) => log::failure("replaying the journal", &failure),
        Ok(()) => {}
    }
    Ok(db)
}
