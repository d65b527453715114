#!/usr/bin/env bash
# The kb subcommands end to end: ingest (formats, idempotence, progress-free output), search
# (text, --json, batched queries, several indexes, modes), kb list/stats/df/delete-doc/
# delete-index/check, eval-retrieval, and usage / runtime errors with the right exit codes.
set -u
. "$(dirname "$0")/lib.sh"
R="$RAGD_BIN"
mkdir -p "$TMP/docs/sub"
printf '人参大补元气，复脉固脱。\n补脾益肺，生津养血。' >"$TMP/docs/renshen.txt"
printf '# 黄芪\n黄芪补气升阳，固表止汗。' >"$TMP/docs/sub/huangqi.md"
printf '{"id":"d1","title":"当归","text":"当归补血活血，调经止痛。"}\n{"_id":"d2","text":"甘草清热解毒。"}\n' >"$TMP/docs/sub/herbs.jsonl"
printf 'id,content\nc1,枸杞滋补肝肾。\n' >"$TMP/docs/c.csv"

"$R" ingest --kb "$TMP/kb.db" --index a --embed-model hash:32 --text-column content "$TMP/docs" \
  >"$TMP/out" || fail "ingest: $(cat "$TMP/out")"
grep -q "4 files: 4 ingested" "$TMP/out" || fail "ingest summary: $(cat "$TMP/out")"
"$R" ingest --kb "$TMP/kb.db" --index a --embed-model hash:32 --text-column content "$TMP/docs" \
  | grep -q "0 ingested, 4 unchanged" || fail "re-ingest is not a no-op"
"$R" ingest --kb "$TMP/kb.db" --index b "$TMP/docs/renshen.txt" >/dev/null || fail "ingest b"

# model mixing is refused, with a runtime error
"$R" ingest --kb "$TMP/kb.db" --index a --embed-model hash:48 "$TMP/docs/renshen.txt" 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "embedded with" "$TMP/err" || fail "model mixing not refused: $(cat "$TMP/err")"

out=$("$R" search --kb "$TMP/kb.db" --index a --query "补血活血" --k 2) || fail "search"
echo "$out" | grep -q "herbs.jsonl#d1" || fail "search text output: $out"
"$R" search --kb "$TMP/kb.db" --index a,b --embed-model hash:32 --mode hybrid --query "元气" \
  --query "补血" --query "元气" --json >"$TMP/s.json" || fail "hybrid search"
python3 - "$TMP/s.json" <<'PY' || fail "search --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["distinct_queries"] == 2 and len(d["data"]) == 3, d
assert d["data"][0]["results"] == d["data"][2]["results"]
top = d["data"][0]["results"][0]
assert "renshen" in top["document"] and top["index"] in ("a", "b"), top
assert {r["index"] for r in d["data"][0]["results"]} == {"a", "b"}, d["data"][0]
assert any(r["ranks"]["vector"] for r in d["data"][1]["results"]), d["data"][1]
PY

"$R" kb --kb "$TMP/kb.db" list | grep -q "hash:32" || fail "kb list"
# f16 vectors: recorded per index, the other dtype refused (exit 1, nothing written)
"$R" ingest --kb "$TMP/kb.db" --index h --embed-model hash:32 --vector-dtype f16 \
  "$TMP/docs/renshen.txt" >/dev/null || fail "ingest f16"
"$R" kb --kb "$TMP/kb.db" list --json | python3 -c '
import json, sys; ix = {i["name"]: i for i in json.load(sys.stdin)["indexes"]}
assert ix["h"]["vector_dtype"] == "f16" and ix["a"]["vector_dtype"] == "f32", ix' \
  || fail "vector dtype not recorded"
echo "人参补气。" >"$TMP/extra.txt"
"$R" ingest --kb "$TMP/kb.db" --index h --embed-model hash:32 --vector-dtype f32 "$TMP/extra.txt" \
  >/dev/null 2>"$TMP/err"
[ $? -eq 1 ] && grep -q "stores its vectors as f16" "$TMP/err" || fail "dtype mix not refused: $(cat "$TMP/err")"
"$R" search --kb "$TMP/kb.db" --index h --embed-model hash:32 --mode vector --query "人参" --k 1 \
  | grep -q "renshen.txt" || fail "f16 vector search"
