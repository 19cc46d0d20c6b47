//! `spin:postgres/postgres@4.2.0` for guests, backed by pooled tokio-postgres
//! connections with a prepared-statement cache per connection.

// The WIT error type is large (it carries the server's whole error report);
// it is what the interface returns, so boxing it is not an option.
#![allow(clippy::result_large_err)]

mod pool;
mod session;
mod values;

pub use pool::{PoolSettings, Pools};

use crate::component::ComponentContext;
use crate::state::HostState;
use anyhow::Result;
use bindings::{Column, Error, ParameterValue, QueryError, Row, RowSet};
use futures::StreamExt;
use session::SessionState;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Accessor, Destination, FutureReader, HasData, Linker, Resource, ResourceTable, StreamProducer,
    StreamReader, StreamResult, VecBuffer,
};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin-postgres@4.2.0",
        inline: "package chat-history:host-postgres; world postgres { import spin:postgres/postgres@4.2.0; }",
        imports: { default: async | trappable },
        with: {
            "spin:postgres/postgres.connection": super::GuestConnection,
            "spin:postgres/postgres.connection-builder": super::ConnectionRequest,
        },
    });
    pub use spin::postgres::postgres::*;
}

/// A pooled connection lent to a guest until it drops the handle.
pub struct GuestConnection {
    client: Arc<deadpool_postgres::Object>,
    session: SessionState,
}

/// A `connection-builder` before `build`.
pub struct ConnectionRequest {
    address: String,
    ca_root: Option<String>,
}

pub struct PostgresState {
    component: Arc<ComponentContext>,
}

impl PostgresState {
    pub fn new(component: &Arc<ComponentContext>) -> Self {
        Self {
            component: component.clone(),
        }
    }
}

pub struct PostgresView<'a> {
    state: &'a mut PostgresState,
    table: &'a mut ResourceTable,
}

struct Postgres;

impl HasData for Postgres {
    type Data<'a> = PostgresView<'a>;
}

/// Opens a connection for the guest: a permission check, then a pool checkout.
async fn connect(
    component: Arc<ComponentContext>,
    request: ConnectionRequest,
) -> Result<GuestConnection, Error> {
    if !component
        .allowed_hosts
        .allows_postgres_address(&request.address)
    {
        tracing::warn!(component = %component.id, "Postgres connection denied: host not in allowed_outbound_hosts");
        return Err(Error::ConnectionFailed(
            "the database host is not in this component's allowed_outbound_hosts".into(),
        ));
    }
    let client = component
        .postgres
        .checkout(&request.address, request.ca_root.as_deref())
        .await
        .map_err(|error| Error::ConnectionFailed(error.to_string()))?;
    Ok(GuestConnection {
        client: Arc::new(client),
        session: SessionState::default(),
    })
}

async fn open_with<T>(
    accessor: &Accessor<T, Postgres>,
    request: ConnectionRequest,
) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
    let component = accessor.with(|mut access| access.get().state.component.clone());
    match connect(component, request).await {
        Ok(connection) => {
            accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
        }
        Err(error) => Ok(Err(error)),
    }
}

/// Takes what a statement needs out of the store, so no store borrow is held
/// across the database round trip.
fn client_for<T>(
    accessor: &Accessor<T, Postgres>,
    connection: &Resource<GuestConnection>,
    statement: &str,
) -> wasmtime::Result<Arc<deadpool_postgres::Object>> {
    accessor.with(|mut access| {
        let connection = access.get().table.get_mut(connection)?;
        connection.session.observe(statement);
        Ok(connection.client.clone())
    })
}

fn query_failed(error: tokio_postgres::Error) -> Error {
    let as_text = pool::describe(&error);
    Error::QueryFailed(match error.as_db_error() {
        Some(db) => QueryError::DbError(bindings::DbError {
            as_text,
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: db_error_extras(db),
        }),
        None => QueryError::Text(as_text),
    })
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

/// Prepares (or reuses) the statement and starts it, returning its columns
/// and its row stream.
async fn start_query(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<(Vec<Column>, tokio_postgres::RowStream), Error> {
    let (prepared, params) = prepare(client, statement, params).await?;
    let columns = prepared.columns().iter().map(values::column).collect();
    let rows = client
        .query_raw(&prepared, bound(&params))
        .await
        .map_err(query_failed)?;
    Ok((columns, rows))
}

async fn execute(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<u64, Error> {
    let (prepared, params) = prepare(client, statement, params).await?;
    client
        .execute_raw(&prepared, bound(&params))
        .await
        .map_err(query_failed)
}

/// Converts the guest's parameters and prepares the statement, or reuses
/// the connection's cached preparation of it.
async fn prepare(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<(tokio_postgres::Statement, Vec<values::SqlParam>), Error> {
    let params = values::params(params).map_err(Error::BadParameter)?;
    let prepared = client
        .prepare_cached(statement)
        .await
        .map_err(query_failed)?;
    Ok((prepared, params))
}

/// The parameters as tokio-postgres binds them.
fn bound(
    params: &[values::SqlParam],
) -> impl ExactSizeIterator<Item = &(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
}

/// Rows waiting to be delivered to the guest; a small bound gives
/// backpressure, so a large result is never held in memory at once.
const ROW_BUFFER: usize = 64;

/// Pumps a row stream into a channel the guest reads from, and reports how
/// the query ended. Stops as soon as the guest drops its stream.
fn pump_rows(
    mut rows: Pin<Box<tokio_postgres::RowStream>>,
) -> (mpsc::Receiver<Row>, oneshot::Receiver<Result<(), Error>>) {
    let (row_tx, row_rx) = mpsc::channel(ROW_BUFFER);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let outcome = loop {
            let next = tokio::select! {
                _ = row_tx.closed() => break Ok(()),
                next = rows.next() => next,
            };
            match next {
                None => break Ok(()),
                Some(Err(error)) => break Err(query_failed(error)),
                Some(Ok(row)) => match values::row(&row) {
                    Ok(row) => {
                        if row_tx.send(row).await.is_err() {
                            break Ok(());
                        }
                    }
                    Err(error) => break Err(Error::ValueConversionFailed(error.to_string())),
                },
            }
        };
        let _ = done_tx.send(outcome);
    });
    (row_rx, done_rx)
}

impl<T> bindings::HostConnectionWithStore<T> for Postgres {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        open_with(
            accessor,
            ConnectionRequest {
                address,
                ca_root: None,
            },
        )
        .await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<Column>,
                StreamReader<Row>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let client = client_for(accessor, &connection, &statement)?;
        let (columns, rows) = match start_query(&client, &statement, params).await {
            Ok(started) => started,
            Err(error) => return Ok(Err(error)),
        };
        let (rows, done) = pump_rows(Box::pin(rows));
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, RowChannel(rows))?;
            let done = FutureReader::new(&mut access, async move {
                wasmtime::error::Ok(done.await.unwrap_or(Ok(())))
            })?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let client = client_for(accessor, &connection, &statement)?;
        Ok(execute(&client, &statement, params).await)
    }
}

