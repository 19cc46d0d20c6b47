#!/usr/bin/env bash
# Runs every test suite: unit tests of the pure crates, the integration
# suites against a real PostgreSQL and the real chat-host serving the real
# components (the fault suites with every core busy), then the same suites
# again under the real Spin CLI with the same .wasm files (when a `spin` is
# found). Installs what is missing first, and prints the time each phase
# took.
#
# Spin is found through SPIN_BIN, then `spin` on PATH, then
# ../shared/tools/spin/spin beside the repository. CHAT_REQUIRE_SPIN=1 makes
# a missing Spin, or a Spin pass that ran no test, a failure. Where
# SPIN_PASS_REPORT names a file, the Spin pass writes how many tests passed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase's wall time, printed at the end (also when a phase fails).
phases=()
phase_started=$SECONDS
phase_name=""
begin_phase() {
  end_phase
  phase_name="$1"
  phase_started=$SECONDS
}
end_phase() {
  if [ -n "$phase_name" ]; then
    phases+=("$(printf '%6d s  %s' $((SECONDS - phase_started)) "$phase_name")")
    phase_name=""
  fi
}
print_phases() {
  end_phase
  echo "Time per phase:"
  printf '  %s\n' "${phases[@]}"
  printf '  %6d s  in all\n' "$SECONDS"
}
trap print_phases EXIT

# Every process the suites start (servers, browsers, agents) must be gone
# when they end, whatever their outcome; what ran before the run is no
# concern of ours.
started_by_tests='^(nginx|chat-host|spin|redis-server|postgres)$|^chrom'
pids_before_run=" $(ps -e -o pid= | tr -d ' ' | tr '\n' ' ') "
check_nothing_left_running() {
  local listing left="" waited=0
  # A killed group's members take a moment to be reaped.
  while :; do
    listing="$(ps -e -o pid=,comm=,args=)"
    left="$(awk -v before="$pids_before_run" -v pattern="$started_by_tests" \
      'index(before, " " $1 " ") == 0 && ($2 ~ pattern || $0 ~ /mlflow-venv/)' <<< "$listing")"
    if [ -z "$left" ] || [ "$waited" -ge 100 ]; then break; fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if [ -n "$left" ]; then
    echo "Processes the tests started are still running:" >&2
    echo "$left" >&2
    return 1
  fi
  echo "Nothing the tests started is left running."
}

begin_phase "install: PostgreSQL, Chromium, Redis, nginx, MLflow"
bash host/install-prerequisites.sh
# Chromium and chromedriver (the browser suite), redis-server (shared stores).
bash tests/install-test-tools.sh
# The real MLflow the feedback suite rates into, in a cached virtual
# environment (installed here once, so no test waits on it).
bash tests/mlflow/install.sh >/dev/null

begin_phase "build: chat-host, chat-bench, the components"
# The chat-host binary the integration suites start, built with the same
# members (and so the same features) as `cargo test` below, so nothing is
# compiled twice; then the components, with their spin.toml build commands.
cargo build
# The benchmark is no default member (it needs a release build to mean
# anything), but it must keep compiling against the domain it measures.
cargo build -p chat-bench
target/debug/chat-host build --from spin.toml
target/debug/chat-host build --from tests/fixtures/probe.spin.toml
begin_phase "build: the Databricks App folder"
# What deploy/databricks/build.sh writes (a chat-host without a compiler,
# precompiled components): the databricks suite starts and weighs it.
app_folder="$(mktemp -d -t chat-app-folder.XXXXXX)"
trap 'rm -rf "$app_folder"; print_phases' EXIT
bash deploy/databricks/build.sh "$app_folder"
export CHAT_TEST_APP_FOLDER="$app_folder"
begin_phase "test under chat-host"
# The fault scenarios (database, MLflow and replica failures) run once, in
# the next phase, with every core busy; every other suite runs here. The
# suites are read from tests/Cargo.toml, so a new one cannot be left out.
fault_suites=(resilience feedback cluster)
other_suites=()
for suite in $(awk '/^\[\[test\]\]/ { in_test = 1; next }
                   in_test && /^name *=/ { gsub(/[" ]/, "", $3); print $3; in_test = 0 }' tests/Cargo.toml); do
  case " ${fault_suites[*]} spin_cli " in
    *" $suite "*) ;;
    *) other_suites+=(--test "$suite") ;;
  esac
done
# Default members' unit tests (see Cargo.toml), then the other suites.
cargo test -p chat-contract -p chat-domain -p chat-guest -p demo-rules -p chat-host -p chat-manifest "$@"
cargo test -p chat-tests --lib "${other_suites[@]}" "$@"
begin_phase "fault suites, every core busy"
# The fault scenarios with every core kept busy by the harness, as on a
# loaded CI machine: they wait on events, not on time, so they must pass
# there (and so pass on an idle one).
fault_args=()
for suite in "${fault_suites[@]}"; do fault_args+=(--test "$suite"); done
CHAT_TEST_CPU_HOG="$(nproc)" cargo test -p chat-tests "${fault_args[@]}" "$@"

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
  check_nothing_left_running
  exit 0
fi
begin_phase "test under spin up"
echo "Spin pass: $("$spin" --version) at $spin"
spin_log="$(mktemp -t chat-spin-pass.XXXXXX)"
CHAT_TEST_RUNTIME=spin SPIN_BIN="$spin" cargo test -p chat-tests \
  --test spin_cli --test foundation --test api --test capabilities \
  --test contract --test chat --test feedback --test resilience --test browser --test transfer \
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
check_nothing_left_running
