#!/usr/bin/env bash
# Runs every test suite: unit tests of the pure crates, and the integration
# suites against a real PostgreSQL and the real chat-host serving the real
# components. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash host/install-prerequisites.sh
# Chromium and chromedriver, for the browser suite.
bash tests/install-browser.sh

# The chat-host binary the integration suites start, built with the same
# members (and so the same features) as `cargo test` below, so nothing is
# compiled twice; then the components, with their spin.toml build commands.
cargo build
target/debug/chat-host build --from spin.toml
target/debug/chat-host build --from tests/fixtures/probe.spin.toml
# Default members: the natively testable crates (see Cargo.toml).
cargo test "$@"
