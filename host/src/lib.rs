//! chat-host: runs the chat-history Spin components natively on wasmtime,
//! with the capabilities they import provided by one module each.

pub mod app;
pub mod background;
pub mod build_command;
pub mod call_counts;
pub mod component;
pub mod databricks;
pub mod engine;
pub mod http_server;
pub mod instances;
pub mod key_value;
pub mod local_postgres;
pub mod metrics;
pub mod outbound_http;
pub mod postgres;
#[cfg(feature = "compiler")]
pub mod precompile;
pub mod probes;
pub mod runtime_config;
pub mod state;
pub mod up;
pub mod variables;
