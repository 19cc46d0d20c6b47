//! The cold-start retry policy every database path applies: Lakebase scales to
//! zero and closes idle connections, so the first statement after a pause may
//! meet a connection the server has just shut down. Such failures are retried
//! with an exponential backoff; everything else (bad SQL, a missing table, a
//! constraint) fails at once, because retrying it would only hide a bug.
//!
//! Failures are matched by code (SQLSTATE, or the synthetic codes of a pooling
//! host), never by message text.

use crate::sqlstate;
use std::time::Duration;

/// Which failures are retried, how often, and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Codes worth another attempt: the server went away, not the statement.
    pub retry_on: &'static [&'static str],
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The wait before the second attempt; each later wait doubles it.
    pub initial_backoff_seconds: u64,
}

/// The one policy of the product: that of the Node.js recipe the app began
/// as (README; its `lakebaseColdStartRetryPolicy`), plus the
/// connection-exception codes that mean the same thing.
pub const COLD_START_RETRY_POLICY: RetryPolicy = RetryPolicy {
    retry_on: &[
        "57P01",                    // admin_shutdown: the server closed the connection
        "57P02",                    // crash_shutdown
        "57P03",                    // cannot_connect_now: still starting up
        "08000",                    // connection_exception
        "08003",                    // connection_does_not_exist
        "08006",                    // connection_failure
        sqlstate::CONNECTION_RESET, // synthetic: the socket was reset or closed
        sqlstate::POOL_CLOSED,      // synthetic: the pool was closed mid-request
    ],
    max_attempts: 3,
    initial_backoff_seconds: 5,
};

/// The extras entry (`db-error.extras` of `spin:postgres`) with which a host
/// that applies this policy itself marks an error it has already retried, so
/// that a component never retries it a second time (3 × 3 attempts).
pub const RETRIED_BY_HOST: &str = "retried-by-host";

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Give up and report the failure.
    GiveUp,
}

impl RetryPolicy {
    /// Whether a failure with this code is worth another attempt.
    pub fn retries(&self, code: &str) -> bool {
        self.retry_on.contains(&code)
    }

    /// The wait after failed attempt number `attempt` (1-based): 5 s, 10 s,
    /// 20 s, …
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        Duration::from_secs(self.initial_backoff_seconds.saturating_mul(1 << doublings))
    }

    /// After attempt number `attempt` (1-based) failed with `code`.
    pub fn next_step(&self, attempt: u32, code: Option<&str>) -> NextStep {
        match code {
            Some(code) if self.retries(code) && attempt < self.max_attempts => {
                NextStep::RetryAfter(self.backoff_after(attempt))
            }
            _ => NextStep::GiveUp,
        }
    }

    /// Runs `attempt` until it succeeds, fails with a code the policy does
    /// not retry, or the attempts are spent; the last error is returned.
    /// `sleep` is how the caller's runtime waits (a host's timer, a guest's
    /// clock), so the rule itself stays free of any runtime.
    pub async fn run<T, E, Sleep>(
        &self,
        code_of: impl Fn(&E) -> Option<&str>,
        mut sleep: impl FnMut(Duration) -> Sleep,
        mut attempt: impl AsyncFnMut() -> Result<T, E>,
    ) -> Result<T, E>
    where
        Sleep: Future<Output = ()>,
    {
        let mut number = 1;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match self.next_step(number, code_of(&error)) {
                NextStep::RetryAfter(wait) => sleep(wait).await,
                NextStep::GiveUp => return Err(error),
            }
            number += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Drives a future that never really waits (the fake sleep is instant).
    fn run_now<T>(future: impl Future<Output = T>) -> T {
        let mut future = pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the future waited for something"),
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    struct PgFailure {
        code: &'static str,
    }

    /// Runs the policy over a scripted query; answers the result, the
    /// number of calls and the waits.
    fn retried(
        script: impl Fn(u32) -> Result<&'static str, PgFailure>,
    ) -> (Result<&'static str, PgFailure>, u32, Vec<Duration>) {
        let calls = Cell::new(0);
        let waits = RefCell::new(Vec::new());
        let result = run_now(COLD_START_RETRY_POLICY.run(
            |failure: &PgFailure| Some(failure.code),
            |wait| {
                waits.borrow_mut().push(wait);
                async {}
            },
            async || {
                calls.set(calls.get() + 1);
                script(calls.get())
            },
        ));
        (result, calls.get(), waits.into_inner())
    }

    #[test]
    fn the_policy_is_the_seeds() {
        let policy = COLD_START_RETRY_POLICY;
        for code in ["57P01", "57P03", "ECONNRESET", "POOL_CLOSED"] {
            assert!(policy.retries(code), "{code}");
        }
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.initial_backoff_seconds, 5);
    }

    #[test]
    fn admin_shutdown_then_success_takes_two_calls() {
        let (result, calls, waits) = retried(|call| match call {
            1 => Err(PgFailure { code: "57P01" }),
            _ => Ok("ok"),
        });
        assert_eq!(result, Ok("ok"));
        assert_eq!(calls, 2);
        assert_eq!(waits, [Duration::from_secs(5)]);
    }

    #[test]
    fn a_closed_pool_is_tried_exactly_max_attempts_times_then_reported() {
        let (result, calls, waits) = retried(|_| {
            Err(PgFailure {
                code: "POOL_CLOSED",
            })
        });
        assert_eq!(
            result,
            Err(PgFailure {
                code: "POOL_CLOSED"
            })
        );
        assert_eq!(calls, 3);
        assert_eq!(waits, [Duration::from_secs(5), Duration::from_secs(10)]);
    }

    #[test]
    fn an_application_error_is_tried_once() {
        let (result, calls, waits) = retried(|_| Err(PgFailure { code: "42P01" }));
        assert_eq!(result, Err(PgFailure { code: "42P01" }));
        assert_eq!(calls, 1);
        assert!(waits.is_empty());
    }

    #[test]
    fn a_failure_without_a_code_is_not_retried() {
        let policy = COLD_START_RETRY_POLICY;
        assert_eq!(policy.next_step(1, None), NextStep::GiveUp);
        assert_eq!(policy.next_step(3, Some("57P01")), NextStep::GiveUp);
    }

    #[test]
    fn backoff_doubles() {
        let policy = COLD_START_RETRY_POLICY;
        let waits: Vec<u64> = (1..=4).map(|n| policy.backoff_after(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40]);
        assert!(policy.backoff_after(u32::MAX) >= policy.backoff_after(17));
    }
}
