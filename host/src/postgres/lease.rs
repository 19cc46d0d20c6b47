//! A guest's connection, and the cold-start retry policy applied to each of
//! its statements, inside the host and invisibly to the guest:
//!
//! - a connection lost under a statement (closed while it sat in the pool,
//!   terminated by the server, reset) is replaced at once and the statement
//!   run again: no backoff, not counted as a failed attempt;
//! - when a replacement fails the same way, the policy's attempts and
//!   backoffs apply, and once they are spent the breaker opens and the error
//!   goes to the guest marked as already retried, so it does not retry again;
//! - only statements outside a transaction (or session state) are replayed:
//!   inside one, the work before it died with the connection, so the error
//!   goes to the guest unmarked, and the guest retries its whole unit of work;
//! - a statement the database does not answer within the statement timeout
//!   fails, its connection is dropped, and the breaker opens.

use super::bindings::{Error, ParameterValue, RowSet};
use super::failure::{CheckoutFailure, StatementFailure};
use super::pool::{Checkout, Database};
use super::session::SessionState;
use super::statement::{StartedQuery, convert_row, execute, start_query};
use super::values;
use chat_contract::retry::{COLD_START_RETRY_POLICY, NextStep};
use deadpool_postgres::Object;
use futures::StreamExt;
use std::sync::{Arc, Mutex, MutexGuard};

pub struct Lease {
    database: Arc<Database>,
    held: Mutex<Held>,
}

struct Held {
    /// `None` after a connection was dropped for not answering: the next
    /// statement checks out another.
    client: Option<Arc<Object>>,
    fresh: bool,
    session: SessionState,
}

/// The connection goes back to its pool when the last user of the lease lets
/// go (the guest dropped it, and no statement of it is still under way), after
/// a reset when the guest left session state on it.
impl Drop for Lease {
    fn drop(&mut self) {
        let held = self
            .held
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = held.client.take() {
            std::mem::take(&mut held.session).release(client);
        }
    }
}

impl Lease {
    pub async fn check_out(database: Arc<Database>) -> Result<Self, (CheckoutFailure, bool)> {
        let Checkout { client, fresh } = database.checkout().await?;
        Ok(Self {
            database,
            held: Mutex::new(Held {
                client: Some(Arc::new(client)),
                fresh,
                session: SessionState::default(),
            }),
        })
    }

    /// Starts a query; its rows stream to the guest after the first one.
    pub async fn query(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<StartedQuery, Error> {
        let params = &values::params(params).map_err(Error::BadParameter)?;
        self.run(statement, move |client| {
            start_query(client, statement, params)
        })
        .await
    }

    /// Runs a query to its end (the synchronous `query` of the interface).
    pub async fn query_all(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let params = &values::params(params).map_err(Error::BadParameter)?;
        self.run(statement, move |client| async move {
            let started = start_query(client, statement, params).await?;
            let mut rows: Vec<_> = started.first.into_iter().collect();
            let mut rest = started.rest;
            while let Some(row) = rest.next().await {
                rows.push(convert_row(row)?);
            }
            Ok(RowSet {
                columns: started.columns,
                rows,
            })
        })
        .await
    }

    pub async fn execute(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let params = &values::params(params).map_err(Error::BadParameter)?;
        self.run(statement, move |client| execute(client, statement, params))
            .await
    }

    async fn run<T, Attempt>(
        &self,
        statement: &str,
        attempt_on: impl Fn(Arc<Object>) -> Attempt,
    ) -> Result<T, Error>
    where
        Attempt: Future<Output = Result<T, StatementFailure>>,
    {
        let replayable = {
            let mut held = self.held();
            let clean = !held.session.needs_reset();
            held.session.observe(statement);
            clean
        };
        let timeout = self.database.statement_timeout();
        let mut attempt = 1;
        let mut replacements = 0;
        loop {
            let (client, fresh) = self
                .connection()
                .await
                .map_err(|(failure, retried)| failure.into_wit(retried))?;
            let failure = match tokio::time::timeout(timeout, attempt_on(client)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(_) => StatementFailure::TimedOut(timeout),
            };
            if matches!(failure, StatementFailure::TimedOut(_)) {
                self.detach();
                self.database
                    .trip(&"a statement got no answer within the statement timeout");
                return Err(failure.into_wit(true));
            }
            let code = failure.code().map(str::to_owned);
            let connection_lost = code
                .as_deref()
                .is_some_and(|code| COLD_START_RETRY_POLICY.retries(code));
            if !connection_lost || !replayable {
                return Err(failure.into_wit(false));
            }
            // A connection that had served before (or the first failure of a
            // fresh one) is stale, not a sign of a database in trouble.
            if (!fresh || replacements == 0) && replacements <= self.database.max_connections() {
                replacements += 1;
                tracing::debug!("replacing a database connection that was lost ({failure:?})");
            } else {
                match COLD_START_RETRY_POLICY.next_step(attempt, code.as_deref()) {
                    NextStep::RetryAfter(wait) => {
                        tracing::warn!(
                            "database cold-start retry {attempt}/{} after {}: waiting {wait:?}",
                            COLD_START_RETRY_POLICY.max_attempts,
                            code.as_deref().unwrap_or_default()
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    NextStep::GiveUp => {
                        self.database.trip(&format!(
                            "{} attempts failed with {}",
                            attempt,
                            code.as_deref().unwrap_or_default()
                        ));
                        return Err(failure.into_wit(true));
                    }
                }
            }
            // The lost connection goes back to its pool, which sees it is
            // closed and drops it; the next attempt checks out another.
            self.held().client = None;
        }
    }

    /// The connection statements run on, checked out anew after the last
    /// one was lost or dropped.
    async fn connection(&self) -> Result<(Arc<Object>, bool), (CheckoutFailure, bool)> {
        {
            let held = self.held();
            if let Some(client) = &held.client {
                return Ok((client.clone(), held.fresh));
            }
        }
        let Checkout { client, fresh } = self.database.checkout().await?;
        let client = Arc::new(client);
        let mut held = self.held();
        held.client = Some(client.clone());
        held.fresh = fresh;
        Ok((client, fresh))
    }

    /// Takes a connection that stopped answering out of its pool for good
    /// (dropping it closes its socket).
    fn detach(&self) {
        let client = self.held().client.take();
        if let Some(client) = client.and_then(Arc::into_inner) {
            drop(Object::take(client));
        }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // Nothing panics while holding it, and no await happens under it.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
