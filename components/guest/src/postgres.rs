//! Postgres through `spin:postgres`: executes the domain's statements and
//! decodes rows, keeping Postgres' SQLSTATE on every error so callers can
//! classify failures by code.

use crate::config::{self, ConfigError};
use crate::schema;
use chat_contract::retry::RETRIED_BY_HOST;
use chat_contract::sqlstate;
use chat_domain::database::sql::{Row, SqlParam, Statement};
use chat_domain::database::timestamp::UtcDateTime;
use serde_json::value::RawValue;
use spin_sdk::pg::{self, Connection, DbValue, ParameterValue, PgError, QueryError};
use spin_sdk::wit_bindgen::StreamResult;
use std::fmt::Display;
use std::time::Duration;
use uuid::Uuid;

/// Why a database step failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database is configured: the db_url variable is empty")]
    NotConfigured,
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be reached (or refused the session).
    #[error("database connection failed{}: {message}", sqlstate_suffix(.sqlstate))]
    Connect {
        sqlstate: Option<String>,
        message: String,
    },
    #[error("query failed{}: {message}", sqlstate_suffix(.sqlstate))]
    Query {
        sqlstate: Option<String>,
        message: String,
        /// The host already applied the retry policy to this statement.
        retried_by_host: bool,
    },
    /// The circuit breaker is open: the database was out of reach moments
    /// ago, so it is not asked again until the cool-down is over.
    #[error("the database was out of reach moments ago; skipping it for about {:.1} s more", .for_about.as_secs_f64())]
    Skipped { for_about: Duration },
    /// A value did not have the type the statement promises.
    #[error("unexpected database value: {message}")]
    Decode { message: String },
}

fn sqlstate_suffix(sqlstate: &Option<String>) -> String {
    sqlstate
        .as_deref()
        .map(|code| format!(" ({})", sqlstate::describe(code)))
        .unwrap_or_default()
}

impl DbError {
    /// The Postgres SQLSTATE (or a host's synthetic code), when there is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Connect { sqlstate, .. } | DbError::Query { sqlstate, .. } => {
                sqlstate.as_deref()
            }
            _ => None,
        }
    }

    /// Whether the database is out of reach (unset, down, restarting, the
    /// connection dropped, or skipped while it recovers) rather than busy or
    /// the statement being at fault.
    pub fn is_unreachable(&self) -> bool {
        match self {
            DbError::NotConfigured | DbError::Skipped { .. } => true,
            DbError::Connect { sqlstate, .. } => !sqlstate
                .as_deref()
                .is_some_and(sqlstate::means_database_busy),
            DbError::Query {
                sqlstate: Some(code),
                ..
            } => sqlstate::means_database_unreachable(code),
            _ => false,
        }
    }

    /// Whether the database (or the host's pool) has no connection to spare.
    pub fn is_busy(&self) -> bool {
        self.sqlstate().is_some_and(sqlstate::means_database_busy)
    }

    /// The code the retry policy judges this failure by; `None` when it is
    /// not for this component to retry (no code, or the host retried it).
    pub fn retry_code(&self) -> Option<&str> {
        match self {
            DbError::Query {
                retried_by_host: true,
                ..
            } => None,
            DbError::Query { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }

    /// Prefixes the message with what was being done, e.g. the migration name.
    pub fn context(self, doing: impl Display) -> Self {
        match self {
            DbError::Connect { sqlstate, message } => DbError::Connect {
                sqlstate,
                message: format!("{doing}: {message}"),
            },
            DbError::Query {
                sqlstate,
                message,
                retried_by_host,
            } => DbError::Query {
                sqlstate,
                message: format!("{doing}: {message}"),
                retried_by_host,
            },
            DbError::Decode { message } => DbError::Decode {
                message: format!("{doing}: {message}"),
            },
            other => other,
        }
    }

    fn from_open(error: pg::Error) -> Self {
        let (sqlstate, message, _) = code_and_message(error);
        DbError::Connect { sqlstate, message }
    }

    fn from_statement(error: pg::Error) -> Self {
        let error = match error {
            pg::Error::PgError(PgError::ConnectionFailed(message)) => DbError::Connect {
                sqlstate: None,
                message,
            },
            pg::Error::Decode(message) => DbError::Decode { message },
            other => {
                let (sqlstate, message, retried_by_host) = code_and_message(other);
                DbError::Query {
                    sqlstate,
                    message,
                    retried_by_host,
                }
            }
        };
        if error.sqlstate().is_some_and(sqlstate::means_schema_missing) {
            // Someone dropped our tables under us: migrate again next time.
            schema::forget_schema_is_current();
        }
        error
    }
}

/// The SQLSTATE, the message, and whether the host marked the error as
/// already retried.
fn code_and_message(error: pg::Error) -> (Option<String>, String, bool) {
    match error {
        pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(db))) => {
            let retried_by_host = db.extras.iter().any(|(name, _)| name == RETRIED_BY_HOST);
            let message = match db.detail {
                Some(detail) => format!("{} ({detail})", db.message),
                None => db.message,
            };
            (Some(db.code), message, retried_by_host)
        }
        // No server error: under Spin a lost connection looks like this.
        pg::Error::PgError(PgError::QueryFailed(QueryError::Text(message))) => {
            let code = sqlstate::code_for_driver_failure(&message).map(str::to_owned);
            (code, message, false)
        }
        pg::Error::PgError(
            PgError::ConnectionFailed(message)
            | PgError::BadParameter(message)
            | PgError::ValueConversionFailed(message)
            | PgError::Other(message),
        )
        | pg::Error::Decode(message) => (None, message, false),
    }
}

