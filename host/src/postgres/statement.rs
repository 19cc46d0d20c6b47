//! One statement on one connection: prepared (or taken from the
//! connection's statement cache) and started, its rows converted for the
//! guest.

use super::bindings::{Column, Row};
use super::failure::StatementFailure;
use super::values;
use futures::StreamExt;
use std::pin::Pin;
use std::sync::Arc;

/// A query started: its columns, its first row (fetched before the guest
/// sees anything, so a connection lost before any row can still be retried)
/// and the rest of its rows.
pub struct StartedQuery {
    pub columns: Vec<Column>,
    pub first: Option<Row>,
    pub rest: Pin<Box<tokio_postgres::RowStream>>,
}

/// Prepares (or reuses) the statement and starts it.
pub async fn start_query(
    client: Arc<deadpool_postgres::Object>,
    statement: &str,
    params: &[values::SqlParam],
) -> Result<StartedQuery, StatementFailure> {
    let prepared = client
        .prepare_cached(statement)
        .await
        .map_err(StatementFailure::Postgres)?;
    let columns = prepared.columns().iter().map(values::column).collect();
    let mut rest = Box::pin(
        client
            .query_raw(&prepared, bound(params))
            .await
            .map_err(StatementFailure::Postgres)?,
    );
    let first = match rest.next().await {
        None => None,
        Some(row) => Some(convert_row(row)?),
    };
    Ok(StartedQuery {
        columns,
        first,
        rest,
    })
}

pub fn convert_row(
    row: Result<tokio_postgres::Row, tokio_postgres::Error>,
) -> Result<Row, StatementFailure> {
    let row = row.map_err(StatementFailure::Postgres)?;
    values::row(&row).map_err(|error| StatementFailure::Conversion(error.to_string()))
}

pub async fn execute(
    client: Arc<deadpool_postgres::Object>,
    statement: &str,
    params: &[values::SqlParam],
) -> Result<u64, StatementFailure> {
    let prepared = client
        .prepare_cached(statement)
        .await
        .map_err(StatementFailure::Postgres)?;
    client
        .execute_raw(&prepared, bound(params))
        .await
        .map_err(StatementFailure::Postgres)
}

/// The parameters as tokio-postgres binds them.
fn bound(
    params: &[values::SqlParam],
) -> impl ExactSizeIterator<Item = &(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
}
