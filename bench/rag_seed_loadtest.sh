#!/usr/bin/env bash
# The seed users' exact pressure test against ragd's RAG /text-generation:
#   ragd loadtest --api seed --url http://127.0.0.1:PORT/text-generation \
#     --questions ../shared/data/cmrc2018/questions.json --users 5 --loops 20
# over the CMRC 2018 demo knowledge base (848 passages, ingested once into $KB), served with
# qwen2-tiny + bert-tiny by default (RAGD_MODEL / RAGD_EMBED_MODEL override, e.g. the
# Qwen2.5-7B-shaped random model on the GPU machine; RAGD_SERVE_ARGS / RAGD_INGEST_ARGS add flags,
# e.g. "--device cuda" / "--embed-device cuda"). Writes the loadtest report (text, and
# JSON to $OUT/rag_seed_loadtest.json) and the server's RAG stage histograms from /metrics.
# Reference in the same run: the same users x loops against the same server's plain chat
# endpoint (no retrieval, the question alone as the prompt, max_tokens 256), so the ratio
# shows what retrieval and the much longer prompts cost. RAGD_BENCH_NO_REFERENCE=1 skips it.
#   bench/rag_seed_loadtest.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RAGD_BIN:-build/ragd}
SHARED=${RAGD_SHARED:-$(cd .. && pwd)/shared}
MODEL=${RAGD_MODEL:-$SHARED/models/qwen2-tiny}
EMBED=${RAGD_EMBED_MODEL:-$SHARED/models/bert-tiny}
OUT=${1:-build/bench}
KB=${RAGD_KB:-$OUT/rag_bench-$(basename "$EMBED").kb}
mkdir -p "$OUT"
"$BIN" ingest --kb "$KB" --index cmrc --embed-model "$EMBED" ${RAGD_INGEST_ARGS:-} --quiet \
  "$SHARED/data/cmrc2018/corpus.jsonl"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --model "$MODEL" --embed-model "$EMBED" --kb "$KB" --port "$PORT" ${RAGD_SERVE_ARGS:-} \
  >"$OUT/rag_seed_serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.5; done
echo "== $(date -u +%FT%TZ) $(nproc) CPUs, model $(basename "$MODEL"), embeddings $(basename "$EMBED")"
"$BIN" loadtest --api seed --url "http://127.0.0.1:$PORT/text-generation" \
  --questions "$SHARED/data/cmrc2018/questions.json" --users 5 --loops 20 \
  --json "$OUT/rag_seed_loadtest.json" --quiet
echo "== server-side RAG stage times (/metrics: ragd_rag_stage_seconds, mean per request)"
curl -s "http://127.0.0.1:$PORT/metrics" | python3 -c '
import sys, re
s, c = {}, {}
for line in sys.stdin:
    m = re.match(r"ragd_rag_stage_seconds_(sum|count)\{stage=\"(\w+)\"\} (\S+)", line)
    if m: (s if m.group(1) == "sum" else c)[m.group(2)] = float(m.group(3))
for k in ("keywords", "embed", "search", "prompt", "ttft", "generation"):
    if c.get(k): print(f"  {k:10s} {1000 * s[k] / c[k]:9.2f} ms  (n={int(c[k])})")
'
[ "${RAGD_BENCH_NO_REFERENCE:-0}" = 1 ] && exit 0
echo "== reference, same server, same run: plain chat without retrieval (POST /v1/chat/completions,"
echo "   the question alone as the prompt, max_tokens 256 like the RAG default), same users and loops"
"$BIN" loadtest --api openai-chat --url "http://127.0.0.1:$PORT/v1/chat/completions" --max-tokens 256 \
  --questions "$SHARED/data/cmrc2018/questions.json" --users 5 --loops 20 \
  --json "$OUT/rag_seed_loadtest_plain.json" --quiet
