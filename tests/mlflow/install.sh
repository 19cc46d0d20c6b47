#!/usr/bin/env bash
# Makes (or reuses) the Python virtual environment with real MLflow that the
# integration tests run against, and prints its absolute path on stdout;
# everything else goes to stderr.
#
#   venv=$(bash tests/mlflow/install.sh)
#   "$venv/bin/mlflow" server ...; "$venv/bin/python" tests/mlflow/agent.py ...
#
# The venv is cached at
#   ${CHAT_TEST_CACHE:-$HOME/.cache/chat-history}/mlflow-venv-<first 16 hex of
#   sha256(requirements.txt)>
# and reused once the marker inside says its install completed. It is built
# under an exclusive flock (two runs at once: the second waits, then reuses).
# A venv holds its own absolute path (script shebangs, compiled files), so it
# cannot be moved once built: it is built in a fresh directory beside the
# cache path and only then published by renaming a symlink at that path onto
# it; an interrupted build is never published, and is removed on the next run.
#
# Packages come only from requirements.txt, every one pinned and hashed
# (pip --require-hashes --no-deps, wheels only). Any failure exits non-zero
# with the reason on stderr; nothing is skipped.
# CHAT_TEST_PYTHON picks the interpreter (default python3; must be 3.11, the
# version requirements.txt is compiled for).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements="$here/requirements.txt"
python=${CHAT_TEST_PYTHON:-python3}
log() { echo "mlflow install: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -f "$requirements" ] || die "missing $requirements"
digest=$(sha256sum "$requirements" | cut -c1-64)
cache=${CHAT_TEST_CACHE:-$HOME/.cache/chat-history}
marker=".chat-history-install-complete"

mkdir -p "$cache" || die "cannot create $cache"
cache=$(cd "$cache" && pwd)
venv="$cache/mlflow-venv-${digest:0:16}"

complete() { [ -f "$venv/$marker" ] && [ "$(cat "$venv/$marker")" = "$digest" ]; }

# Fast path, no lock: the marker is written last and published atomically.
if complete; then
  echo "$venv"
  exit 0
fi

exec 9>"$venv.lock" || die "cannot open lock file $venv.lock"
log "waiting for the install lock $venv.lock"
flock 9 || die "cannot lock $venv.lock"
if complete; then # another run built it while we waited
  echo "$venv"
  exit 0
fi

# Leftovers of interrupted builds (we hold the lock: none is in progress).
for old in "$venv".build.*; do
  [ -e "$old" ] || continue
  log "removing an unfinished build: $old"
  rm -rf "$old"
done
# A real directory here (not our symlink) was not made by this script.
if [ -e "$venv" ] && [ ! -L "$venv" ]; then
  die "$venv exists but is not a symlink made by this script; remove it"
fi

version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) ||
  die "cannot run '$python' (set CHAT_TEST_PYTHON to a CPython 3.11)"
[ "$version" = "3.11" ] ||
  die "'$python' is Python $version; requirements.txt is compiled for CPython 3.11 (set CHAT_TEST_PYTHON)"

# python3 -m venv needs ensurepip, which Debian ships apart in python3-venv.
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  log "'$python -m venv' is unavailable; installing python3-venv with apt-get"
  [ "$(id -u)" -eq 0 ] || die "python3-venv is missing and we are not root to apt-get install it"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python3-venv" "python$version-venv" >&2 ||
    die "apt-get install python3-venv failed"
  "$python" -c 'import ensurepip, venv' 2>/dev/null || die "'$python -m venv' still unavailable"
fi

build=$(mktemp -d "$venv.build.XXXXXX") || die "cannot create a build directory in $cache"
chmod 755 "$build" # mktemp makes it private
trap 'rm -rf "$build" "$venv.link.$$"' EXIT
started=$(date +%s)
log "building $build (from $requirements)"
"$python" -m venv "$build" >&2 || die "'$python -m venv $build' failed"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$build/bin/python" -m pip install --no-input \
  --require-hashes --no-deps --only-binary=:all: -r "$requirements" >&2 ||
  die "pip install -r $requirements failed (see above)"
"$build/bin/python" -m pip check >&2 || die "pip check found inconsistent packages"
"$build/bin/python" -c 'import mlflow.genai.agent_server, mlflow.server' >&2 ||
  die "the installed MLflow does not import"
echo "$digest" >"$build/$marker"

# Publish: point the cache path at the finished build, atomically.
ln -s "$build" "$venv.link.$$"
mv -T "$venv.link.$$" "$venv"
trap - EXIT
log "installed in $(($(date +%s) - started))s: $venv -> $(readlink "$venv")"
echo "$venv"
