#!/usr/bin/env bash
# The chat page in a real browser: headless Debian chromium driven by playwright-core
# (tests/e2e/chat_page.mjs) against a real `ragd serve` over a small ingested CMRC corpus.
# Asks a question, sees the answer stream in and the sources with their text, checks stage
# timings and tok/s, and saves a phone-sized screenshot ($RAGD_E2E_SHOT, default in the
# build directory). Needs `scripts/setup.sh --e2e` (chromium, nodejs, npm); playwright-core
# is installed with npm into tests/e2e/node_modules (git-ignored) on first use.
set -u
. "$(dirname "$0")/lib.sh"
E2E="$RAGD_SOURCE_DIR/tests/e2e"
CHROMIUM=${RAGD_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ] || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "SKIP: chromium / node / npm missing (run scripts/setup.sh --e2e)"; exit 77
fi
if [ ! -d "$E2E/node_modules/playwright-core" ]; then
  (cd "$E2E" && npm ci --no-audit --no-fund --silent) >"$TMP/npm.log" 2>&1 \
    || { cat "$TMP/npm.log"; echo "SKIP: npm could not install playwright-core"; exit 77; }
fi
MODEL="$RAGD_SHARED/models/qwen2-tiny"
EMBED="$RAGD_SHARED/models/bert-tiny"
DATA="$RAGD_SHARED/data/cmrc2018"
head -n 20 "$DATA/corpus.jsonl" >"$TMP/small.jsonl"
"$RAGD_BIN" ingest --kb "$TMP/web.kb" --index cmrc --embed-model "$EMBED" "$TMP/small.jsonl" \
  >"$TMP/ingest.log" 2>&1 || { cat "$TMP/ingest.log"; fail "ingest failed"; }
PORT=$(free_port)
"$RAGD_BIN" serve --model "$MODEL" --embed-model "$EMBED" --kb "$TMP/web.kb" --port "$PORT" \
  >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT/health" 120 || { tail -20 "$TMP/serve.log"; fail "server did not start"; }
SHOT=${RAGD_E2E_SHOT:-${RAGD_BUILD_DIR:-$TMP}/chat_page.png}
# The first passage (CTX_0) answers this question; its text must be among the sources.
RAGD_E2E_QUESTION="《战国无双3》是由哪两个公司合作开发的？" RAGD_E2E_SOURCE="光荣和ω-force" \
  node "$E2E/chat_page.mjs" "http://127.0.0.1:$PORT" "$SHOT" || { tail -20 "$TMP/serve.log"; fail "browser test failed"; }
[ -s "$SHOT" ] || fail "no screenshot"
echo "screenshot: $SHOT"
pass
