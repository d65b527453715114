#!/usr/bin/env bash
# The ragd binary: help lists subcommands, unknown subcommands are usage errors, info runs.
set -u
. "$(dirname "$0")/lib.sh"

out=$("$RAGD_BIN" help) || fail "ragd help failed"
echo "$out" | grep -q "info" || fail "help does not list info"

"$RAGD_BIN" no-such-command >/dev/null 2>"$TMP/err"; rc=$?
[ "$rc" -eq 2 ] || fail "unknown subcommand exit code $rc, want 2"
grep -q "usage" "$TMP/err" || fail "unknown subcommand prints no usage on stderr"

"$RAGD_BIN" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no subcommand should exit 2"
"$RAGD_BIN" info --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad option should exit 2"

"$RAGD_BIN" info >"$TMP/info" || fail "ragd info failed"
grep -q "qwen2-tiny" "$TMP/info" || fail "info does not report shared models"
"$RAGD_BIN" info --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "n_cpus" in d' \
  || fail "info --json is not JSON"
pass
