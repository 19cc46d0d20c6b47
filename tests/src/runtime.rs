//! Which runtime serves the app in the integration suites: chat-host (the
//! default) or the real Spin CLI, chosen by [`RUNTIME_VAR`]. The same test
//! code runs against both; `tests/run.sh` runs the suites once per runtime.

use std::path::PathBuf;

/// `chat-host` (default) or `spin`.
pub const RUNTIME_VAR: &str = "CHAT_TEST_RUNTIME";
/// The `spin` binary to use; otherwise `spin` on `PATH`, then the copy in
/// the workplace's `shared/tools/spin` beside the repository.
pub const SPIN_BIN_VAR: &str = "SPIN_BIN";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    ChatHost,
    Spin,
}

impl Runtime {
    /// The runtime [`RUNTIME_VAR`] names; a value it does not know fails the
    /// test run rather than silently testing the other runtime.
    pub fn selected() -> Self {
        match std::env::var(RUNTIME_VAR).as_deref().map(str::trim) {
            Err(_) | Ok("") | Ok("chat-host") => Runtime::ChatHost,
            Ok("spin") => Runtime::Spin,
            Ok(other) => panic!("{RUNTIME_VAR}={other}: expected `chat-host` or `spin`"),
        }
    }

    /// Whether the runtime answers a request with a header value that is
    /// not UTF-8 by itself, with an empty 500, before any component runs.
    /// Spin 4.1 does (its trigger copies every header into a `String`);
    /// the app never sees such a request, so it cannot answer it better.
    pub fn refuses_non_utf8_header_values(self) -> bool {
        self == Runtime::Spin
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::ChatHost => "chat-host",
            Runtime::Spin => "spin",
        }
    }
}

/// The `spin` binary: [`SPIN_BIN_VAR`], then `spin` on `PATH`, then
/// `../shared/tools/spin/spin` beside the repository. `None` when none exists.
pub fn find_spin() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os(SPIN_BIN_VAR).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(named));
    }
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("spin"))
            .collect::<Vec<_>>()
    });
    let beside_repo = crate::repo_root().join("../shared/tools/spin/spin");
    on_path
        .chain(std::iter::once(beside_repo))
        .find(|candidate| candidate.is_file())
}

/// The `spin` binary, or a failure that says how to provide one.
pub fn spin_binary() -> PathBuf {
    let spin = find_spin().unwrap_or_else(|| {
        panic!(
            "{RUNTIME_VAR}=spin but no Spin CLI was found: set {SPIN_BIN_VAR}, or put `spin` on PATH"
        )
    });
    assert!(
        spin.is_file(),
        "{SPIN_BIN_VAR}={} does not name a file",
        spin.display()
    );
    spin
}
