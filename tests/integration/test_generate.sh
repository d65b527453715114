#!/usr/bin/env bash
# ragd generate: greedy --ids output equals the golden transformers continuation, --json shape,
# --prompt / --chat through the tokenizer, seeded sampling reproducible, usage errors exit 2,
# a bad model directory exits 1.
set -u
. "$(dirname "$0")/lib.sh"
Q="$RAGD_SHARED/models/qwen2-tiny"
L="$RAGD_SHARED/models/llama-small"
[ -d "$Q" ] && [ -d "$L" ] || { echo "SKIP: shared models missing"; exit 0; }

# golden greedy continuation of llama-small case 5, compared up to the first tiny margin
python3 - "$RAGD_SHARED/golden/llama-small_golden.json" >"$TMP/case" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["cases"][5]
n = next((i for i, m in enumerate(c["greedy_margins"]) if m < 1e-3), len(c["greedy"]))
print(",".join(map(str, c["ids"])))
print(" ".join(map(str, c["greedy"][:n])))
PY
ids=$(sed -n 1p "$TMP/case"); want=$(sed -n 2p "$TMP/case")
"$RAGD_BIN" generate --model "$L" --ids "$ids" --max-tokens 24 --json --threads 2 >"$TMP/out.json" 2>"$TMP/err" \
  || fail "generate --ids failed: $(cat "$TMP/err")"
got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(map(str,d["ids"])))' "$TMP/out.json") \
  || fail "--json output is not JSON"
case "$got" in "$want"*) ;; *) fail "greedy ids '$got' do not start with golden '$want'" ;; esac
python3 - "$TMP/out.json" <<'PY' || fail "--json fields"
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) >= {"prompt_ids", "ids", "text", "logprobs"}, d.keys()
assert len(d["ids"]) == len(d["logprobs"]) == 24
assert all(l <= 0 for l in d["logprobs"])
PY
grep -q "tok/s" "$TMP/err" || fail "no tok/s on stderr"

# tokenizer paths
"$RAGD_BIN" generate --model "$Q" --chat "你好" --max-tokens 4 --json >"$TMP/chat.json" || fail "--chat failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["prompt_ids"][0]==151644 and d["prompt_ids"][-3:]==[151644,77091,198], d["prompt_ids"]' "$TMP/chat.json" \
  || fail "--chat prompt is not the ChatML generation prompt"
"$RAGD_BIN" generate --model "$Q" --prompt "Hello" --max-tokens 3 >"$TMP/stream" || fail "--prompt failed"
[ -s "$TMP/stream" ] || fail "--prompt printed nothing"

# stop strings: the streamed text and the JSON text end before the stop string
full=$("$RAGD_BIN" generate --model "$Q" --prompt "Hello" --max-tokens 6 --json 2>/dev/null) || fail "--prompt --json"
stop=$(python3 -c 'import json,sys; t=json.loads(sys.argv[1])["text"]; print(t[3:7])' "$full")
"$RAGD_BIN" generate --model "$Q" --prompt "Hello" --max-tokens 6 --stop "$stop" --json >"$TMP/stop.json" 2>/dev/null || fail "--stop failed"
python3 - "$full" "$TMP/stop.json" "$stop" <<'PY' || fail "--stop did not cut the text at the stop string"
import json, sys
full = json.loads(sys.argv[1])["text"]; d = json.load(open(sys.argv[2])); stop = sys.argv[3]
assert d["text"] == full[:full.index(stop)], (d["text"], full, stop)
assert d["finish_reason"] == "stop"
PY
streamed=$("$RAGD_BIN" generate --model "$Q" --prompt "Hello" --max-tokens 6 --stop "$stop" 2>/dev/null)
[ "$streamed" = "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$TMP/stop.json")" ] \
  || fail "streamed text differs from the JSON text with --stop"

# seeded sampling is reproducible; beam search runs
a=$("$RAGD_BIN" generate --model "$L" --ids 1,2,3 --max-tokens 12 --temperature 1.0 --top-p 0.9 --seed 7 --json)
b=$("$RAGD_BIN" generate --model "$L" --ids 1,2,3 --max-tokens 12 --temperature 1.0 --top-p 0.9 --seed 7 --json)
[ "$a" = "$b" ] || fail "same seed, different output"
"$RAGD_BIN" generate --model "$L" --ids 1,2,3 --max-tokens 6 --num-beams 3 --json >/dev/null || fail "beam search failed"

# errors
"$RAGD_BIN" generate --model "$L" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing prompt should exit 2"
"$RAGD_BIN" generate --model "$L" --ids 1,x >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad --ids should exit 2"
"$RAGD_BIN" generate --model "$L" --ids 1 --temperature -1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad temperature should exit 2"
"$RAGD_BIN" generate --model "$L" --ids 5000 >/dev/null 2>"$TMP/err"; [ $? -eq 1 ] || fail "out-of-vocab id should exit 1"
grep -q "out of range" "$TMP/err" || fail "out-of-vocab message"
"$RAGD_BIN" generate --model "$TMP/nope" --ids 1 >/dev/null 2>&1; [ $? -eq 1 ] || fail "missing model should exit 1"
"$RAGD_BIN" generate --help | grep -q -- "--num-beams" || fail "--help"
pass
