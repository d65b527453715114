# Sourced by the integration tests: common environment and helpers.
: "${RAGD_BIN:?RAGD_BIN must point at the ragd binary}"
: "${RAGD_SHARED:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared}"
export RAGD_SHARED
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ragd-it-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $(basename "$0")"; exit 0; }
# free_port: print a loopback TCP port that is free now
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http URL [seconds]: poll until URL answers 200
wait_http() {
  local url=$1 t=${2:-60} i=0
  while [ $i -lt $((t * 10)) ]; do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.1; i=$((i + 1))
  done
  return 1
}
