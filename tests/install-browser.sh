#!/usr/bin/env bash
# Installs what the browser suite (tests/integration/browser.rs) drives: a
# headless Chromium and its chromedriver, from the Debian packages. Safe to
# run again: it only installs what is missing.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi

packages=(chromium chromium-driver)
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
elif command -v sudo >/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
else
  echo "The browser suite needs Chromium: install the 'chromium' and 'chromium-driver' packages" >&2
  exit 1
fi
