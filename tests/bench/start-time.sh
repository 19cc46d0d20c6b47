#!/usr/bin/env bash
# How long chat-host takes from its start to the first answer of
# GET /api/session, for each way it can start (BENCHMARKS.md "Start-up"):
#
#   bash tests/bench/start-time.sh [RUNS]      (default 7 runs of each)
#
#   compiling   chat-host with its compiler (release), compiling every
#               component from its .wasm, as `chat-host up` does in a checkout
#   precompiled chat-host without a compiler (release), loading the
#               components `chat-host precompile` wrote (the image, Kubernetes)
#   app folder  the Databricks App folder (deploy/databricks/build.sh), by
#               its start.sh: unpacking the gzipped server (the `upload`
#               profile), then the same precompiled components
#
# Each against the same PostgreSQL (a throwaway cluster started here, so the
# managed local database's own start is not in the figure), one serving
# thread per core. Prints each run's milliseconds and each way's median.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-7}
target=${CARGO_TARGET_DIR:-$PWD/target}
work=$(mktemp -d -t chat-start-time.XXXXXX)
cleanup() {
    [ -n "${pg_pid:-}" ] && kill "$pg_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building (release with and without the compiler, the app folder)"
cargo build --quiet --release -p chat-host
cp "$target/release/chat-host" "$work/chat-host-compiling"
cargo build --quiet --release -p chat-host --no-default-features
cp "$target/release/chat-host" "$work/chat-host-precompiled"
"$work/chat-host-compiling" build --from spin.toml >/dev/null
"$work/chat-host-compiling" precompile --from spin.toml --out "$work/precompiled" >/dev/null
bash deploy/databricks/build.sh "$work/app-folder" >/dev/null

echo "== a PostgreSQL for all of them"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
runas=()
[ "$(id -u)" = 0 ] && runas=(runuser -u postgres --)
mkdir -p "$work/pg" && chmod 777 "$work" && chown "$([ "$(id -u)" = 0 ] && echo postgres || id -un)" "$work/pg"
"${runas[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${runas[@]}" "$pg_bin/postgres" -D "$work/pg" -p "$pg_port" -k "$work/pg" -c listen_addresses=127.0.0.1 >"$work/pg.log" 2>&1 &
pg_pid=$!
until "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; do sleep 0.05; done
db_url="postgres://postgres@127.0.0.1:$pg_port/postgres"

# One start: milliseconds from exec to the first 200 of /api/session.
# Either `binary manifest` (chat-host up) or `app-folder DIR` (its start.sh,
# which unpacks the server first, as on Databricks Apps).
start_once() {
    local port began answered host
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    began=$(date +%s%N)
    if [ "$1" = app-folder ]; then
        (cd "$2" && exec env DATABRICKS_APP_PORT="$port" SPIN_VARIABLE_DB_URL="$db_url" \
            sh start.sh) >"$work/host.log" 2>&1 &
    else
        SPIN_VARIABLE_DB_URL=$db_url "$1" up --from "$2" --listen "127.0.0.1:$port" \
            >"$work/host.log" 2>&1 &
    fi
    host=$!
    until curl -sf -o /dev/null -H "x-forwarded-email: bench@localhost" \
        "http://127.0.0.1:$port/api/session"; do
        if ! kill -0 "$host" 2>/dev/null; then cat "$work/host.log" >&2; exit 1; fi
    done
    answered=$(date +%s%N)
    kill "$host"; wait "$host" 2>/dev/null || true
    echo $(( (answered - began) / 1000000 ))
}

measure() {
    local name=$1 times=()
    shift
    start_once "$@" >/dev/null   # warm-up: file cache, schema
    for _ in $(seq "$runs"); do times+=("$(start_once "$@")"); done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    printf '%-12s median %5d ms   runs: %s\n' "$name" "$median" "${times[*]}"
}

echo "== start to the first answer of GET /api/session ($runs runs each)"
measure compiling "$work/chat-host-compiling" spin.toml
measure precompiled "$work/chat-host-precompiled" "$work/precompiled/spin.toml"
measure "app folder" app-folder "$work/app-folder"
