#!/usr/bin/env bash
# Runs every test suite: unit tests of the pure crates, and the integration
# suites against a real PostgreSQL and the real chat-host serving the real
# components. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash host/install-prerequisites.sh

# The components (wasm32-wasip2, as spin.toml's build commands make them) and
# the host binary the integration suites start.
cargo build -p chat-host
target/debug/chat-host build --from spin.toml
target/debug/chat-host build --from tests/fixtures/outbound.spin.toml
# Default members: the natively testable crates (see Cargo.toml).
cargo test "$@"
