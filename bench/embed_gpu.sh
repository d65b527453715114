#!/usr/bin/env bash
# GPU embedding benchmark + check (needs an NVIDIA GPU, nvcc, and python3 with numpy,
# safetensors, tokenizers, torch, sentence-transformers - the device machine's image).
# Builds the CUDA BERT forward (src/backend/cuda/bert_cuda.cu) as a shared library, checks it
# against the bert-tiny golden vectors, then times a bge-small-zh-shaped random model against
# sentence-transformers fp16 on the same GPU in the same run.
#   RAGD_SHARED=/path/to/shared bash bench/embed_gpu.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${RAGD_SHARED:=$ROOT/../shared}"
export RAGD_SHARED
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ragd-embed-gpu-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
nvidia-smi -L
nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I"$ROOT/src" --use_fast_math \
  -Xcompiler=-fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter -shared \
  "$ROOT/src/backend/cuda/bert_cuda.cu" "$ROOT/src/util/err.c" -o "$WORK/libbertcuda.so" -lcublas
python3 "$RAGD_SHARED/tools/make_random_model.py" --arch bert --preset bge-small-zh --dtype f32 \
  --out "$WORK/bge" >/dev/null
for f in tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json modules.json sentence_bert_config.json; do
  cp "$RAGD_SHARED/models/bert-tiny/$f" "$WORK/bge/"
done
mkdir -p "$WORK/bge/1_Pooling"
echo '{"word_embedding_dimension": 512, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false, "pooling_mode_mean_sqrt_len_tokens": false}' \
  >"$WORK/bge/1_Pooling/config.json"
python3 "$ROOT/bench/embed_gpu.py" "$WORK/libbertcuda.so" "$WORK/bge"
