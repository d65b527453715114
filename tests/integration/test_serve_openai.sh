#!/usr/bin/env bash
# The official `openai` npm package streams a chat completion and a completion from ragd serve.
# npm installs it once into $RAGD_SOURCE_DIR/.cache/npm-openai (ignored; reused by later runs).
. "$(dirname "$0")/lib.sh"
MODEL="$RAGD_SHARED/models/qwen2-tiny"
[ -d "$MODEL" ] || { echo "SKIP: $MODEL missing"; exit 0; }
command -v node >/dev/null && command -v npm >/dev/null || fail "node/npm missing (scripts/setup.sh installs them)"
SRC=${RAGD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE="$SRC/.cache/npm-openai"
if [ ! -f "$CACHE/node_modules/openai/package.json" ]; then
  mkdir -p "$CACHE"
  cp "$SRC/tests/npm/package.json" "$CACHE/"
  (cd "$CACHE" && npm install --no-audit --no-fund --loglevel=error >"$TMP/npm.log" 2>&1) \
    || { cat "$TMP/npm.log"; fail "npm install openai failed"; }
fi
cp "$SRC/tests/npm/openai_client.js" "$CACHE/"

"$RAGD_BIN" serve --model "$MODEL" --port 0 --port-file "$TMP/port" --threads 2 >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
i=0; while [ ! -s "$TMP/port" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
URL="http://127.0.0.1:$(cat "$TMP/port")"
wait_http "$URL/health" 120 || { cat "$TMP/serve.log"; fail "server not healthy"; }
node "$CACHE/openai_client.js" "$URL" qwen2-tiny || { tail -20 "$TMP/serve.log"; fail "openai client"; }
pass
