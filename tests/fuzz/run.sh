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
mkdir -p "$WORK/st" "$WORK/tok" "$WORK/tokjson" "$BUILD/fuzz-artifacts"

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
# small byte-level tokenizer.json files in the shapes real ones take, plus chat templates
alphabet, k = [], 0
for b in range(256):
    keep = 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b
    alphabet.append(chr(b if keep else 256 + k))
    k += 0 if keep else 1
vocab = {ch: i for i, ch in enumerate(alphabet)}
vocab.update({"ab": 256, "\u0120a": 257, "\u0120ab": 258})
qwen_re = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
pre_split = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": qwen_re}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
pre_bl = {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}
added = [{"id": 259, "content": "<s>", "special": True, "normalized": False, "lstrip": True},
         {"id": 260, "content": "tok", "special": False, "normalized": True, "single_word": True}]
i = 0
for merges in (["a b", "\u0120 a", "\u0120a b"], [["a", "b"], ["\u0120", "a"]]):
    for pre in (pre_split, pre_bl):
        for ign in (False, True):
            tj = {"added_tokens": added, "normalizer": {"type": "NFC"}, "pre_tokenizer": pre,
                  "decoder": {"type": "ByteLevel"},
                  "model": {"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": ign}}
            with open(os.path.join(work, "tokjson", f"seed{i}"), "w") as o:
                json.dump(tj, o)
            i += 1
cfg = os.path.join(shared, "models", "qwen2-tiny", "tokenizer_config.json")
if os.path.exists(cfg):
    with open(os.path.join(work, "tokjson", "tmpl0"), "w") as o:
        o.write(json.load(open(cfg))["chat_template"])
with open(os.path.join(work, "tokjson", "tmpl1"), "w") as o:
    o.write("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}")
os.makedirs(os.path.join(work, "emb"), exist_ok=True)
g = os.path.join(shared, "golden", "bert_tokenizer_public.json")
if os.path.exists(g):
    cases = json.load(open(g))
    for i, c in enumerate(cases[::12]):
        with open(os.path.join(work, "emb", f"text{i}"), "wb") as o:
            o.write(c["text"].encode()[:512])
        with open(os.path.join(work, "emb", f"req{i}"), "wb") as o:
            o.write(json.dumps({"input": [c["text"][:200], "x"], "encoding_format": "base64"}).encode())
    with open(os.path.join(work, "emb", "ids"), "wb") as o:
        o.write(b'{"input": [[101, 2, 3], [7]], "model": "m"}')
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
    fuzz_tokenizer_json) seeds=$WORK/tokjson ;;
    fuzz_embed) seeds=$WORK/emb ;;
    *) seeds=$WORK/$name; mkdir -p "$seeds" ;;
  esac
  mkdir -p "$WORK/corpus-$name"
  echo "=== $name: ${SECS}s, $(ls "$seeds" | wc -l) seeds ==="
  maxlen=4096
  [ "$name" = fuzz_tokenizer_json ] && maxlen=16384
  if ! "$f" -max_total_time="$SECS" -max_len=$maxlen -timeout=20 -rss_limit_mb=3072 \
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
