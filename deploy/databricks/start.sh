# Starts chat-history on Databricks Apps: app.yaml runs `sh start.sh` in the
# app's folder. chat-host arrives gzipped (bin/chat-host.gz), since no app
# file may exceed 10 MB and the server is larger (docs/databricks-apps.md
# says by how much, and why). It is unpacked into .chat-host/, beside the
# key-value store, and run from there; unpacking also gives it the
# executable bit an upload may drop.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
unpacked="$here/.chat-host/bin"
if ! mkdir -p "$unpacked"; then
    echo "start.sh: cannot write $unpacked: chat-host keeps its server and key-value store in the app's folder" >&2
    exit 1
fi
gzip -dc "$here/bin/chat-host.gz" > "$unpacked/chat-host.partial"
chmod +x "$unpacked/chat-host.partial"
mv -f "$unpacked/chat-host.partial" "$unpacked/chat-host"
exec "$unpacked/chat-host" up --from "$here/spin.toml"
