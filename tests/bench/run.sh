#!/usr/bin/env bash
# The benchmark suite: builds chat-host, the components and chat-bench in
# release, then runs every benchmark and prints the tables (also written to
# target/bench/results.md). Takes about 10 minutes; --quick (a tenth of the
# data, short runs) about 3. --profile also samples chat-host with perf
# under the history load and through each of its stream runs (reports in
# target/bench/perf-<load>-by-{dso,symbol}.txt). When a Spin
# CLI is found (SPIN_BIN, PATH, or ../shared/tools/spin/spin) the same
# components are measured under `spin up` too; --without-spin leaves it out.
# When node and npm are found, the seed's own Node app on the real AppKit
# 0.38.1 (../shared/anchors/appkit-reference, or CHAT_BENCH_APPKIT_SOURCE)
# is copied to target/bench/appkit-reference, its locked dependencies are
# installed there (npm ci), and the throughput table measures it too;
# --without-appkit leaves it out.
#
#   bash tests/bench/run.sh [--quick] [--profile] [--without-spin] [--without-appkit]
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

# The seed's app for the AppKit column. The reference folder is read-only,
# so it runs from a writable copy; the copy and its node_modules are reused
# while its files match the reference's. chat-bench starts the copy found in
# CHAT_BENCH_APPKIT_DIR, or prints CHAT_BENCH_APPKIT_SKIPPED: why there is none.
appkit_not_prepared() {
    export CHAT_BENCH_APPKIT_SKIPPED="$1"
    echo "AppKit reference: not prepared, $1"
}
prepare_appkit() {
    local source="${CHAT_BENCH_APPKIT_SOURCE:-../shared/anchors/appkit-reference}"
    local copy=target/bench/appkit-reference
    local log=target/bench/appkit-npm-ci.log
    local done_stamp="$copy/node_modules/.chat-bench-npm-ci-done"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        appkit_not_prepared "node and npm were not found (the seed's app needs node >= 20 and npm)"
        return
    fi
    local node_major
    node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    if (( node_major < 20 )); then
        appkit_not_prepared "node $(node --version) is older than the seed's app needs (node >= 20)"
        return
    fi
    if [[ ! -f $source/package-lock.json || ! -f $source/start-ref.sh ]]; then
        appkit_not_prepared "no AppKit reference at $source (set CHAT_BENCH_APPKIT_SOURCE to its folder)"
        return
    fi
    mkdir -p target/bench
    if [[ -f $done_stamp ]] && diff -rq -x node_modules -x run "$source" "$copy" >/dev/null 2>&1; then
        echo "AppKit reference: reusing $copy (the files of $source, npm ci done)"
    else
        echo "AppKit reference: copying $source to $copy and running npm ci (log: $log)"
        if [[ -e $copy ]]; then
            chmod -R u+w "$copy" && rm -rf "$copy"
        fi
        if ! { cp -R "$source" "$copy" && chmod -R u+w "$copy"; }; then
            appkit_not_prepared "copying $source to $copy failed"
            return
        fi
        if ! (cd "$copy" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
            appkit_not_prepared "npm ci failed in $copy (see $log)"
            return
        fi
        touch "$done_stamp"
    fi
    export CHAT_BENCH_APPKIT_DIR="$PWD/$copy"
}
unset CHAT_BENCH_APPKIT_DIR CHAT_BENCH_APPKIT_SKIPPED
if [[ " $* " == *" --without-appkit "* ]]; then
    echo "AppKit reference: not prepared, --without-appkit was given"
else
    prepare_appkit
fi

cargo build --release -p chat-host -p chat-bench
target/release/chat-host build --from spin.toml
exec target/release/chat-bench "$@"
