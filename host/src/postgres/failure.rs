//! What went wrong with the database, classified by code (SQLSTATE, or a
//! synthetic code for failures the server could not report), and how each
//! failure reaches the guest as a `spin:postgres` error.

use super::bindings::{self, Error, QueryError};
use chat_contract::retry::RETRIED_BY_HOST;
use chat_contract::sqlstate::{CONNECTION_RESET, POOL_CLOSED, TIMED_OUT};
use deadpool_postgres::{PoolError, TimeoutType};
use std::time::Duration;

/// SQLSTATE too_many_connections: every pooled connection is in use.
const TOO_MANY_CONNECTIONS: &str = "53300";

/// A failed statement.
#[derive(Debug)]
pub enum StatementFailure {
    Postgres(tokio_postgres::Error),
    /// No answer within the statement timeout.
    TimedOut(Duration),
    /// A row could not be converted for the guest.
    Conversion(String),
}

impl StatementFailure {
    /// The SQLSTATE, or the synthetic code of a lost connection or timeout.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Postgres(error) => match error.as_db_error() {
                Some(db) => Some(db.code().code()),
                None if connection_lost(error) => Some(CONNECTION_RESET),
                None => None,
            },
            Self::TimedOut(_) => Some(TIMED_OUT),
            Self::Conversion(_) => None,
        }
    }

    /// The guest's error; `retried` marks one the host has already retried
    /// under the policy, so the guest does not retry it again.
    pub fn into_wit(self, retried: bool) -> Error {
        let code = self.code().map(str::to_owned);
        match self {
            Self::Postgres(error) => match server_report(&error) {
                Some(report) => marked(report, retried),
                None => match code {
                    Some(code) => synthetic(&code, &describe(&error), retried),
                    None => Error::QueryFailed(QueryError::Text(describe(&error))),
                },
            },
            Self::TimedOut(limit) => synthetic(
                TIMED_OUT,
                &format!("the database did not answer within {limit:?}"),
                retried,
            ),
            Self::Conversion(message) => Error::ValueConversionFailed(message),
        }
    }
}

/// Whether the connection itself failed (closed, reset), as opposed to the
/// server refusing the statement.
fn connection_lost(error: &tokio_postgres::Error) -> bool {
    error.is_closed()
        || std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// A failure to hand the guest a connection.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutFailure {
    #[error("invalid Postgres connection string: {0}")]
    InvalidAddress(String),
    /// Every connection is in use, and none came free in time.
    #[error("all {max} database connections stayed in use for {waited:?}")]
    Busy { max: usize, waited: Duration },
    /// Nothing answered: refused, unresolvable, or no handshake in time.
    #[error("could not connect to the database: {0}")]
    Unreachable(String),
    /// The server answered the connection attempt with an error: its
    /// report, kept whole for the guest.
    #[error("the database refused the connection: {}", .0.as_text)]
    Refused(Box<bindings::DbError>),
    /// The breaker is open: the database was out of reach moments ago.
    #[error(
        "the database was out of reach moments ago; not asking it again for about {:.1} s",
        .0.as_secs_f64()
    )]
    CircuitOpen(Duration),
    #[error("the connection pool is closed (the host is stopping)")]
    Closed,
}

impl CheckoutFailure {
    pub fn from_pool(error: PoolError, max: usize, waited: Duration) -> Self {
        match error {
            PoolError::Timeout(TimeoutType::Wait) => Self::Busy { max, waited },
            PoolError::Timeout(_) => {
                Self::Unreachable("no answer to the connection attempt in time".into())
            }
            PoolError::Backend(error) => match server_report(&error) {
                Some(report) => Self::Refused(Box::new(report)),
                None => Self::Unreachable(describe(&error)),
            },
            PoolError::Closed => Self::Closed,
            other => Self::Unreachable(other.to_string()),
        }
    }

