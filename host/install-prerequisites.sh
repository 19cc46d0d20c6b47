#!/usr/bin/env bash
# Installs what chat-host needs on a fresh Debian/Ubuntu machine: the
# wasm32-wasip2 Rust target (for the components) and the PostgreSQL server
# binaries (for the database chat-host manages when db_url is unset).
# Safe to run again: it only installs what is missing.
set -euo pipefail

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is missing: install the 'postgresql' package, or set SPIN_VARIABLE_DB_URL" >&2
    exit 1
  fi
fi
