#!/usr/bin/env bash
# cuda_bench.sh - the one-command CUDA benchmark (run on the GPU machine, <= 10 minutes):
#   1. build (unless BIN points at prebuilt binaries),
#   2. a Qwen2.5-7B-shaped random bf16 model (torch on the GPU; names/shapes of
#      shared/tools/make_random_model.py) + the qwen2-tiny tokenizer files,
#   3. correctness: golden tests of qwen2-tiny (bf16 tolerance), batched = alone, sampling,
#   4. cuda_bench suite: copy-bandwidth roofline, decode at batch 1/8/64/256, prefill,
#      seed workload (5 users x 4 loops, 2048-token prompts, 256 out) and 64/256 users x 512,
#   5. the seed workload through `ragd serve --device cuda` + `ragd loadtest` (5 users x 4 loops,
#      2048-token prompts, 256 output tokens, ignore_eos) and 64 / 256 users x 512-token prompts,
#   6. transformers on the same model and GPU (batch-1 decode, static batches of 5).
# Usage: bench/cuda_bench.sh [shared_dir] [out_dir]     (env: BIN=dir with cuda_bench, MODEL=dir;
#        SKIP_HF=1 skips step 6; SERVE_AB="VAR=VALUE ..." repeats the served seed workload with those
#        settings, SERVE_AB_ALL=1 also the 64- and 256-user runs; HF_THREAD_LOOPS=L adds transformers
#        with one thread per user, L of the 4 loops)
set -uo pipefail
SHARED=${1:-${RAGD_SHARED:-../shared}}
OUTD=${2:-${OUT:-/tmp/cuda_bench_out}}
mkdir -p "$OUTD"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BIN:-}" ]; then
    cmake -S "$ROOT" -B "$ROOT/build-cuda" -DCMAKE_BUILD_TYPE=Release -DRAGD_TESTS=OFF >/dev/null &&
        cmake --build "$ROOT/build-cuda" -j"$(nproc)" --target cuda_bench ragd >"$OUTD/build.log" 2>&1 ||
        { tail -30 "$OUTD/build.log"; exit 1; }
    BIN="$ROOT/build-cuda"
fi
MODEL=${MODEL:-/tmp/q7b}
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
if [ ! -f "$MODEL/config.json" ]; then
    python3 "$ROOT/bench/make_model_torch.py" --tools "$SHARED/tools" --preset qwen2.5-7b --out "$MODEL" || exit 1
    cp "$SHARED"/models/qwen2-tiny/tokenizer*.json "$SHARED"/models/qwen2-tiny/generation_config.json "$MODEL"/
fi
"$BIN/cuda_bench" golden "$SHARED/models/qwen2-tiny" "$SHARED/golden/qwen2-tiny_golden.json" >"$OUTD/golden.log" 2>&1
echo "golden rc=$?"
"$BIN/cuda_bench" suite "$MODEL" 2>&1 | tee "$OUTD/suite.log" | grep -E "DECODE|PREFILL|SEED|bandwidth|device"
# the seed workload through `ragd serve --device cuda` + `ragd loadtest`
if "$BIN/ragd" serve --help >/dev/null 2>&1 && "$BIN/ragd" loadtest --help >/dev/null 2>&1; then
    LTD=$(mktemp -d)
    python3 - "$MODEL" "$LTD" <<'PY'
import json, os, random, sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
words = ("time person year way day thing man world life hand part child eye woman place work week "
         "case point government company number group problem fact water room mother area money story "
         "month lot right study book job word business issue side kind head house service friend father "
         "power hour game line end member law car city community name team minute idea kid body "
         "information back parent face others level office door health art war history party result "
         "change morning reason research girl guy moment air teacher force education").split()
rng = random.Random(0)
for n in (2048, 512):
    ws = [rng.choice(words) for _ in range(n)]
    while len(tok.encode("1234 " + " ".join(ws)).ids) > n:
        ws.pop()
    text = " ".join(ws)
    body = ('{"model":"' + os.path.basename(sys.argv[1].rstrip("/")) + '","prompt":"{{request_id}} ' + text + '","max_tokens":256,"ignore_eos":true,'
            '"temperature":0.7,"top_p":0.8,"top_k":20,"stream":true}')
    open(f"{sys.argv[2]}/body{n}.json", "w").write(body)
    print(f"prompt template {n}: {len(tok.encode('1234 ' + text).ids)} tokens")
