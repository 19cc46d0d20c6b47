//! One component of the app: its compiled code, its pre-instantiated linker
//! and the configuration its host capabilities consult.

use crate::app::AppLink;
use crate::engine::anyhow_error;
use crate::key_value::KeyValueStores;
use crate::metrics::Metrics;
use crate::postgres::Pools;
use crate::state::HostState;
use anyhow::{Context, Result};
use chat_manifest::{AllowedHosts, VariableResolver};
use std::path::Path;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// What a component's host capabilities need to know about it; shared by
/// all of its instances.
pub struct ComponentContext {
    pub id: String,
    pub environment: Vec<(String, String)>,
    pub variables: Arc<VariableResolver>,
    pub allowed_hosts: AllowedHosts,
    /// The key-value store labels this component may open.
    pub key_value_labels: Vec<String>,
    pub postgres: Arc<Pools>,
    pub key_value: Arc<KeyValueStores>,
    /// For service-chaining requests to the app's other components.
    pub app: AppLink,
    /// Where its instances report what they asked of the host, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
}

impl ComponentContext {
    /// The context of component `id` as spin.toml declares it, with the
    /// app's variables, pools, stores and link to the other components.
    pub fn declared(
        id: &str,
        declared: &chat_manifest::Component,
        variables: Arc<VariableResolver>,
        postgres: Arc<Pools>,
        key_value: Arc<KeyValueStores>,
        app: AppLink,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self> {
        let allowed_hosts = AllowedHosts::parse(&declared.allowed_outbound_hosts, &variables)
            .with_context(|| format!("allowed_outbound_hosts of component {id}"))?;
        Ok(Self {
            id: id.to_owned(),
            environment: declared.environment.clone().into_iter().collect(),
            variables,
            allowed_hosts,
            key_value_labels: declared.key_value_stores.clone(),
            postgres,
            key_value,
            app,
            metrics,
        })
    }
}

/// Compiles a component from a `.wasm` file and links it once (InstancePre),
/// so each new instance costs only the instantiation itself.
pub fn prepare(
    engine: &Engine,
    linker: &Linker<HostState>,
    source: &Path,
) -> Result<ServicePre<HostState>> {
    let component = Component::from_file(engine, source)
        .map_err(anyhow_error)
        .with_context(|| {
            format!(
                "cannot load component {} (build it with `chat-host build`)",
                source.display()
            )
        })?;
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow_error)
        .with_context(|| {
            format!(
                "{} imports something chat-host does not provide",
                source.display()
            )
        })?;
    ServicePre::new(instance_pre)
        .map_err(anyhow_error)
        .with_context(|| {
            format!(
                "{} does not export wasi:http/handler@0.3.0",
                source.display()
            )
        })
}
