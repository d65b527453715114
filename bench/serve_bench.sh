#!/usr/bin/env bash
# `ragd serve` on CPU with a Qwen2.5-0.5B-shaped random bf16 model, driven by `ragd loadtest`:
# output tok/s at 1/4/8/16 users (batching: 8 users should give >= 4x one user), TTFT p50/p99;
# then the server's own per-token overhead (HTTP + JSON + SSE + scheduler) with the same server
# code over a backend that does no math (bench_serve_null): server CPU microseconds per token.
#
#   bench/serve_bench.sh [BUILD_DIR] [MAX_TOKENS] [LOOPS]      defaults: build 64 2
# The model is generated once into $RAGD_BENCH_DIR (default /tmp/ragd-bench; never in the repo).
set -eu
BUILD=${1:-build}
NTOK=${2:-64}
LOOPS=${3:-2}
SHARED=${RAGD_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
DIR=${RAGD_BENCH_DIR:-/tmp/ragd-bench}
MODEL=$DIR/qwen2.5-0.5b
RAGD=$BUILD/ragd
[ -x "$RAGD" ] && [ -x "$BUILD/bench_serve_null" ] || { echo "build first" >&2; exit 2; }
mkdir -p "$DIR"
if [ ! -f "$MODEL/model.safetensors" ]; then
  python3 "$SHARED/tools/make_random_model.py" --arch qwen2 --preset qwen2.5-0.5b --dtype bf16 \
    --out "$MODEL" >/dev/null
  cp "$SHARED/models/qwen2-tiny/"{tokenizer.json,tokenizer_config.json} "$MODEL/"
fi
TMP=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
python3 - "$SHARED/data/cmrc2018/questions.json" >"$TMP/q.json" <<'PY'
import json, sys
print(json.dumps(json.load(open(sys.argv[1]))[:64], ensure_ascii=False))
PY

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
summ() { # summ JSON USERS
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["throughput"]; f = d["ttft_ms"]; i = d["itl_ms"]
print("%5s users  %8.1f out tok/s  TTFT p50 %8.1f ms  p99 %8.1f ms  ITL p50 %7.1f ms  ok %d failed %d"
      % (sys.argv[2], t["output_tokens_per_s"], f["p50"], f["p99"], i["p50"],
         d["requests"]["completed"], d["requests"]["failed"]))
PY
}

# --- 1. the real model ---------------------------------------------------------------------
"$RAGD" serve --model "$MODEL" --port 0 --port-file "$TMP/port" --max-model-len 4096 \
  --kv-cache-mb 1024 >"$TMP/serve.log" 2>&1 & SPID=$!
for _ in $(seq 600); do [ -s "$TMP/port" ] && curl -sf -o /dev/null "http://127.0.0.1:$(cat "$TMP/port")/health" && break; sleep 0.1; done
URL="http://127.0.0.1:$(cat "$TMP/port")/v1/completions"
printf '{"model":"qwen2.5-0.5b","prompt":"{{question}}","max_tokens":%d,"temperature":0,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}\n' "$NTOK" >"$TMP/body.json"
echo "== ragd serve, Qwen2.5-0.5B-shaped bf16 (CPU, $(nproc) threads), $NTOK output tokens, ignore_eos, $LOOPS loops per user"
"$RAGD" loadtest --url "$URL" --api openai-completions --body-template "$TMP/body.json" \
  --questions "$TMP/q.json" --users 1 --loops 1 --quiet >/dev/null 2>&1 # warm-up
for U in 1 4 8 16; do
  "$RAGD" loadtest --url "$URL" --api openai-completions --body-template "$TMP/body.json" \
    --questions "$TMP/q.json" --users "$U" --loops "$LOOPS" --seed 1 --quiet --json "$TMP/u$U.json" >/dev/null 2>&1
  summ "$TMP/u$U.json" "$U"
done
python3 - "$TMP/u1.json" "$TMP/u8.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["throughput"]["output_tokens_per_s"]
b = json.load(open(sys.argv[2]))["throughput"]["output_tokens_per_s"]
print("batching: 8 users / 1 user = %.2fx (goal >= 4x)" % (b / a))
PY
curl -s "${URL%/v1/completions}/metrics" | grep -E '^ragd_(preemptions_total|kv_blocks_used|prefix_cache_hit_tokens_total) '
kill $SPID; wait $SPID 2>/dev/null || true; SPID=

# --- 2. server overhead over a no-math backend ------------------------------------------------
rm -f "$TMP/port"
"$BUILD/bench_serve_null" "$SHARED/models/qwen2-tiny" "$TMP/port" & SPID=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
URL="http://127.0.0.1:$(cat "$TMP/port")/v1/completions"
printf '{"model":"null","prompt":"{{question}}","max_tokens":500,"stream":true,"stream_options":{"include_usage":true}}\n' >"$TMP/nbody.json"
echo "== server overhead (bench_serve_null: same HTTP/engine/JSON/SSE code, backend does no math), 500 tokens per request"
HZ=$(getconf CLK_TCK)
for U in 1 16; do
  c0=$(cpu_ticks $SPID)
  "$RAGD" loadtest --url "$URL" --api openai-completions --body-template "$TMP/nbody.json" \
    --questions "$TMP/q.json" --users "$U" --loops 40 --seed 1 --quiet --json "$TMP/n$U.json" >/dev/null 2>&1
  c1=$(cpu_ticks $SPID)
  python3 - "$TMP/n$U.json" "$U" "$c0" "$c1" "$HZ" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); u = sys.argv[2]
c0, c1, hz = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ntok = d["throughput"]["output_tokens_per_s"] * d["total_s"]
print("%5s users  %9.0f out tok/s end to end  server CPU %.2f us/token (%d tokens, %.2f s CPU)"
      % (u, d["throughput"]["output_tokens_per_s"], (c1 - c0) / hz / ntok * 1e6, ntok, (c1 - c0) / hz))
PY
done