PY
    "$BIN/ragd" serve --model "$MODEL" --device cuda --port 0 --port-file "$OUTD/port" \
        --max-num-seqs 256 --max-num-batched-tokens 4096 >"$OUTD/serve.log" 2>&1 &
    SPID=$!
    for _ in $(seq 240); do [ -s "$OUTD/port" ] && curl -sf -o /dev/null "http://127.0.0.1:$(cat "$OUTD/port")/health" && break; sleep 0.5; done
    URL="http://127.0.0.1:$(cat "$OUTD/port" 2>/dev/null)/v1/completions"
    lt() { # lt NAME USERS LOOPS BODY
        "$BIN/ragd" loadtest --url "$URL" --body-template "$LTD/body$4.json" --users "$2" --loops "$3" \
            --timeout 300 --json "$LTD/$1.json" >"$LTD/$1.out" 2>&1
        grep -h -A1 "^errors" "$LTD/$1.out" | head -3
        python3 - "$LTD/$1.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); r = d["requests"]
ot = sum(x.get("output_tokens", 0) for x in d["records"])
print(f"SERVE {sys.argv[2]}: ok {r['completed']} failed {r['failed']}, total {d['total_s']:.2f} s, "
      f"output {ot} tok, {ot / d['total_s']:.0f} tok/s, "
      f"TTFT p50 {d['ttft_ms']['p50']:.0f} p99 {d['ttft_ms']['p99']:.0f} ms, "
      f"ITL p50 {d['itl_ms']['p50']:.1f} p99 {d['itl_ms']['p99']:.1f} ms")
PY
    }
    if curl -sf -o /dev/null "${URL%/v1/completions}/health"; then
        lt warmup 5 1 2048 >/dev/null
        lt seed_5x4_2048 5 4 2048 | tee -a "$OUTD/serve_summary.txt"
        lt users64_512 64 1 512 | tee -a "$OUTD/serve_summary.txt"
        lt users256_512 256 1 512 | tee -a "$OUTD/serve_summary.txt"
    else
        echo "serve did not come up:"; tail -5 "$OUTD/serve.log"
    fi
    kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
    if [ -n "${SERVE_AB:-}" ]; then # the seed workload again with another setting, e.g. RAGD_CUDA_FATTN=0
        rm -f "$OUTD/port"
        env $SERVE_AB "$BIN/ragd" serve --model "$MODEL" --device cuda --port 0 --port-file "$OUTD/port" \
            --max-num-seqs 256 --max-num-batched-tokens 4096 >"$OUTD/serve_old.log" 2>&1 &
        SPID=$!
        for _ in $(seq 240); do [ -s "$OUTD/port" ] && curl -sf -o /dev/null "http://127.0.0.1:$(cat "$OUTD/port")/health" && break; sleep 0.5; done
        URL="http://127.0.0.1:$(cat "$OUTD/port" 2>/dev/null)/v1/completions"
        lt warmup_old 5 1 2048 >/dev/null
        lt "seed_5x4_2048_${SERVE_AB// /_}" 5 4 2048 | tee -a "$OUTD/serve_summary.txt"
        if [ -n "${SERVE_AB_ALL:-}" ]; then
            lt "users64_512_${SERVE_AB// /_}" 64 1 512 | tee -a "$OUTD/serve_summary.txt"
            lt "users256_512_${SERVE_AB// /_}" 256 1 512 | tee -a "$OUTD/serve_summary.txt"
        fi
        kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
    fi
    cp "$LTD/seed_5x4_2048.out" "$OUTD/" 2>/dev/null
fi
[ -n "${SKIP_HF:-}" ] || python3 "$ROOT/bench/hf_bench.py" "$MODEL" --rounds 1 --thread-loops "${HF_THREAD_LOOPS:-0}" 2>&1 | tee "$OUTD/hf.log" | grep "^HF"
echo "== summary"
grep -E "^golden:|^batched|^sampling|RESULT" "$OUTD/golden.log"
grep -E "DECODE|PREFILL|SEED|bandwidth" "$OUTD/suite.log"
grep "^HF" "$OUTD/hf.log" 2>/dev/null
cat "$OUTD/serve_summary.txt" 2>/dev/null
