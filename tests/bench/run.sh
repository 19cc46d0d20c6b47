#!/usr/bin/env bash
# The benchmark suite: builds chat-host, the components and chat-bench in
# release, then runs every benchmark and prints the tables (also written to
# target/bench/results.md). Takes about 10 minutes; --quick (a tenth of the
# data, short runs) about 3. --profile also samples chat-host with perf
# under the history load (reports in target/bench/perf-*.txt). When a Spin
# CLI is found (SPIN_BIN, PATH, or ../shared/tools/spin/spin) the same
# components are measured under `spin up` too; --without-spin leaves it out.
#
#   bash tests/bench/run.sh [--quick] [--profile] [--without-spin]
set -euo pipefail
cd "$(dirname "$0")/../.."

bash host/install-prerequisites.sh
if [[ " $* " == *" --profile "* ]] && ! command -v perf >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update && $sudo apt-get install -y linux-perf
fi

# 1,000 streams at once hold about 2,000 sockets in the benchmark and as
# many in the host: raise the open-files limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
if [[ $(ulimit -n) != unlimited ]] && (( $(ulimit -n) < 8192 )); then
    echo "warning: open files limited to $(ulimit -n); the 1,000-stream run may fail" >&2
fi

cargo build --release -p chat-host -p chat-bench
target/release/chat-host build --from spin.toml
exec target/release/chat-bench "$@"