impl<T> bindings::HostConnectionBuilderWithStore<T> for Postgres {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<ConnectionRequest>,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        let request = accessor.with(|mut access| {
            let request = access.get().table.get(&builder)?;
            wasmtime::error::Ok(ConnectionRequest {
                address: request.address.clone(),
                ca_root: request.ca_root.clone(),
            })
        })?;
        open_with(accessor, request).await
    }
}

impl PostgresView<'_> {
    fn component(&self) -> Arc<ComponentContext> {
        self.state.component.clone()
    }
}

impl bindings::HostConnection for PostgresView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        match connect(
            self.component(),
            ConnectionRequest {
                address,
                ca_root: None,
            },
        )
        .await
        {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn query(
        &mut self,
        connection: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let connection = self.table.get_mut(&connection)?;
        connection.session.observe(&statement);
        let (columns, rows) = match start_query(&connection.client, &statement, params).await {
            Ok(started) => started,
            Err(error) => return Ok(Err(error)),
        };
        let rows: Vec<_> = rows.collect().await;
        let rows = rows
            .into_iter()
            .map(|row| {
                let row = row.map_err(query_failed)?;
                values::row(&row).map_err(|e| Error::ValueConversionFailed(e.to_string()))
            })
            .collect::<Result<Vec<_>, Error>>();
        Ok(rows.map(|rows| RowSet { columns, rows }))
    }

    async fn execute(
        &mut self,
        connection: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let connection = self.table.get_mut(&connection)?;
        connection.session.observe(&statement);
        Ok(execute(&connection.client, &statement, params).await)
    }

    async fn drop(&mut self, connection: Resource<GuestConnection>) -> wasmtime::Result<()> {
        let connection = self.table.delete(connection)?;
        connection.session.release(connection.client);
        Ok(())
    }
}

impl bindings::HostConnectionBuilder for PostgresView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<ConnectionRequest>> {
        Ok(self.table.push(ConnectionRequest {
            address,
            ca_root: None,
        })?)
    }

    async fn set_ca_root(
        &mut self,
        builder: Resource<ConnectionRequest>,
        certificate: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get_mut(&builder)?.ca_root = Some(certificate);
        Ok(Ok(()))
    }

    async fn build(
        &mut self,
        builder: Resource<ConnectionRequest>,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        let request = self.table.get(&builder)?;
        let request = ConnectionRequest {
            address: request.address.clone(),
            ca_root: request.ca_root.clone(),
        };
        match connect(self.component(), request).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn drop(&mut self, builder: Resource<ConnectionRequest>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl bindings::Host for PostgresView<'_> {}

/// Delivers rows from the pump task to the guest's `stream<row>`.
struct RowChannel(mpsc::Receiver<Row>);

impl<D> StreamProducer<D> for RowChannel {
    type Item = Row;
    type Buffer = VecBuffer<Row>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, Row, VecBuffer<Row>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let wanted = match destination.remaining(&mut store) {
            // A zero-length read asks "is anything ready?": say yes without buffering.
            Some(0) => return Poll::Ready(Ok(StreamResult::Completed)),
            Some(n) => n,
            None => ROW_BUFFER,
        };
        let mut batch = Vec::new();
        match self.get_mut().0.poll_recv_many(cx, &mut batch, wanted) {
            Poll::Ready(0) => Poll::Ready(Ok(StreamResult::Dropped)),
            Poll::Ready(_) => {
                destination.set_buffer(batch.into());
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Poll::Pending if finish => Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => Poll::Pending,
        }
    }
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    bindings::add_to_linker::<_, Postgres>(linker, |state| PostgresView {
        state: &mut state.postgres,
        table: &mut state.table,
    })
    .map_err(crate::engine::anyhow_error)
}