/// An open connection. Spin hands out one pooled session per connection, so a
/// transaction spans the statements executed on the same `Db`.
pub struct Db {
    connection: Connection,
}

impl Db {
    /// Connects to the database named by the `db_url` variable.
    pub async fn connect() -> Result<Self, DbError> {
        let url = config::variable(config::DB_URL)
            .await?
            .ok_or(DbError::NotConfigured)?;
        let connection = Connection::open(url).await.map_err(DbError::from_open)?;
        Ok(Self { connection })
    }

    /// Runs a statement that returns no rows; answers the affected row count.
    pub async fn execute(&self, statement: &Statement) -> Result<u64, DbError> {
        self.connection
            .execute(statement.sql.as_ref(), parameters(statement))
            .await
            .map_err(DbError::from_statement)
    }

    /// Runs `work` in one transaction: committed when it succeeds, rolled
    /// back when it fails (best effort: a dropped connection has rolled back
    /// already).
    pub async fn transaction<T, E>(
        &self,
        work: impl AsyncFnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.execute(&Statement::without_params("BEGIN")).await?;
        match work(self).await {
            Ok(value) => {
                self.execute(&Statement::without_params("COMMIT"))
                    .await
                    .map_err(|error| error.context("committing a transaction"))?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = self.execute(&Statement::without_params("ROLLBACK")).await {
                    crate::log::failure("rolling back a failed transaction", &rollback);
                }
                Err(error)
            }
        }
    }

    /// Runs a statement and collects its rows. The final status is checked
    /// after the rows, since an error can arrive after some rows were sent.
    pub async fn query(&self, statement: &Statement) -> Result<Vec<DbRow>, DbError> {
        let mut result = self
            .connection
            .query(statement.sql.as_ref(), parameters(statement))
            .await
            .map_err(DbError::from_statement)?;
        // Each read crosses the component boundary once and takes every row
        // the host has ready, up to the buffer's spare capacity.
        let mut rows = Vec::new();
        loop {
            rows.reserve(ROWS_PER_READ);
            let (status, filled) = result.rows().read(rows).await;
            rows = filled;
            match status {
                StreamResult::Dropped => break,
                // A cancelled read moved no rows and the stream is still open.
                StreamResult::Complete(_) | StreamResult::Cancelled => {}
            }
        }
        result.result().await.map_err(DbError::from_statement)?;
        Ok(rows.into_iter().map(DbRow).collect())
    }
}

