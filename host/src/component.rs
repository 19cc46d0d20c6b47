//! One component of the app: its compiled code, its pre-instantiated linker
//! and the configuration its host capabilities consult.

use crate::app::AppLink;
use crate::engine::anyhow_error;
use crate::key_value::KeyValueStores;
use crate::metrics::Metrics;
use crate::postgres::Pools;
use crate::state::HostState;
use anyhow::{Context, Result, bail};
use chat_manifest::{AllowedHosts, VariableResolver};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Precompiled};
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

/// Loads a component (compiling a `.wasm` file, or mapping one that
/// `chat-host precompile` wrote) and links it once (InstancePre), so each
/// new instance costs only the instantiation itself.
pub fn prepare(
    engine: &Engine,
    linker: &Linker<HostState>,
    source: &Path,
) -> Result<ServicePre<HostState>> {
    let component = load(engine, source)?;
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

fn load(engine: &Engine, source: &Path) -> Result<Component> {
    if !source.is_file() {
        bail!(
            "cannot load component {}: no such file (build it with `chat-host build`)",
            source.display()
        );
    }
    // Not an ELF file (a `.wasm`) reads as `Err`: compile it.
    match Engine::detect_precompiled_file(source) {
        Ok(Some(Precompiled::Component)) => {
            // SAFETY: wasmtime runs a precompiled file's machine code as it
            // is; these are the app's own files, written by `chat-host
            // precompile`, and wasmtime first checks that they were made by
            // this wasmtime version, with these settings, for this CPU.
            unsafe { Component::deserialize_file(engine, source) }
                .map_err(anyhow_error)
                .with_context(|| {
                    format!(
                        "{} was precompiled by another chat-host build or for another CPU; \
                         precompile it again with this chat-host (`chat-host precompile`)",
                        source.display()
                    )
                })
        }
        Ok(Some(Precompiled::Module)) => bail!(
            "{} is a precompiled core module, not a component",
            source.display()
        ),
        Ok(None) | Err(_) => compile(engine, source),
    }
}

#[cfg(feature = "compiler")]
fn compile(engine: &Engine, source: &Path) -> Result<Component> {
    Component::from_file(engine, source)
        .map_err(anyhow_error)
        .with_context(|| format!("cannot compile component {}", source.display()))
}

#[cfg(not(feature = "compiler"))]
fn compile(_engine: &Engine, source: &Path) -> Result<Component> {
    bail!(
        "cannot load component {}: this chat-host is built without a compiler and loads only \
         components precompiled by `chat-host precompile` (deploy/databricks/build.sh does)",
        source.display()
    )
}
