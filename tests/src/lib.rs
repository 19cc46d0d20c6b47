//! The test harness: a real PostgreSQL started from the system binaries, and
//! the real `chat-host` binary serving the real components on a free port.

pub mod browser;
pub mod contract;
pub mod database;
pub mod event_stream;
pub mod host;
pub mod upstream;

use std::path::PathBuf;

/// The repository root (where spin.toml lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