/// Room for this many more rows before each read of a query's row stream:
/// as many as chat-host buffers ahead of the guest.
const ROWS_PER_READ: usize = 64;

fn parameters(statement: &Statement) -> Vec<ParameterValue> {
    statement
        .params
        .iter()
        .map(|param| match param {
            SqlParam::Text(text) => ParameterValue::Str(text.clone()),
            SqlParam::Uuid(id) => ParameterValue::Uuid(id.to_string()),
            SqlParam::Int32(n) => ParameterValue::Int32(*n),
            SqlParam::Int64(n) => ParameterValue::Int64(*n),
            SqlParam::Null => ParameterValue::DbNull,
        })
        .collect()
}

/// One result row, read by column position through [`Row`] (the domain's
/// statements sit next to their decoders).
pub struct DbRow(Vec<DbValue>);

impl Row for DbRow {
    type Error = DbError;

    fn text(&self, column: usize) -> Result<String, DbError> {
        match self.value(column)? {
            DbValue::Str(text) => Ok(text.clone()),
            other => Err(unexpected(column, "text", other)),
        }
    }

    /// A text column that may be NULL.
    fn optional_text(&self, column: usize) -> Result<Option<String>, DbError> {
        match self.value(column)? {
            DbValue::Str(text) => Ok(Some(text.clone())),
            DbValue::DbNull => Ok(None),
            other => Err(unexpected(column, "text or NULL", other)),
        }
    }

    /// JSON selected as text (`column::text`: `spin:postgres` returns JSON
    /// columns, unlike JSONB, as unsupported bytes), checked and kept verbatim.
    fn json_text(&self, column: usize) -> Result<Box<RawValue>, DbError> {
        RawValue::from_string(self.text(column)?).map_err(|error| DbError::Decode {
            message: format!("column {column}: expected JSON text: {error}"),
        })
    }

    fn uuid(&self, column: usize) -> Result<Uuid, DbError> {
        let value = self.value(column)?;
        match value {
            DbValue::Uuid(text) => Uuid::try_parse(text).ok(),
            _ => None,
        }
        .ok_or_else(|| unexpected(column, "a UUID", value))
    }

    /// A UUID column that may be NULL.
    fn optional_uuid(&self, column: usize) -> Result<Option<Uuid>, DbError> {
        match self.value(column)? {
            DbValue::DbNull => Ok(None),
            _ => self.uuid(column).map(Some),
        }
    }

    /// A TIMESTAMP column, read as UTC.
    fn timestamp(&self, column: usize) -> Result<UtcDateTime, DbError> {
        let value = self.value(column)?;
        match *value {
            DbValue::Datetime((year, month, day, hour, minute, second, nanosecond)) => {
                UtcDateTime::from_parts(year, month, day, hour, minute, second, nanosecond)
            }
            _ => None,
        }
        .ok_or_else(|| unexpected(column, "a valid timestamp", value))
    }

    fn boolean(&self, column: usize) -> Result<bool, DbError> {
        match self.value(column)? {
            DbValue::Boolean(flag) => Ok(*flag),
            other => Err(unexpected(column, "a boolean", other)),
        }
    }

    fn optional_boolean(&self, column: usize) -> Result<Option<bool>, DbError> {
        match self.value(column)? {
            DbValue::DbNull => Ok(None),
            _ => self.boolean(column).map(Some),
        }
    }

    fn int64(&self, column: usize) -> Result<i64, DbError> {
        match self.value(column)? {
            DbValue::Int64(n) => Ok(*n),
            other => Err(unexpected(column, "a BIGINT", other)),
        }
    }

    fn int32(&self, column: usize) -> Result<i32, DbError> {
        self.optional_int32(column)?
            .ok_or_else(|| unexpected(column, "a non-NULL INTEGER", &DbValue::DbNull))
    }
}

