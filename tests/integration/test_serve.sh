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
# beam search (non-streaming): the same ids as `ragd generate --num-beams`; it runs with its own
# KV layout, so the golden check right after also proves the engine's cache was restored
IDS=$(python3 -c 'import json,os; c=json.load(open(os.environ["RAGD_SHARED"]+"/golden/qwen2-tiny_golden.json"))["cases"][53]; print(",".join(str(i % 151936) for i in c["ids"]))')
"$RAGD_BIN" generate --model "$MODEL" --ids "$IDS" --num-beams 3 --max-tokens 10 --json --threads 1 >"$TMP/beam_ref.json" 2>/dev/null || fail "ragd generate --num-beams"
curl -s "$URL/v1/completions" -d "{\"model\":\"qwen2-tiny\",\"prompt\":[$IDS],\"max_tokens\":10,\"num_beams\":3,\"logprobs\":0,\"return_tokens_as_token_ids\":true}" >"$TMP/beam.json"
python3 - "$TMP/beam_ref.json" "$TMP/beam.json" <<'PY' || fail "beam search differs from ragd generate"
import json, sys
ref = json.load(open(sys.argv[1]))["ids"]
got = [int(t.split(":")[1]) for t in json.load(open(sys.argv[2]))["choices"][0]["logprobs"]["tokens"]]
assert got == ref[:len(got)] and len(got) >= len(ref) - 1, (got, ref)
PY
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/completions" -d '{"prompt":"x","num_beams":2,"stream":true}')
[ "$code" = 400 ] || fail "streaming beam search -> $code"
$CHECK "$URL" golden || fail "golden"
$CHECK "$URL" batched "$TMP/alone.json" || fail "batched = alone"
$CHECK "$URL" stream || fail "streaming"
$CHECK "$URL" disconnect || fail "disconnect"
$CHECK "$URL" malformed $NMAL || fail "malformed"
# the README's curl examples, pointed at this server
sed -n '/<!-- serve-examples -->/,/<!-- \/serve-examples -->/p' "$RAGD_SOURCE_DIR/README.md" | grep '^curl ' >"$TMP/ex.sh"
[ "$(wc -l <"$TMP/ex.sh")" -ge 6 ] || fail "README serve examples not found"
while IFS= read -r ex; do
  ex=${ex//http:\/\/127.0.0.1:8080/$URL}
  out=$(eval "${ex/curl /curl -sf }") || fail "README example failed: $ex"
  [ -n "$out" ] || fail "README example printed nothing: $ex"
done <"$TMP/ex.sh"
curl -s "$URL/metrics" | grep -q '^ragd_http_requests_total{path="/v1/completions",code="400"}' \
  || fail "/metrics lacks per-status request counts"
curl -s "$URL/metrics" | grep -q '^ragd_time_to_first_token_seconds_bucket' || fail "TTFT histogram"
stop

# --- server B: tiny KV cache (40 blocks of 16 = 640 tokens for 32 requests; under ASan 8
# shorter requests and 14 blocks) + API key ------------------------------------------------
if [ "${RAGD_SANITIZED:-0}" = 1 ]; then KV="--kv-blocks 14 --max-model-len 224"; else KV="--kv-blocks 40 --max-model-len 640"; fi
# shellcheck disable=SC2086
start b $KV --api-key sekrit
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

# --- server C: one sequence, one waiting slot; bf16-activation prefill --------------------
"$RAGD_BIN" serve --model "$MODEL" --device cuda --bf16-prefill >/dev/null 2>&1
[ $? = 2 ] || fail "--bf16-prefill with --device cuda must be a usage error"
start c --max-num-seqs 1 --max-waiting 1 --bf16-prefill
$CHECK "$URL" busy || fail "bounded queue"
# a 40-token prompt runs through the bf16 prefill path (the exact path where the CPU lacks
# avx512_bf16) and decodes
out=$(curl -s "$URL/v1/completions" -d "{\"prompt\":[$(seq -s, 100 139)],\"max_tokens\":4}")
echo "$out" | python3 -c 'import json,sys; c=json.load(sys.stdin)["choices"][0]; assert c["finish_reason"]=="length"' \
  || fail "--bf16-prefill completion: $out"
stop

# --- server D: /v1/embeddings and /v1/search routes (--embed-model, --kb) -----------------
BERT="$RAGD_SHARED/models/bert-tiny"
head -20 "$RAGD_SHARED/data/cmrc2018/corpus.jsonl" >"$TMP/c20.jsonl"
"$RAGD_BIN" ingest --kb "$TMP/kb.db" --index cmrc "$TMP/c20.jsonl" >/dev/null 2>&1 || fail "ingest"
start d --embed-model "$BERT" --kb "$TMP/kb.db"
out=$(curl -s "$URL/v1/embeddings" -d '{"input":["你好","黄芪"]}')
echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; assert len(d)==2 and len(d[0]["embedding"])==64' \
  || fail "/v1/embeddings: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/embeddings" -d '{"input":[]}')
[ "$code" = 400 ] || fail "/v1/embeddings empty input -> $code"
q=$(python3 -c 'import json; print(json.loads(open("'"$TMP/c20.jsonl"'").readline())["title"])')
out=$(curl -s "$URL/v1/search" -d "{\"indexes\":[\"cmrc\"],\"query\":\"$q\",\"k\":3,\"mode\":\"bm25\"}")
echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"][0]["results"]; assert len(r)>0' \
  || fail "/v1/search: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/search" -d '{"indexes":["nope"],"query":"x"}')
[ "$code" = 404 ] || fail "/v1/search unknown index -> $code"
stop
pass
