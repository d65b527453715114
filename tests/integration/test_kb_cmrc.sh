#!/usr/bin/env bash
# BM25 over whole CMRC2018 passages (848) with the CJK-bigram analyzer and per-field BM25:
# the issue's bar is MRR@10 >= 0.98 and recall@1 >= 0.966 on all 3,219 questions.
set -u
. "$(dirname "$0")/lib.sh"
D="$RAGD_SHARED/data/cmrc2018"
[ -f "$D/corpus.jsonl" ] || { echo "SKIP: $D missing"; exit 0; }

"$RAGD_BIN" ingest --kb "$TMP/kb.db" --index cmrc --chunk-tokens 0 --quiet "$D/corpus.jsonl" \
  >"$TMP/ingest.out" || fail "ingest failed: $(cat "$TMP/ingest.out")"
grep -q "848 documents, 848 chunks" "$TMP/ingest.out" || fail "unexpected ingest: $(cat "$TMP/ingest.out")"

"$RAGD_BIN" eval-retrieval --kb "$TMP/kb.db" --index cmrc --queries "$D/queries.jsonl" \
  --qrels "$D/qrels.dev.tsv" --mode bm25 --json >"$TMP/eval.json" || fail "eval failed"
cat "$TMP/eval.json"
python3 - "$TMP/eval.json" <<'PY' || fail "retrieval quality below the bar"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["judged"] == 3219, d
assert d["mrr@10"] >= 0.98, d
assert d["recall@1"] >= 0.966, d
assert d["recall@10"] >= d["recall@5"] >= d["recall@1"], d
PY

# term statistics for TF-IDF come from the same analysis: N chunks, df per analysed term
"$RAGD_BIN" kb --kb "$TMP/kb.db" df --index cmrc 战国 zzzzqqq >"$TMP/df.out" || fail "kb df"
grep -qx "N 848" "$TMP/df.out" || fail "df N: $(cat "$TMP/df.out")"
awk -F'\t' '$1=="战国" && $2>0 {ok=1} END {exit !ok}' "$TMP/df.out" || fail "df of 战国"
grep -qx "zzzzqqq	0" "$TMP/df.out" || fail "df of an unknown term"
pass
