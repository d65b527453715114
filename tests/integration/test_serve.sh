#!/usr/bin/env bash
# ragd serve end to end with qwen2-tiny (f32 compute): golden greedy ids + logprobs, 32
# concurrent requests = each alone, streaming = non-streaming (chat, completions, stop strings,
# /text-generation), echo/n/prompt lists, client disconnect, 1,000 malformed requests, auth,
# preemption under a tiny KV cache, the bounded waiting queue.
. "$(dirname "$0")/lib.sh"
MODEL="$RAGD_SHARED/models/qwen2-tiny"
[ -d "$MODEL" ] || { echo "SKIP: $MODEL missing"; exit 0; }
CHECK="python3 $(dirname "$0")/serve_check.py"
NMAL=1000

start() { # start NAME ARGS... : start a server, sets URL
  local pf="$TMP/$1.port"; shift
  "$RAGD_BIN" serve --model "$MODEL" --port 0 --port-file "$pf" --threads 2 "$@" \
    >"$TMP/serve.$$.log" 2>&1 &
  PIDS+=($!)
  local i=0
  while [ ! -s "$pf" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  [ -s "$pf" ] || { cat "$TMP/serve.$$.log"; fail "server did not start"; }
  URL="http://127.0.0.1:$(cat "$pf")"
  wait_http "$URL/health" 120 || { cat "$TMP/serve.$$.log"; fail "server not healthy"; }
}
stop() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" || fail "server exited with $?"; unset 'PIDS[-1]'; }

# --- server A: defaults ------------------------------------------------------------------
start a --max-body-mb 1
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/models")
[ "$code" = 200 ] || fail "/v1/models -> $code"
$CHECK "$URL" golden || fail "golden"
$CHECK "$URL" batched "$TMP/alone.json" || fail "batched = alone"
$CHECK "$URL" stream || fail "streaming"
$CHECK "$URL" disconnect || fail "disconnect"
$CHECK "$URL" malformed $NMAL || fail "malformed"
curl -s "$URL/metrics" | grep -q '^ragd_http_requests_total{path="/v1/completions",code="400"}' \
  || fail "/metrics lacks per-status request counts"
curl -s "$URL/metrics" | grep -q '^ragd_time_to_first_token_seconds_bucket' || fail "TTFT histogram"
stop

# --- server B: tiny KV cache (40 blocks of 16 = 640 tokens for 32 requests) + API key -------
start b --kv-blocks 40 --max-model-len 640 --api-key sekrit
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/models")
[ "$code" = 401 ] || fail "no key -> $code, want 401"
curl -s -H 'Authorization: Bearer wrong' "$URL/v1/models" | grep -q '"code":"invalid_api_key"' \
  || fail "wrong key not rejected in OpenAI's error shape"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sekrit' "$URL/v1/models")
[ "$code" = 200 ] || fail "right key -> $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
[ "$code" = 200 ] || fail "/health must stay public"
RAGD_API_KEY=sekrit $CHECK "$URL" preempt "$TMP/alone.json" || fail "preemption"
stop

# --- server C: one sequence, one waiting slot -------------------------------------------
start c --max-num-seqs 1 --max-waiting 1
$CHECK "$URL" busy || fail "bounded queue"
stop
pass
