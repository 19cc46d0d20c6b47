//! The per-instance store data: each capability's own slice, plus what
//! wasmtime's WASI implementations need. Each capability reaches its slice
//! through its view (as `wasi:http` does through `WasiHttpView`), so none of
//! them knows this type.

use crate::call_counts::CallCounts;
use crate::component::ComponentContext;
use crate::key_value::{KeyValueCtxView, KeyValueState, KeyValueView};
use crate::metrics::Metrics;
use crate::outbound_http::OutboundHttp;
use crate::postgres::{PostgresCtxView, PostgresState, PostgresView};
use crate::variables::{VariablesState, VariablesView};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound_http: OutboundHttp,
    postgres: PostgresState,
    key_value: KeyValueState,
    variables: VariablesState,
    /// Requests this instance has taken.
    pub requests: u64,
    /// Where the instance's calls are counted when metrics are served, and
    /// what was counted there already.
    metrics: Option<(Arc<Metrics>, String)>,
    reported: CallCounts,
}

impl HostState {
    pub fn new(component: &ComponentContext) -> Self {
        let mut wasi = WasiCtx::builder();
        // Guest logs (eprintln!) go to the host's own output.
        wasi.inherit_stdout().inherit_stderr();
        wasi.envs(&component.environment);
        Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound_http: OutboundHttp::new(component.outbound_http.clone()),
            postgres: PostgresState::new(component.postgres.clone()),
            key_value: KeyValueState::new(component.key_value.clone()),
            variables: VariablesState::new(component.variables.clone()),
            requests: 0,
            metrics: component
                .metrics
                .clone()
                .map(|metrics| (metrics, component.id.clone())),
            reported: CallCounts::default(),
        }
    }

    /// Adds what this instance asked since its last report to the metrics.
    pub fn report_calls(&mut self) {
        let Some((metrics, component)) = &self.metrics else {
            return;
        };
        let now = self.call_counts();
        metrics.add_host_calls(component, now.since(&self.reported));
        self.reported = now;
    }

    /// What this instance has asked of the capabilities so far.
    pub fn call_counts(&self) -> CallCounts {
        CallCounts {
            requests: self.requests,
            postgres_opens: self.postgres.opens,
            postgres_statements: self.postgres.statements,
            key_value_operations: self.key_value.operations,
            variable_reads: self.variables.reads,
        }
    }

    /// The `wasi:http` view; a plain fn so wasmtime's request handler can use it.
    pub fn http_view(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound_http,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http_view()
    }
}

impl PostgresView for HostState {
    fn postgres(&mut self) -> PostgresCtxView<'_> {
        PostgresCtxView {
            state: &mut self.postgres,
            table: &mut self.table,
        }
    }
}

impl KeyValueView for HostState {
    fn key_value(&mut self) -> KeyValueCtxView<'_> {
        KeyValueCtxView {
            state: &mut self.key_value,
            table: &mut self.table,
        }
    }
}

impl VariablesView for HostState {
    fn variables(&mut self) -> &mut VariablesState {
        &mut self.variables
    }
}
