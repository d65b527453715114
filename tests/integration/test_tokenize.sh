#!/usr/bin/env bash
# ragd tokenize: golden ids through the CLI (--text, --file, stdin), --decode, --json, and the
# error paths (invalid UTF-8 -> exit 1, bad usage -> exit 2).
set -u
. "$(dirname "$0")/lib.sh"

M="$RAGD_SHARED/models/qwen2-tiny"
[ -f "$M/tokenizer.json" ] || { echo "SKIP: $M missing"; pass; }

out=$("$RAGD_BIN" tokenize --model "$M" --text "Hello, world!" --json) || fail "tokenize --json failed"
[ "$out" = '{"ids":[9707,11,1879,0]}' ] || fail "got $out"
out=$("$RAGD_BIN" tokenize --model "$M" --text "Hello, world!") || fail "tokenize failed"
[ "$out" = "9707 11 1879 0" ] || fail "plain output: $out"
out=$("$RAGD_BIN" tokenize --model "$M" --decode 9707,11,1879,0) || fail "decode failed"
[ "$out" = "Hello, world!" ] || fail "decode: $out"
out=$("$RAGD_BIN" tokenize --model "$M" --decode 151644,872,198,6023,151645 --skip-special --json)
[ "$out" = '{"text":"user\nhi"}' ] || fail "decode --skip-special --json: $out"

# golden strings through --file (a sample: each run loads the tokenizer; the unit test has them all), compared with the reference ids
python3 - "$RAGD_SHARED/golden/qwen2_tokenizer_public.json" "$TMP" <<'PY' || fail "golden cases"
import json, subprocess, sys, os
cases = json.load(open(sys.argv[1]))
tmp = sys.argv[2]
binp, model = os.environ["RAGD_BIN"], os.environ["RAGD_SHARED"] + "/models/qwen2-tiny"
picked = cases[1:3] + cases[-1:] if os.environ.get("RAGD_SANITIZED") else cases[1:6] + cases[-1:]
for i, c in enumerate(picked):
    p = os.path.join(tmp, "in.txt")
    open(p, "wb").write(c["text"].encode())
    r = subprocess.run([binp, "tokenize", "--model", model, "--file", p, "--json"],
                       capture_output=True, check=True)
    ids = json.loads(r.stdout)["ids"]
    assert ids == c["ids"], (i, c["text"], ids, c["ids"])
    if c["ids"]:
        r = subprocess.run([binp, "tokenize", "--model", model, "--json", "--decode",
                            ",".join(map(str, c["ids"]))], capture_output=True, check=True)
        assert json.loads(r.stdout)["text"] == c["decoded"], (i, r.stdout)
PY

out=$(printf 'zh: 浙江的省会在哪里？' | "$RAGD_BIN" tokenize --model "$M" --file - --json) || fail "stdin"
echo "$out" | grep -q '9370,65770,105542,101314,11319]' || fail "stdin ids: $out"

# invalid UTF-8 is a runtime error with a clear message
printf 'abc\xff\xfe' >"$TMP/bad.txt"
"$RAGD_BIN" tokenize --model "$M" --file "$TMP/bad.txt" >/dev/null 2>"$TMP/err"; rc=$?
[ "$rc" -eq 1 ] || fail "invalid UTF-8 exit $rc, want 1"
grep -q "UTF-8" "$TMP/err" || fail "no UTF-8 message: $(cat "$TMP/err")"
"$RAGD_BIN" tokenize --model "$M" --decode 9707,999999999 >/dev/null 2>"$TMP/err"; rc=$?
[ "$rc" -eq 1 ] || fail "out-of-range id exit $rc, want 1"
"$RAGD_BIN" tokenize --model "$TMP/nope" --text x >/dev/null 2>"$TMP/err"; rc=$?
[ "$rc" -eq 1 ] || fail "missing model exit $rc, want 1"
grep -q "tokenizer.json" "$TMP/err" || fail "missing model message: $(cat "$TMP/err")"

# usage errors
"$RAGD_BIN" tokenize --model "$M" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no input should exit 2"
"$RAGD_BIN" tokenize --text x >/dev/null 2>&1; [ $? -eq 2 ] || fail "no model should exit 2"
"$RAGD_BIN" tokenize --model "$M" --text x --decode 1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "two inputs"
"$RAGD_BIN" tokenize --model "$M" --decode 1,x >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad id list"
"$RAGD_BIN" tokenize --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad option"
"$RAGD_BIN" tokenize --help | grep -q "usage" || fail "--help"
pass
