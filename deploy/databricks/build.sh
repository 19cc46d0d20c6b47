#!/usr/bin/env bash
# Writes the folder a Databricks App is deployed from:
#
#   bash deploy/databricks/build.sh OUT_DIR
#
#   OUT_DIR/app.yaml          how the platform starts the app
#   OUT_DIR/start.sh          what app.yaml runs
#   OUT_DIR/bin/chat-host.gz  chat-host without a compiler (the `upload`
#                             profile), gzipped: start.sh unpacks it
#   OUT_DIR/spin.toml         the manifest, pointing at ...
#   OUT_DIR/components/*.cwasm  the components, precompiled for x86-64-v2
#
# Every file stays under the platform's 10 MB limit; the script fails if one
# does not. Run it on x86-64 Linux with glibc no newer than the platform's
# (Ubuntu 22.04: 2.35). OUT_DIR is created; if it holds a folder this script
# wrote before, that is replaced; anything else there is refused.
set -euo pipefail

out=${1:?usage: bash deploy/databricks/build.sh OUT_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/deploy/databricks
# Databricks documents the limit in MB: 10,000,000 bytes, the stricter reading.
limit_bytes=10000000

if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
    if [ ! -f "$out/app.yaml" ] || [ ! -f "$out/bin/chat-host.gz" ]; then
        echo "build.sh: $out is not empty and not an upload folder this script wrote; refusing to replace it" >&2
        exit 1
    fi
    rm -rf "$out"
fi
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)

cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}

echo "== the components, built and precompiled by chat-host with its compiler"
cargo build --quiet -p chat-host
"$target/debug/chat-host" build --from spin.toml
"$target/debug/chat-host" precompile --from spin.toml --out "$out"

echo "== chat-host without a compiler"
cargo build --quiet -p chat-host --no-default-features --profile upload
gzip -9 -c "$target/upload/chat-host" > "$out/bin/chat-host.gz"
cp "$here/app.yaml" "$here/start.sh" "$out/"

echo "== $out"
too_big=0
while IFS= read -r -d '' file; do
    size=$(stat -c %s "$file")
    printf '%10d  %s\n' "$size" "${file#"$out"/}"
    if [ "$size" -gt "$limit_bytes" ]; then
        echo "build.sh: ${file#"$out"/} is over the 10 MB limit of a Databricks App file" >&2
        too_big=1
    fi
done < <(find "$out" -type f -print0 | sort -z)
exit "$too_big"
