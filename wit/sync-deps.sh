#!/usr/bin/env bash
# Copies the WIT packages our world depends on from the spin-sdk crate that the
# components are built with, so guests and host agree on every interface.
# Run after changing the spin-sdk version; `cargo test -p chat-host` checks the
# copy is current (wit_deps_match_spin_sdk).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sdk_dir=$(cargo metadata --format-version 1 --manifest-path "$here/../Cargo.toml" \
  | python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="spin-sdk").rsplit("/",1)[0])')
packages=(spin-postgres@4.2.0 spin-key-value@3.0.0 spin-variables@3.0.0)
rm -rf "$here/deps"
mkdir -p "$here/deps"
for p in "${packages[@]}"; do
  cp -r "$sdk_dir/wit/deps/$p" "$here/deps/$p"
done
echo "wit/deps: copied ${packages[*]} from $sdk_dir"
