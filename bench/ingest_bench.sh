#!/usr/bin/env bash
# `ragd ingest` throughput on CPU with the bge-small-zh-shaped random model (issue 8's ingest
# benchmark): the CMRC2018 corpus (848 passages, default chunking 256 tokens / overlap 32)
# ingested into a fresh kb once per embedding precision (f32, bf16) and vector dtype; prints
# ingest's own summary (chunks/s, tokens/s, time in embedding vs store writes vs the rest)
# and the database size.
#
#   bench/ingest_bench.sh [BUILD_DIR] [RUNS]        defaults: build "f32:f32 bf16:f32 bf16:f16"
# RUNS: space-separated PRECISION:VECTOR_DTYPE pairs. The model is generated once into
# $RAGD_BENCH_DIR/bge (default /tmp/ragd-bench; never in the repo). Set NICE="nice -n 19" on
# a shared machine.
set -eu
BUILD=${1:-build}
RUNS=${2:-"f32:f32 bf16:f32 bf16:f16"}
SHARED=${RAGD_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
DIR=${RAGD_BENCH_DIR:-/tmp/ragd-bench}
MODEL=$DIR/bge
RAGD=$BUILD/ragd
CORPUS=$SHARED/data/cmrc2018/corpus.jsonl
[ -x "$RAGD" ] || { echo "build first" >&2; exit 2; }
[ -f "$CORPUS" ] || { echo "$CORPUS missing (set RAGD_SHARED)" >&2; exit 2; }
mkdir -p "$DIR"
if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$MODEL/1_Pooling/config.json" ]; then
  python3 "$SHARED/tools/make_random_model.py" --arch bert --preset bge-small-zh --dtype f32 \
    --out "$MODEL" >/dev/null
  for f in tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json modules.json \
    sentence_bert_config.json; do
    cp "$SHARED/models/bert-tiny/$f" "$MODEL/"
  done
  mkdir -p "$MODEL/1_Pooling"
  cat >"$MODEL/1_Pooling/config.json" <<'JSON'
{"word_embedding_dimension": 512, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false,
 "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}
JSON
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
for run in $RUNS; do
  prec=${run%%:*}
  vdt=${run##*:}
  echo "== embed precision $prec, vectors $vdt; load avg before: $(cut -d' ' -f1-3 /proc/loadavg)"
  ${NICE:-} "$RAGD" ingest --kb "$TMP/$run.db" --index cmrc --embed-model "$MODEL" --quiet \
    --embed-precision "$prec" --vector-dtype "$vdt" "$CORPUS" 2>/dev/null
  echo "   load avg after: $(cut -d' ' -f1-3 /proc/loadavg); database $(du -ck "$TMP/$run.db"* | tail -1 | cut -f1) KiB"
done
