//! The wasmtime engine, the linker that gives guests every capability, and
//! loading a component with them.
//!
//! One configuration serves every build: the engine that compiles
//! components as chat-host starts, the precompiler that writes them ahead of
//! time, and the compiler-free engine of a serving build that only loads
//! what the precompiler wrote. wasmtime refuses a precompiled component whose
//! engine settings differ from the loading engine's, so they must not.

use crate::state::HostState;
use crate::{key_value, postgres, variables};
use anyhow::{Context, Result, bail};
use std::path::Path;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Precompiled};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// Upper bounds for the pooling allocator: slots are reserved up front and
/// reused, so instantiation does no mmap work on the request path.
const MAX_INSTANCES: u32 = 1_000;
const MAX_GUEST_MEMORY_BYTES: usize = 256 << 20;

/// The CPU that precompiled components are compiled for: x86-64-v2 (SSE4.2,
/// POPCNT, CMPXCHG16B), which every x86-64 server of the last decade has,
/// named here rather than detected on the machine that builds the upload.
#[cfg(feature = "compiler")]
pub const PRECOMPILED_TARGET: &str = "x86_64-unknown-linux-gnu";
#[cfg(feature = "compiler")]
pub const PRECOMPILED_CPU: &str = "x86-64-v2";

/// The engine that serves: it compiles components for this machine's CPU
/// when the build has a compiler, and loads precompiled ones in any build.
pub fn engine() -> Result<Engine> {
    Engine::new(&configuration()).map_err(anyhow_error)
}

/// The engine that precompiles components for [`PRECOMPILED_CPU`]: the
/// serving configuration with the target named instead of detected.
#[cfg(feature = "compiler")]
pub fn precompiler() -> Result<Engine> {
    let mut config = configuration();
    config.target(PRECOMPILED_TARGET).map_err(anyhow_error)?;
    // SAFETY: a CPU preset only narrows the instructions Cranelift may
    // emit; wasmtime checks at load time that the CPU running an artifact
    // has every feature the preset enabled.
    unsafe { config.cranelift_flag_enable(PRECOMPILED_CPU) };
    Engine::new(&config).map_err(anyhow_error)
}

fn configuration() -> Config {
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(MAX_INSTANCES)
        .total_core_instances(MAX_INSTANCES * 8)
        .total_memories(MAX_INSTANCES * 2)
        .total_tables(MAX_INSTANCES * 4)
        .max_memory_size(MAX_GUEST_MEMORY_BYTES)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(16);
    let mut config = Config::new();
    config
        .wasm_component_model_async(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    config
}

/// Everything a chat-history component may import (see `wit/world.wit`).
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // spin-sdk 7 guests built for wasm32-wasip2 still import some WASI 0.2
    // interfaces (e.g. wasi:io/poll) next to the 0.3 ones.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow_error)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(anyhow_error)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(anyhow_error)?;
    postgres::add_to_linker(&mut linker).map_err(anyhow_error)?;
    key_value::add_to_linker(&mut linker).map_err(anyhow_error)?;
    variables::add_to_linker(&mut linker).map_err(anyhow_error)?;
    Ok(linker)
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

/// wasmtime 48's error type is not anyhow's; keep its full chain.
pub fn anyhow_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn what_the_precompiler_writes_the_serving_engine_loads() {
        let compiled = precompiler()
            .unwrap()
            .precompile_component(EMPTY_COMPONENT)
            .unwrap();
        // SAFETY: the bytes were just written by our own precompiler.
        unsafe { Component::deserialize(&engine().unwrap(), &compiled) }.unwrap();
    }

    #[test]
    fn an_artifact_needing_a_cpu_feature_this_cpu_lacks_is_refused_naming_it() {
        // Cranelift's name of a feature, and whether this CPU has it.
        let features = [
            (
                "has_avx_vnni",
                std::arch::is_x86_feature_detected!("avxvnni"),
            ),
            (
                "has_avx512vbmi",
                std::arch::is_x86_feature_detected!("avx512vbmi"),
            ),
            (
                "has_avx512bitalg",
                std::arch::is_x86_feature_detected!("avx512bitalg"),
            ),
            ("has_avx2", std::arch::is_x86_feature_detected!("avx2")),
        ];
        let (flag, present) = features
            .iter()
            .copied()
            .find(|(_, present)| !present)
            .unwrap_or(features[0]);
        let mut config = configuration();
        config.target(PRECOMPILED_TARGET).unwrap();
        // SAFETY: the artifact is only ever loaded by the check below.
        unsafe { config.cranelift_flag_enable(flag) };
        let compiled = Engine::new(&config)
            .unwrap()
            .precompile_component(EMPTY_COMPONENT)
            .unwrap();
        // SAFETY: our own precompiler's bytes; wasmtime checks the CPU first.
        let loaded = unsafe { Component::deserialize(&engine().unwrap(), &compiled) };
        match loaded {
            // A CPU with every one of them runs what needs any of them.
            Ok(_) => assert!(present, "{flag} is missing here, yet the artifact loaded"),
            Err(refusal) => {
                assert!(!present, "{flag} is here, yet: {refusal:?}");
                assert!(format!("{refusal:?}").contains(flag), "{refusal:?}");
            }
        }
    }
}
