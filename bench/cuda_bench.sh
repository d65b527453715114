#!/usr/bin/env bash
# cuda_bench.sh - the one-command CUDA benchmark (run on the GPU machine, <= 10 minutes):
#   1. build (unless BIN points at prebuilt binaries),
#   2. a Qwen2.5-7B-shaped random bf16 model (torch on the GPU; names/shapes of
#      shared/tools/make_random_model.py) + the qwen2-tiny tokenizer files,
#   3. correctness: golden tests of qwen2-tiny (bf16 tolerance), batched = alone, sampling,
#   4. cuda_bench suite: copy-bandwidth roofline, decode at batch 1/8/64/256, prefill,
#      seed workload (5 users x 4 loops, 2048-token prompts, 256 out) and 64/256 users x 512,
#   5. transformers on the same model and GPU (batch-1 decode, static batches of 5).
# Usage: bench/cuda_bench.sh [shared_dir] [out_dir]     (env: BIN=dir with cuda_bench, MODEL=dir)
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
python3 "$ROOT/bench/hf_bench.py" "$MODEL" --rounds 1 2>&1 | tee "$OUTD/hf.log" | grep "^HF"
echo "== summary"
grep -E "^golden:|^batched|^sampling|RESULT" "$OUTD/golden.log"
grep -E "DECODE|PREFILL|SEED|bandwidth" "$OUTD/suite.log"
grep "^HF" "$OUTD/hf.log"
