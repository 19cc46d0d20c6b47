//! `spin:postgres/postgres@4.2.0` for guests, backed by pooled tokio-postgres
//! connections with a prepared-statement cache per connection, the
//! cold-start retry policy applied natively (see `lease`), and a circuit
//! breaker per database (see `pool`).

// The WIT error type is large (it carries the server's whole error report);
// it is what the interface returns, so boxing it is not an option.
#![allow(clippy::result_large_err)]

mod failure;
mod lease;
mod password;
mod pool;
mod session;
mod statement;
mod values;

pub use password::{PasswordIssuer, PasswordSource};
pub use pool::{PoolSettings, PoolStatus, Pools};

use bindings::{Column, Error, ParameterValue, Row, RowSet};
use chat_manifest::AllowedHosts;
use failure::StatementFailure;
use futures::StreamExt;
use lease::Lease;
use statement::convert_row;
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
    lease: Arc<Lease>,
}

/// A `connection-builder` before `build`.
pub struct ConnectionRequest {
    address: String,
    ca_root: Option<String>,
}

/// What a component's guests may reach: the serving thread's pools, and
/// the databases its `allowed_outbound_hosts` name.
pub struct PostgresConfig {
    /// The component, for the log.
    pub component: String,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub pools: Arc<Pools>,
}

/// One instance's slice of the store.
pub struct PostgresState {
    config: Arc<PostgresConfig>,
    /// Connections the guest opened and statements it ran, for `call_counts`.
    pub opens: u64,
    pub statements: u64,
}

impl PostgresState {
    pub fn new(config: Arc<PostgresConfig>) -> Self {
        Self {
            config,
            opens: 0,
            statements: 0,
        }
    }
}

/// What the capability borrows of the store for one call.
pub struct PostgresCtxView<'a> {
    pub state: &'a mut PostgresState,
    pub table: &'a mut ResourceTable,
}

/// Store data that can lend the capability its slice.
pub trait PostgresView: Send {
    fn postgres(&mut self) -> PostgresCtxView<'_>;
}

struct Postgres;

impl HasData for Postgres {
    type Data<'a> = PostgresCtxView<'a>;
}

/// Opens a connection for the guest: a permission check, then a checkout.
async fn connect(
    config: Arc<PostgresConfig>,
    request: ConnectionRequest,
) -> Result<GuestConnection, Error> {
    if !config
        .allowed_hosts
        .allows_postgres_address(&request.address)
    {
        tracing::warn!(component = %config.component, "Postgres connection denied: host not in allowed_outbound_hosts");
        return Err(Error::ConnectionFailed(
            "the database host is not in this component's allowed_outbound_hosts".into(),
        ));
    }
    let database = config
        .pools
        .database(&request.address, request.ca_root.as_deref())
        .map_err(|failure| failure.into_wit(false))?;
    let lease = Lease::check_out(database)
        .await
        .map_err(|(failure, retried)| failure.into_wit(retried))?;
    Ok(GuestConnection {
        lease: Arc::new(lease),
    })
}

async fn open_with<T>(
    accessor: &Accessor<T, Postgres>,
    request: ConnectionRequest,
) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
    let config = accessor.with(|mut access| {
        let state = &mut access.get().state;
        state.opens += 1;
        state.config.clone()
    });
    match connect(config, request).await {
        Ok(connection) => {
            accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
        }
        Err(error) => Ok(Err(error)),
    }
}

/// The guest connection's lease for one statement (counted), taken out of
/// the store so no store borrow is held across the database round trip.
fn lease_for_statement<T>(
    accessor: &Accessor<T, Postgres>,
    connection: &Resource<GuestConnection>,
) -> wasmtime::Result<Arc<Lease>> {
    accessor.with(|mut access| {
        let view = access.get();
        view.state.statements += 1;
        Ok(view.table.get(connection)?.lease.clone())
    })
}

/// Rows waiting to be delivered to the guest; a small bound gives
/// backpressure, so a large result is never held in memory at once.
const ROW_BUFFER: usize = 64;

/// Pumps a query's rows into a channel the guest reads from, and reports how
/// the query ended. Stops as soon as the guest drops its stream. Rows come
/// after the first one was delivered, so a failure here is reported, not
/// retried.
fn pump_rows(
    first: Option<Row>,
    mut rows: Pin<Box<tokio_postgres::RowStream>>,
) -> (mpsc::Receiver<Row>, oneshot::Receiver<Result<(), Error>>) {
    let (row_tx, row_rx) = mpsc::channel(ROW_BUFFER);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let outcome = async {
            let Some(first) = first else { return Ok(()) };
            if row_tx.send(first).await.is_err() {
                return Ok(());
            }
            loop {
                let next = tokio::select! {
                    _ = row_tx.closed() => return Ok(()),
                    next = rows.next() => next,
                };
                let Some(row) = next else { return Ok(()) };
                if row_tx.send(convert_row(row)?).await.is_err() {
                    return Ok(());
                }
            }
        };
        let outcome: Result<(), StatementFailure> = outcome.await;
        let _ = done_tx.send(outcome.map_err(|failure| failure.into_wit(false)));
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
        let lease = lease_for_statement(accessor, &connection)?;
        let started = match lease.query(&statement, params).await {
            Ok(started) => started,
            Err(error) => return Ok(Err(error)),
        };
        let (rows, done) = pump_rows(started.first, started.rest);
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, RowChannel(rows))?;
            let done = FutureReader::new(&mut access, async move {
                wasmtime::error::Ok(done.await.unwrap_or(Ok(())))
            })?;
            Ok(Ok((started.columns, rows, done)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let lease = lease_for_statement(accessor, &connection)?;
        Ok(lease.execute(&statement, params).await)
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

impl PostgresCtxView<'_> {
    fn config(&self) -> Arc<PostgresConfig> {
        self.state.config.clone()
    }
}

impl bindings::HostConnection for PostgresCtxView<'_> {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<GuestConnection>, Error>> {
        match connect(
            self.config(),
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
        let lease = self.table.get(&connection)?.lease.clone();
        Ok(lease.query_all(&statement, params).await)
    }

    async fn execute(
        &mut self,
        connection: Resource<GuestConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let lease = self.table.get(&connection)?.lease.clone();
        Ok(lease.execute(&statement, params).await)
    }

    async fn drop(&mut self, connection: Resource<GuestConnection>) -> wasmtime::Result<()> {
        // The lease returns the connection once nothing uses it any more.
        self.table.delete(connection)?;
        Ok(())
    }
}

impl bindings::HostConnectionBuilder for PostgresCtxView<'_> {
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
        match connect(self.config(), request).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn drop(&mut self, builder: Resource<ConnectionRequest>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

impl bindings::Host for PostgresCtxView<'_> {}

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

pub fn add_to_linker<T: PostgresView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::add_to_linker::<T, Postgres>(linker, T::postgres)
}
