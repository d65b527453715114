#!/usr/bin/env bash
# Install every Debian package ragd needs. Idempotent: when everything is present it does
# nothing (no apt-get update, no network). Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang clang-format curl ca-certificates python3 python3-numpy
  libmicrohttpd-dev libcurl4-openssl-dev libcjson-dev libsqlite3-dev libpcre2-dev
  libutf8proc-dev libopenblas-dev libcmocka-dev libyaml-dev
  nodejs npm # the official openai npm client is tested against ragd serve
  chromium fonts-wqy-microhei # the chat page's browser test (tests/e2e)
)
# The chat page's browser test (headless chromium driven by playwright-core from npm) runs in
# `make test`, so chromium and a CJK font (readable screenshots) are regular packages; --e2e
# is kept for callers that used it.
E2E_PKGS=(chromium fonts-wqy-microhei)

want=("${PKGS[@]}")
[ "${1:-}" = "--e2e" ] && want+=("${E2E_PKGS[@]}")

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# node/npm may come from outside Debian (e.g. nodesource): accept any working node + npm.
if [ ${#missing[@]} -gt 0 ] && command -v node >/dev/null && command -v npm >/dev/null; then
  keep=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || [ "$p" = npm ] || keep+=("$p"); done
  missing=("${keep[@]+"${keep[@]}"}")
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