    /// The server's SQLSTATE, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused(report) => Some(&report.code),
            _ => None,
        }
    }

    /// The guest's error. A busy pool and a closed one carry codes (the
    /// guest answers "busy, try again" rather than going ephemeral); a
    /// refused connection keeps the server's report.
    pub fn into_wit(self, retried: bool) -> Error {
        match self {
            Self::Busy { .. } => synthetic(TOO_MANY_CONNECTIONS, &self.to_string(), retried),
            // Marked as retried whatever the caller saw: the host is stopping
            // and its pool never reopens, so no layer should wait to retry.
            Self::Closed => synthetic(POOL_CLOSED, &self.to_string(), true),
            Self::Refused(report) => marked(*report, retried),
            other => Error::ConnectionFailed(other.to_string()),
        }
    }
}

/// The server's own report of an error, when it sent one.
fn server_report(error: &tokio_postgres::Error) -> Option<bindings::DbError> {
    let db = error.as_db_error()?;
    Some(bindings::DbError {
        as_text: describe(error),
        severity: db.severity().to_owned(),
        code: db.code().code().to_owned(),
        message: db.message().to_owned(),
        detail: db.detail().map(str::to_owned),
        extras: db_error_extras(db),
    })
}

/// The server's report as the guest gets it.
fn marked(mut report: bindings::DbError, retried: bool) -> Error {
    report.extras = with_retry_mark(report.extras, retried);
    Error::QueryFailed(QueryError::DbError(report))
}

/// A connection error with its SQLSTATE when the server sent one.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            if let Some(source) = std::error::Error::source(error) {
                text = format!("{text}: {source}");
            }
            text
        }
    }
}

/// A failure the server could not report itself, in the server's error shape
/// so the guest can classify it by code.
fn synthetic(code: &str, message: &str, retried: bool) -> Error {
    Error::QueryFailed(QueryError::DbError(bindings::DbError {
        as_text: format!("{message} ({code})"),
        severity: "ERROR".to_owned(),
        code: code.to_owned(),
        message: message.to_owned(),
        detail: None,
        extras: with_retry_mark(Vec::new(), retried),
    }))
}

fn with_retry_mark(mut extras: Vec<(String, String)>, retried: bool) -> Vec<(String, String)> {
    if retried {
        extras.push((RETRIED_BY_HOST.to_owned(), "true".to_owned()));
    }
    extras
}

fn db_error_extras(db: &tokio_postgres::error::DbError) -> Vec<(String, String)> {
    [
        ("hint", db.hint()),
        ("schema", db.schema()),
        ("table", db.table()),
        ("column", db.column()),
        ("datatype", db.datatype()),
        ("constraint", db.constraint()),
        ("where", db.where_()),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?.to_owned())))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(error: &Error) -> Option<(&str, bool)> {
        match error {
            Error::QueryFailed(QueryError::DbError(db)) => Some((
                db.code.as_str(),
                db.extras.iter().any(|(name, _)| name == RETRIED_BY_HOST),
            )),
            _ => None,
        }
    }

    #[test]
    fn a_timeout_is_reported_with_its_synthetic_code_and_mark() {
        let failure = StatementFailure::TimedOut(Duration::from_secs(30));
        assert_eq!(failure.code(), Some(TIMED_OUT));
        let error = failure.into_wit(true);
        assert_eq!(code_of(&error), Some((TIMED_OUT, true)));
    }

    #[test]
    fn a_busy_pool_is_53300_and_a_closed_one_pool_closed() {
        let busy = CheckoutFailure::Busy {
            max: 32,
            waited: Duration::from_secs(10),
        };
        assert!(busy.to_string().contains("32"), "{busy}");
        assert_eq!(
            code_of(&busy.into_wit(false)),
            Some((TOO_MANY_CONNECTIONS, false))
        );
        assert_eq!(
            code_of(&CheckoutFailure::Closed.into_wit(false)),
            Some((POOL_CLOSED, true)),
            "a closed pool is never worth a retry"
        );
    }

    #[test]
    fn unreachable_and_open_circuit_are_connection_failures() {
        for failure in [
            CheckoutFailure::Unreachable("connection refused".into()),
            CheckoutFailure::CircuitOpen(Duration::from_millis(2500)),
        ] {
            let text = failure.to_string();
            assert!(
                matches!(failure.into_wit(true), Error::ConnectionFailed(message) if message == text)
            );
        }
    }
}
