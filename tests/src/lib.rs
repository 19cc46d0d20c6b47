//! The test harness: a real PostgreSQL started from the system binaries, and
//! the real `chat-host` binary serving the real components on a free port.

pub mod browser;
pub mod contract;
pub mod database;
pub mod event_stream;
pub mod host;
pub mod runtime;
pub mod solo;
pub mod upstream;

use std::path::PathBuf;

/// The repository root (where spin.toml lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Polls `check` until it answers `Some`, for at most `patience`; fails the
/// test naming `what` never happened.
pub async fn eventually<T>(
    what: &str,
    patience: std::time::Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened within {patience:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
