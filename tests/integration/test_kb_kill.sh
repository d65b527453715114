#!/usr/bin/env bash
# kill -9 during ingest, at random points, several times: the knowledge base stays consistent
# after every kill (no orphan rows, FTS == chunks, vectors == chunks), and a final rerun ends
# with exactly what an uninterrupted ingest produces (no duplicates), then is a no-op.
set -u
. "$(dirname "$0")/lib.sh"
N_FILES=400
[ -n "${RAGD_SANITIZED:-}" ] && N_FILES=150
python3 - "$TMP/docs" "$N_FILES" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
rng = random.Random(7)
chars = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
for i in range(n):
    paras = []
    for p in range(rng.randint(3, 12)):
        s = "".join(rng.choice(chars) for _ in range(rng.randint(20, 90)))
        paras.append(s + rng.choice("。！？；"))
    text = "\n".join(paras)
    if i % 3 == 0:
        with open(f"{d}/f{i:03d}.jsonl", "w") as f:
            for j, para in enumerate(paras):
                f.write('{"id":"%d-%d","title":"t%d","text":"%s","k":%d}\n' % (i, j, i, para, j))
    else:
        with open(f"{d}/f{i:03d}.txt", "w") as f:
            f.write(text)
PY
ingest() { "$RAGD_BIN" ingest --kb "$1" --index docs --embed-model hash:64 --chunk-tokens 48 \
  --overlap 8 --quiet "$TMP/docs"; }
counts() { "$RAGD_BIN" kb --kb "$1" list --json | python3 -c '
import json,sys; d=json.load(sys.stdin)
print(" ".join("%s:%d/%d/%d/%d" % (i["name"], i["files"], i["documents"], i["chunks"], i["vectors"]) for i in d["indexes"]))'; }


# time one full ingest, so kills land inside the work however fast the machine is
t0=$(date +%s%N)
ingest "$TMP/timing.db" >/dev/null 2>&1 || fail "timing ingest failed"
full_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "full ingest: ${full_ms} ms"
kills=0
for round in 1 2 3 4 5 6 7 8; do
  if [ "$round" = 5 ]; then
    # change a third of the files (and empty one jsonl): later kills hit replacements
    for f in "$TMP"/docs/f*[0369].txt; do echo "追加的新句子$(basename "$f")。" >>"$f"; done
    : >"$TMP/docs/f000.jsonl"
  fi
  ingest "$TMP/kb.db" >/dev/null 2>&1 &
  pid=$!
  # a random point 5%..50% into a full run's time
  ms=$(( full_ms * (5 + RANDOM % 46) / 100 ))
  sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  # count only kills that hit a running ingest
  if kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null
  if [ -f "$TMP/kb.db" ]; then
    "$RAGD_BIN" kb --kb "$TMP/kb.db" check >/dev/null 2>"$TMP/check.err" \
      || fail "inconsistent after kill -9 in round $round: $(cat "$TMP/check.err")"
    echo "round $round: $(counts "$TMP/kb.db")"
  fi
done
[ "$kills" -ge 2 ] || fail "ingest finished before any kill; the test did not test anything"

ingest "$TMP/ref.db" >/dev/null 2>&1 || fail "reference ingest failed"
want=$(counts "$TMP/ref.db")
echo "uninterrupted: $want"
ingest "$TMP/kb.db" >"$TMP/final.out" 2>&1 || fail "rerun after kills failed: $(cat "$TMP/final.out")"
"$RAGD_BIN" kb --kb "$TMP/kb.db" check >/dev/null || fail "inconsistent after the rerun"
got=$(counts "$TMP/kb.db")
[ "$got" = "$want" ] || fail "after kills + rerun: $got, uninterrupted: $want"
ingest "$TMP/kb.db" >"$TMP/again.out" 2>&1 || fail "third run failed"
grep -q "0 ingested, $N_FILES unchanged" "$TMP/again.out" || fail "rerun not a no-op: $(cat "$TMP/again.out")"
# the same searches give the same answers as the uninterrupted knowledge base
for db in ref kb; do
  "$RAGD_BIN" search --kb "$TMP/$db.db" --index docs --embed-model hash:64 --query "的一是在" \
    --query "国我以要" --k 5 --json | python3 -c '
import json,sys; d=json.load(sys.stdin)
print([[(r["document"], r["text"][:20]) for r in q["results"]] for q in d["data"]])' >"$TMP/$db.search"
done
cmp -s "$TMP/ref.search" "$TMP/kb.search" || fail "search results differ from the uninterrupted kb"
echo "kills: $kills"
pass