impl DbRow {
    /// An INTEGER that may be NULL (for example `max(...)` over no rows).
    pub fn optional_int32(&self, column: usize) -> Result<Option<i32>, DbError> {
        match self.value(column)? {
            DbValue::Int32(n) => Ok(Some(*n)),
            DbValue::DbNull => Ok(None),
            other => Err(unexpected(column, "an INTEGER", other)),
        }
    }

    fn value(&self, column: usize) -> Result<&DbValue, DbError> {
        self.0.get(column).ok_or_else(|| DbError::Decode {
            message: format!(
                "column {column} is missing: the row has {} columns",
                self.0.len()
            ),
        })
    }
}

fn unexpected(column: usize, expected: &str, found: &DbValue) -> DbError {
    let mut found = format!("{found:?}");
    found.truncate(80);
    DbError::Decode {
        message: format!("column {column}: expected {expected}, found {found}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_error(code: Option<&str>) -> DbError {
        DbError::Query {
            sqlstate: code.map(str::to_owned),
            message: "boom".into(),
            retried_by_host: false,
        }
    }

    fn pg_db_error(code: &str, extras: Vec<(String, String)>) -> pg::Error {
        pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(pg::DbError {
            as_text: "full text".into(),
            severity: "FATAL".into(),
            code: code.into(),
            message: "terminating connection due to administrator command".into(),
            detail: None,
            extras,
        })))
    }

    #[test]
    fn errors_the_host_retried_are_not_retried_again() {
        let fresh = DbError::from_statement(pg_db_error("57P01", vec![]));
        assert_eq!(fresh.retry_code(), Some("57P01"));
        let retried = DbError::from_statement(pg_db_error(
            "57P01",
            vec![(RETRIED_BY_HOST.into(), "3".into())],
        ));
        assert_eq!(retried.retry_code(), None);
        assert_eq!(retried.sqlstate(), Some("57P01"));
        assert!(retried.is_unreachable());
        let connect = DbError::Connect {
            sqlstate: None,
            message: "connection refused".into(),
        };
        assert_eq!(
            connect.retry_code(),
            None,
            "a refused connection is not retried"
        );
    }

    #[test]
    fn a_busy_database_is_not_unreachable() {
        let busy = DbError::from_open(pg_db_error("53300", vec![]));
        assert!(busy.is_busy());
        assert!(!busy.is_unreachable());
        let skipped = DbError::Skipped {
            for_about: Duration::from_secs(3),
        };
        assert!(skipped.is_unreachable());
    }

    #[test]
    fn classifies_by_kind_and_sqlstate() {
        assert!(DbError::NotConfigured.is_unreachable());
        let connect = DbError::Connect {
            sqlstate: None,
            message: "refused".into(),
        };
        assert!(connect.is_unreachable());
        assert!(query_error(Some("57P01")).is_unreachable());
        assert!(query_error(Some("08006")).is_unreachable());
        assert!(!query_error(Some("42P01")).is_unreachable());
        assert!(!query_error(None).is_unreachable());
        assert_eq!(query_error(Some("42P01")).sqlstate(), Some("42P01"));
        assert_eq!(DbError::NotConfigured.sqlstate(), None);
    }

    #[test]
    fn statement_errors_keep_the_sqlstate() {
        let error = DbError::from_statement(pg::Error::PgError(PgError::QueryFailed(
            QueryError::DbError(pg::DbError {
                as_text: "full text".into(),
                severity: "ERROR".into(),
                code: "23505".into(),
                message: "duplicate key".into(),
                detail: Some("Key (id)=(1) already exists.".into()),
                extras: vec![],
            }),
        )));
        assert_eq!(
            error.retry_code(),
            Some("23505"),
            "the policy decides; it refuses 23505"
        );
        assert_eq!(error.sqlstate(), Some("23505"));
        assert_eq!(
            error.to_string(),
            "query failed (SQLSTATE 23505): duplicate key (Key (id)=(1) already exists.)"
        );
        let dropped = DbError::from_statement(pg::Error::PgError(PgError::ConnectionFailed(
            "closed".into(),
        )));
        assert!(matches!(dropped, DbError::Connect { .. }));
    }

    #[test]
    fn open_errors_are_connection_failures() {
        let error = DbError::from_open(pg::Error::PgError(PgError::Other("no route".into())));
        assert!(matches!(error, DbError::Connect { .. }));
        assert!(error.is_unreachable());
    }

    #[test]
    fn context_prefixes_the_message() {
        let error = query_error(Some("42601")).context("applying migration 2 (index)");
        assert_eq!(
            error.to_string(),
            "query failed (SQLSTATE 42601): applying migration 2 (index): boom"
        );
        assert_eq!(error.sqlstate(), Some("42601"));
    }

    #[test]
    fn parameters_map_to_their_postgres_types() {
        let id = Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap();
        let statement = Statement::new(
            "SELECT 1",
            vec![
                SqlParam::Text("ada".into()),
                SqlParam::Uuid(id),
                SqlParam::Int32(1),
                SqlParam::Int64(21),
                SqlParam::Null,
            ],
        );
        let mapped = parameters(&statement);
        assert!(matches!(&mapped[0], ParameterValue::Str(text) if text == "ada"));
        assert!(
            matches!(&mapped[1], ParameterValue::Uuid(text) if text == "123e4567-e89b-12d3-a456-426614174000")
        );
        assert!(matches!(mapped[2], ParameterValue::Int32(1)));
        assert!(matches!(mapped[3], ParameterValue::Int64(21)));
        assert!(matches!(mapped[4], ParameterValue::DbNull));
    }

    #[test]
    fn rows_decode_by_position() {
        let row = DbRow(vec![
            DbValue::Uuid("123e4567-e89b-12d3-a456-426614174000".into()),
            DbValue::Str("Hello".into()),
            DbValue::Datetime((2024, 5, 1, 12, 0, 0, 250_000_000)),
            DbValue::Boolean(true),
            DbValue::Int32(2),
            DbValue::DbNull,
        ]);
        assert_eq!(
            row.uuid(0).unwrap().to_string(),
            "123e4567-e89b-12d3-a456-426614174000"
        );
        assert_eq!(row.text(1).unwrap(), "Hello");
        assert_eq!(
            row.timestamp(2).unwrap().to_string(),
            "2024-05-01T12:00:00.250Z"
        );
        assert!(row.boolean(3).unwrap());
        assert_eq!(row.int32(4).unwrap(), 2);
        assert_eq!(row.optional_int32(5).unwrap(), None);
        assert_eq!(row.optional_text(1).unwrap().as_deref(), Some("Hello"));
        assert_eq!(row.optional_text(5).unwrap(), None);
        assert_eq!(row.optional_uuid(5).unwrap(), None);
        assert!(row.optional_uuid(0).unwrap().is_some());
    }

    #[test]
    fn json_text_is_kept_verbatim_and_checked() {
        let row = DbRow(vec![
            DbValue::Str(r#"[{"type": "text", "text": "hi"}]"#.into()),
            DbValue::Str("[{".into()),
        ]);
        assert_eq!(
            row.json_text(0).unwrap().get(),
            r#"[{"type": "text", "text": "hi"}]"#
        );
        assert!(matches!(row.json_text(1), Err(DbError::Decode { .. })));
    }

    #[test]
    fn unexpected_values_are_decode_errors() {
        let row = DbRow(vec![
            DbValue::Str("not a uuid".into()),
            DbValue::Datetime((2023, 2, 29, 0, 0, 0, 0)),
            DbValue::DbNull,
        ]);
        assert!(matches!(row.uuid(0), Err(DbError::Decode { .. })));
        assert!(matches!(row.timestamp(1), Err(DbError::Decode { .. })));
        assert!(matches!(row.int32(2), Err(DbError::Decode { .. })));
        assert!(matches!(row.text(3), Err(DbError::Decode { .. })));
        assert!(matches!(row.optional_text(1), Err(DbError::Decode { .. })));
    }
}
