//! Everything a handler can fail with, and how each becomes an answer.

use crate::config::ConfigError;
use crate::postgres::DbError;
use chat_domain::ApiError;

/// A handler's failure: the caller's fault (answered as is) or the server's
/// (logged, then answered with a sentence that reveals no internals).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Rejected(#[from] ApiError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Failure {
    /// The error to answer with. Server-side failures are logged here, once,
    /// labelled with `context`.
    pub fn into_api_error(self, context: &str) -> ApiError {
        match self {
            Failure::Rejected(error) => error,
            Failure::Database(DbError::NotConfigured) => {
                crate::log::failure(context, &DbError::NotConfigured);
                ApiError::service_unavailable("No database is configured: set the db_url variable.")
            }
            Failure::Database(error) if error.is_busy() => {
                crate::log::failure(context, &error);
                ApiError::service_unavailable(
                    "The database is busy right now; please try again shortly.",
                )
            }
            Failure::Database(error) if error.is_unreachable() => {
                crate::log::failure(context, &error);
                ApiError::service_unavailable(
                    "The database is unavailable right now; please try again shortly.",
                )
            }
            Failure::Database(error) => {
                crate::log::failure(context, &error);
                ApiError::internal(
                    "A database operation failed; the details are in the server log.",
                )
            }
            Failure::Config(error) => {
                crate::log::failure(context, &error);
                ApiError::internal(
                    "The server could not read its configuration; the details are in the server log.",
                )
            }
        }
    }
}

impl Failure {
    /// The code the retry policy judges this failure by (see
    /// [`DbError::retry_code`]); a refused request is never retried.
    pub fn retry_code(&self) -> Option<&str> {
        match self {
            Failure::Database(error) => error.retry_code(),
            _ => None,
        }
    }

    /// Whether the database was out of reach (see [`DbError::is_unreachable`]).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Failure::Database(error) if error.is_unreachable())
    }
}

/// `outcome`, or `fallback()` when it failed because the database is out of
/// reach: for reads that have a useful answer without the database
/// (ephemeral mode). The failure is logged under `context`.
pub fn or_when_unreachable<T>(
    outcome: Result<T, Failure>,
    context: &str,
    fallback: impl FnOnce() -> T,
) -> Result<T, Failure> {
    match outcome {
        Err(failure) if failure.is_unreachable() => {
            crate::log::failure(context, &failure);
            Ok(fallback())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_error(code: &str) -> Failure {
        Failure::Database(DbError::Query {
            sqlstate: Some(code.into()),
            message: r#"relation "chat.Chat" does not exist"#.into(),
            retried_by_host: false,
        })
    }

    #[test]
    fn caller_errors_pass_through() {
        let error = Failure::from(ApiError::not_found("gone")).into_api_error("test");
        assert_eq!(error, ApiError::not_found("gone"));
    }

    #[test]
    fn an_unreachable_database_is_503() {
        let failures = [
            Failure::Database(DbError::NotConfigured),
            Failure::Database(DbError::Connect {
                sqlstate: None,
                message: "connection refused".into(),
            }),
            query_error("57P01"),
            query_error("53300"),
        ];
        for failure in failures {
            assert_eq!(failure.into_api_error("test").status, 503);
        }
    }

    #[test]
    fn only_an_unreachable_database_takes_the_fallback() {
        let fallback = || "fallback";
        let unreachable = Failure::Database(DbError::Connect {
            sqlstate: None,
            message: "connection refused".into(),
        });
        assert_eq!(
            or_when_unreachable(Err(unreachable), "test", fallback).unwrap(),
            "fallback"
        );
        assert_eq!(
            or_when_unreachable(Ok("live"), "test", fallback).unwrap(),
            "live"
        );
        for failure in [
            query_error("42P01"),
            Failure::from(ApiError::forbidden("private")),
        ] {
            assert!(or_when_unreachable(Err(failure), "test", fallback).is_err());
        }
    }

    #[test]
    fn other_database_errors_are_500_without_internals() {
        let error = query_error("42P01").into_api_error("test");
        assert_eq!(error.status, 500);
        assert!(!error.message.contains("chat.Chat"), "{}", error.message);
        assert!(!error.message.contains("42P01"), "{}", error.message);
    }
}
