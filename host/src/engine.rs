//! The wasmtime engine and the linker that gives guests every capability.

use crate::state::HostState;
use crate::{key_value, postgres, variables};
use anyhow::Result;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Upper bounds for the pooling allocator: slots are reserved up front and
/// reused, so instantiation does no mmap work on the request path.
const MAX_INSTANCES: u32 = 1_000;
const MAX_GUEST_MEMORY_BYTES: usize = 256 << 20;

pub fn engine() -> Result<Engine> {
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
    Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Everything a chat-history component may import (see `wit/world.wit`).
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // spin-sdk 7 guests built for wasm32-wasip2 still import some WASI 0.2
    // interfaces (e.g. wasi:io/poll) next to the 0.3 ones.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow_error)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(anyhow_error)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(anyhow_error)?;
    postgres::add_to_linker(&mut linker)?;
    key_value::add_to_linker(&mut linker)?;
    variables::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// wasmtime 48's error type is not anyhow's; keep its full chain.
pub fn anyhow_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:?}")
}
