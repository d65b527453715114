#!/usr/bin/env bash
# The main job. Grows with the project: today it reports the machine and the test models
# ragd will serve (and measures the machine's ceilings with --bench).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RAGD_BIN:-build/ragd}
"$BIN" info --bench
