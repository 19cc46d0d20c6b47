#!/usr/bin/env bash
# Installs the programs the integration suites start beside the app, from the
# Debian packages: a headless Chromium and its chromedriver (the browser
# suite), redis-server (the shared key-value store of several replicas) and
# nginx (the load balancer in front of them).
# Safe to run again: it only installs what is missing.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "The integration suites need these Debian packages: ${missing[*]}" >&2
  exit 1
fi
