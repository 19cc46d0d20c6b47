//! The test harness: a real PostgreSQL started from the system binaries, and
//! the real `chat-host` binary serving the real components on a free port.

pub mod app_folder;
pub mod browser;
pub mod contract;
pub mod database;
pub mod event_stream;
pub mod file_store;
pub mod host;
pub mod metrics;
pub mod mlflow;
pub mod nginx;
pub mod process;
pub mod real_mlflow;
pub mod redis_server;
pub mod runtime;
pub mod seed;
pub mod solo;
pub mod sse;
pub mod turn;
pub mod upstream;
pub mod workspace;

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

/// Keeps every core busy while a suite runs, when `CHAT_TEST_CPU_HOG` names
/// how many busy threads to start (tests/run.sh runs the resilience suite so
/// once, as a shared, loaded CI machine would). Idempotent: the first call
/// starts the threads, which spin until the test binary exits.
pub fn start_cpu_hog_if_asked() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    let Some(threads) = std::env::var("CHAT_TEST_CPU_HOG")
        .ok()
        .and_then(|count| count.parse::<usize>().ok())
    else {
        return;
    };
    STARTED.call_once(|| {
        eprintln!("CPU hog: {threads} busy threads for the rest of this run");
        for _ in 0..threads {
            std::thread::spawn(|| {
                let mut spin = 0u64;
                loop {
                    spin = std::hint::black_box(spin.wrapping_add(1));
                }
            });
        }
    });
}
