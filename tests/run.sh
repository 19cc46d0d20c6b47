#!/usr/bin/env bash
# Runs every test suite: unit tests of the pure crates, the integration
# suites against a real PostgreSQL and the real chat-host serving the real
# components, the resilience suite again with every core busy, then the same
# suites again under the real Spin CLI with the same .wasm files (when a
# `spin` is found). Installs what is missing first.
#
# Spin is found through SPIN_BIN, then `spin` on PATH, then
# ../shared/tools/spin/spin beside the repository. CHAT_REQUIRE_SPIN=1 makes
# a missing Spin, or a Spin pass that ran no test, a failure. Where
# SPIN_PASS_REPORT names a file, the Spin pass writes how many tests passed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash host/install-prerequisites.sh
# Chromium and chromedriver (the browser suite), redis-server (shared stores).
bash tests/install-test-tools.sh

# The chat-host binary the integration suites start, built with the same
# members (and so the same features) as `cargo test` below, so nothing is
# compiled twice; then the components, with their spin.toml build commands.
cargo build
# The benchmark is no default member (it needs a release build to mean
# anything), but it must keep compiling against the domain it measures.
cargo build -p chat-bench
target/debug/chat-host build --from spin.toml
target/debug/chat-host build --from tests/fixtures/probe.spin.toml
# Default members: the natively testable crates (see Cargo.toml).
cargo test "$@"
# The fault scenarios (database, MLflow and replica failures) once more with every
# core kept busy by the harness, as on a loaded CI machine: they wait on
# events, not on time, so they must pass there too.
CHAT_TEST_CPU_HOG="$(nproc)" cargo test -p chat-tests --test resilience --test feedback --test cluster "$@"

# The Spin pass: every suite that starts the app, under `spin up`, minus the
# scenarios only chat-host can play (modules named chat_host_only: Spin's
# Postgres pool has no timeouts to test), and `spin build`.
spin="${SPIN_BIN:-}"
if [ -z "$spin" ]; then
  spin="$(command -v spin || true)"
fi
if [ -z "$spin" ] && [ -x ../shared/tools/spin/spin ]; then
  spin="$(cd ../shared/tools/spin && pwd)/spin"
fi
if [ -z "$spin" ]; then
  if [ "${CHAT_REQUIRE_SPIN:-0}" = 1 ]; then
    echo "Spin pass: CHAT_REQUIRE_SPIN=1 but no Spin CLI was found (SPIN_BIN, PATH, ../shared/tools/spin/spin)" >&2
    exit 1
  fi
  echo "Spin pass: SKIPPED, no Spin CLI found (set SPIN_BIN or put spin on PATH to run it)"
  exit 0
fi
echo "Spin pass: $("$spin" --version) at $spin"
spin_log="$(mktemp -t chat-spin-pass.XXXXXX)"
CHAT_TEST_RUNTIME=spin SPIN_BIN="$spin" cargo test -p chat-tests \
  --test spin_cli --test foundation --test api --test capabilities \
  --test contract --test chat --test feedback --test resilience --test browser \
  -- --skip chat_host_only:: 2>&1 | tee "$spin_log"
passed="$(awk '/^test result: ok\./ { sum += $4 } END { print sum + 0 }' "$spin_log")"
rm -f "$spin_log"
echo "Spin pass: $passed tests passed under spin up"
if [ -n "${SPIN_PASS_REPORT:-}" ]; then
  echo "$passed" > "$SPIN_PASS_REPORT"
fi
if [ "$passed" -eq 0 ]; then
  echo "Spin pass: no test ran under Spin" >&2
  exit 1
fi
