#!/usr/bin/env bash
# ragd embed: vectors of golden texts (from --text and --file) match the reference within
# 1e-5, --json has the OpenAI shape, bad usage exits 2, runtime failures exit 1.
set -u
. "$(dirname "$0")/lib.sh"

MODEL="$RAGD_SHARED/models/bert-tiny"
GOLD="$RAGD_SHARED/golden/bert-tiny_golden.json"
[ -d "$MODEL" ] || { echo "SKIP: no bert-tiny"; exit 0; }

python3 - "$GOLD" "$TMP/texts" <<'PY' || fail "cannot prepare texts"
import json, sys
g = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for c in g["cases"][12:40]:
        if "\n" not in c["text"] and c["text"].strip() == c["text"] and c["text"]:
            f.write(c["text"] + "\n")
PY

"$RAGD_BIN" embed --model "$MODEL" --file "$TMP/texts" --json --threads 2 >"$TMP/out.json" \
  2>"$TMP/err" || fail "ragd embed --file failed: $(cat "$TMP/err")"
python3 - "$GOLD" "$TMP/texts" "$TMP/out.json" <<'PY' || fail "--file vectors differ from golden"
import json, sys
g = {c["text"]: c for c in json.load(open(sys.argv[1]))["cases"]}
texts = open(sys.argv[2]).read().splitlines()
out = json.load(open(sys.argv[3]))
assert out["object"] == "list" and out["model"] == "bert-tiny"
assert len(out["data"]) == len(texts) > 10
tok = 0
for i, (t, d) in enumerate(zip(texts, out["data"])):
    assert d["index"] == i and d["object"] == "embedding"
    ref = g[t]["cls_normalized"]
    assert max(abs(a - b) for a, b in zip(d["embedding"], ref)) <= 1e-5, t
    tok += len(g[t]["ids"])
assert out["usage"]["prompt_tokens"] == tok == out["usage"]["total_tokens"]
PY

t=$(head -n 1 "$TMP/texts")
"$RAGD_BIN" embed --model "$MODEL" --text "$t" --text "$t" >"$TMP/out.txt" 2>/dev/null \
  || fail "ragd embed --text failed"
[ "$(wc -l <"$TMP/out.txt")" -eq 2 ] || fail "text output should have 2 lines"
python3 - "$GOLD" "$t" "$TMP/out.txt" <<'PY' || fail "--text vectors differ from golden"
import json, sys
g = {c["text"]: c for c in json.load(open(sys.argv[1]))["cases"]}
ref = g[sys.argv[2]]
for line in open(sys.argv[3]):
    idx, ntok, vec = line.rstrip("\n").split("\t")
    assert int(ntok) == len(ref["ids"])
    v = [float(x) for x in vec.split()]
    assert max(abs(a - b) for a, b in zip(v, ref["cls_normalized"])) <= 1e-5
PY

"$RAGD_BIN" embed --text a >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing --model should exit 2"
"$RAGD_BIN" embed --model "$MODEL" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no input should exit 2"
"$RAGD_BIN" embed --model "$MODEL" --text a --threads 0 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--threads 0 should exit 2"
"$RAGD_BIN" embed --help | grep -q -- "--max-batch-tokens" || fail "--help lacks options"
"$RAGD_BIN" embed --model "$TMP/none" --text a >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 1 ] || fail "missing model should exit 1, got $rc"
grep -q "config.json" "$TMP/err" || fail "missing model error does not name config.json"
"$RAGD_BIN" embed --model "$MODEL" --text a --device cuda >/dev/null 2>"$TMP/err"; rc=$?
# exit 0 where a GPU and CUDA are there, else a clean runtime failure that names cuda
if [ $rc -ne 0 ]; then
  [ $rc -eq 1 ] || fail "--device cuda without a GPU should exit 1, got $rc"
  grep -q "cuda" "$TMP/err" || fail "cuda error message missing"
fi
printf 'ok\n\xff\n' >"$TMP/bad"
"$RAGD_BIN" embed --model "$MODEL" --file "$TMP/bad" >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] || fail "invalid UTF-8 should exit 1"
grep -q "UTF-8" "$TMP/err" || fail "invalid UTF-8 error message missing"
pass