"$R" ingest --kb "$TMP/kb.db" --index h --vector-dtype f64 "$TMP/extra.txt" >/dev/null 2>&1
[ $? -eq 2 ] || fail "bad --vector-dtype accepted"
"$R" kb --kb "$TMP/kb.db" delete-index h >/dev/null || fail "delete-index h"
"$R" kb --kb "$TMP/kb.db" stats | grep -q "2 indexes" || fail "kb stats"
"$R" kb --kb "$TMP/kb.db" df --index a 补血 | grep -q "补血	1" || fail "kb df"
"$R" kb --kb "$TMP/kb.db" delete-doc --index a "$TMP/docs/sub/herbs.jsonl" | grep -q "deleted 2" \
  || fail "delete-doc by file"
"$R" kb --kb "$TMP/kb.db" delete-doc "$TMP/docs/nope.txt" 2>/dev/null; [ $? -eq 1 ] || fail "delete-doc of nothing"
"$R" kb --kb "$TMP/kb.db" delete-index b >/dev/null || fail "delete-index"
"$R" kb --kb "$TMP/kb.db" check | grep -q ok || fail "kb check"
"$R" kb --kb "$TMP/kb.db" list --json | python3 -c '
import json,sys; d=json.load(sys.stdin); ix=d["indexes"]
assert [i["name"] for i in ix] == ["a"] and ix[0]["documents"] == 3, d' || fail "state after deletes"

# eval-retrieval on a tiny judged set
printf '{"_id":"q1","text":"当归补血"}\n{"_id":"q2","text":"枸杞"}\n' >"$TMP/q.jsonl"
printf 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tc1\t1\n' >"$TMP/qrels.tsv"
"$R" ingest --kb "$TMP/kb.db" --index a --embed-model hash:32 --text-column content "$TMP/docs" >/dev/null
"$R" eval-retrieval --kb "$TMP/kb.db" --index a --queries "$TMP/q.jsonl" --qrels "$TMP/qrels.tsv" \
  --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["mrr@10"] == 1.0, d' \
  || fail "eval-retrieval"

# usage errors exit 2, runtime errors 1
"$R" search --kb "$TMP/kb.db" --index a >/dev/null 2>&1; [ $? -eq 2 ] || fail "search without query"
"$R" search --kb "$TMP/kb.db" --index a --query x --mode nope >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad mode"
"$R" ingest --kb "$TMP/kb.db" "$TMP/docs" >/dev/null 2>&1; [ $? -eq 2 ] || fail "ingest without index"
"$R" ingest --kb "$TMP/kb.db" --index a --chunk-tokens 10 --overlap 10 "$TMP/docs" >/dev/null 2>&1
[ $? -eq 2 ] || fail "overlap >= chunk accepted"
"$R" search --kb "$TMP/kb.db" --index nope --query x >/dev/null 2>"$TMP/err"; [ $? -eq 1 ] || fail "unknown index"
grep -q "no index named" "$TMP/err" || fail "unknown index message"
"$R" search --kb "$TMP/missing.db" --index a --query x >/dev/null 2>&1; [ $? -eq 1 ] || fail "missing kb"
"$R" ingest --kb "$TMP/kb.db" --index a --embed-model hash:32 "$TMP/docs/none.txt" >/dev/null 2>"$TMP/err"; [ $? -eq 1 ] || fail "missing file"
grep -q "none.txt" "$TMP/err" || fail "missing file message"
"$R" ingest --help | grep -q chunk-tokens || fail "ingest --help"

# a real model directory through the embedding engine (random weights: shape, not quality)
M="$RAGD_SHARED/models/bert-tiny"
if [ -d "$M" ]; then
  "$R" ingest --kb "$TMP/m.db" --index m --embed-model "$M" --chunk-tokens 16 --overlap 4 --text-column content \
    --quiet "$TMP/docs" >"$TMP/out" 2>&1 || fail "ingest with a model: $(cat "$TMP/out")"
  "$R" kb --kb "$TMP/m.db" list --json | python3 -c '
import json,sys; i=json.load(sys.stdin)["indexes"][0]
assert i["embed_model"] == "bert-tiny" and i["dim"] == 64 and i["vectors"] == i["chunks"] > 0, i' \
    || fail "model index"
  "$R" search --kb "$TMP/m.db" --index m --embed-model "$M" --mode vector --query "补血" --k 3 \
    --json 2>/dev/null | python3 -c '
import json,sys; d=json.load(sys.stdin); r=d["data"][0]["results"]
assert len(r) == 3 and all(x["ranks"]["vector"] for x in r), r' || fail "vector search with a model"
  "$R" search --kb "$TMP/m.db" --index m --embed-model hash:64 --mode vector --query x \
    >/dev/null 2>"$TMP/err"; [ $? -eq 1 ] || fail "query embedder mismatch accepted"
fi
pass
