#!/usr/bin/env bash
# Run every fuzzer in BUILD for SECONDS each, seeded from ../shared at run time (nothing is
# committed): safetensors headers rebuilt small from the shared models, golden tokenizer
# strings. Usage: tests/fuzz/run.sh BUILD_DIR SECONDS
set -euo pipefail
BUILD=${1:-build-fuzz}
SECS=${2:-25}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${RAGD_SHARED:=$ROOT/../shared}"
export RAGD_SHARED
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ragd-fuzz-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/st" "$WORK/tok" "$BUILD/fuzz-artifacts"

python3 - "$RAGD_SHARED" "$WORK" <<'PY'
import json, os, struct, sys
shared, work = sys.argv[1], sys.argv[2]
sizes = {"BF16": 2, "F16": 2, "F32": 4, "I64": 8, "I32": 4, "U8": 1}
n = 0
for m in ("qwen2-tiny", "llama-small", "bert-tiny"):
    p = os.path.join(shared, "models", m, "model.safetensors")
    if not os.path.exists(p):
        continue
    with open(p, "rb") as f:
        hlen = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(hlen))
    names = [k for k in hdr if k != "__metadata__"][:6]
    for cut in (1, 3, 6):
        new, off = {}, 0
        for k in names[:cut]:
            t = hdr[k]
            shape = [min(d, 3) for d in t["shape"]]
            nb = sizes.get(t["dtype"], 4)
            for d in shape:
                nb *= d
            new[k] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [off, off + nb]}
            off += nb
        if "__metadata__" in hdr:
            new["__metadata__"] = hdr["__metadata__"]
        h = json.dumps(new).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(work, "st", f"seed{n}"), "wb") as o:
            o.write(struct.pack("<Q", len(h)) + h + bytes(range(256))[:off] * 1 + b"\0" * max(0, off - 256))
        n += 1
g = os.path.join(shared, "golden", "qwen2_tokenizer_public.json")
if os.path.exists(g):
    cases = json.load(open(g))
    for i, c in enumerate(cases[::6]):
        with open(os.path.join(work, "tok", f"seed{i}"), "wb") as o:
            o.write(c["text"].encode()[:512])
PY

[ "$(ls "$WORK/st" | wc -l)" -gt 0 ] || echo "warning: no seeds from $RAGD_SHARED (set RAGD_SHARED)"
status=0
for f in "$BUILD"/tests/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  case $name in
    fuzz_safetensors) seeds=$WORK/st ;;
    fuzz_tokenizer) seeds=$WORK/tok ;;
    *) seeds=$WORK/$name; mkdir -p "$seeds" ;;
  esac
  mkdir -p "$WORK/corpus-$name"
  echo "=== $name: ${SECS}s, $(ls "$seeds" | wc -l) seeds ==="
  if ! "$f" -max_total_time="$SECS" -max_len=4096 -timeout=20 -rss_limit_mb=3072 \
       -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-artifacts/$name-" \
       "$WORK/corpus-$name" "$seeds" 2>"$WORK/$name.log"; then
    tail -60 "$WORK/$name.log"
    echo "FUZZ FAILURE: $name (artifacts in $BUILD/fuzz-artifacts)"
    status=1
  else
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$WORK/$name.log" || true
  fi
done
exit $status
