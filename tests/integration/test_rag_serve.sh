#!/usr/bin/env bash
# RAG end to end: ingest a small CMRC corpus (bert-tiny embeddings), `ragd serve` it with
# qwen2-tiny, and check through HTTP: the known answer passage is among the sources (BM25),
# exact SSE framing of /v1/rag/chat and /text-generation (fragment rule included), streamed =
# non-streamed answer, 20 concurrent requests, a disconnect cancelling generation, clear 4xx
# for a missing index and an empty knowledge base, the chat page and `ragd ask`.
set -u
. "$(dirname "$0")/lib.sh"
MODEL="$RAGD_SHARED/models/qwen2-tiny"
EMBED="$RAGD_SHARED/models/bert-tiny"
DATA="$RAGD_SHARED/data/cmrc2018"
[ -d "$MODEL" ] && [ -d "$EMBED" ] && [ -f "$DATA/corpus.jsonl" ] || fail "shared models/data missing ($RAGD_SHARED)"

# A small corpus: the first 40 passages, and questions whose answer passage is among them.
python3 - "$DATA" "$TMP" <<'PY' || fail "cannot build the small corpus"
import json, sys
data, tmp = sys.argv[1], sys.argv[2]
docs = [json.loads(l) for l in open(f"{data}/corpus.jsonl", encoding="utf-8")][:40]
ids = {d["_id"] for d in docs}
with open(f"{tmp}/small.jsonl", "w", encoding="utf-8") as f:
    for d in docs:
        f.write(json.dumps({"id": d["_id"], "title": d["title"], "text": d["text"]}, ensure_ascii=False) + "\n")
qrel = {}
for line in open(f"{data}/qrels.dev.tsv", encoding="utf-8").read().splitlines()[1:]:
    q, c, _ = line.split("\t")
    qrel[q] = c
qs = [json.loads(l) for l in open(f"{data}/queries.jsonl", encoding="utf-8")]
title = {d["_id"]: d["title"] for d in docs}
# questions that name their subject (the passage title), as a user of a knowledge base would
picked = [q for q in qs if qrel.get(q["_id"]) in ids and len(title[qrel[q["_id"]]]) >= 2
          and title[qrel[q["_id"]]] in q["text"]][::3][:12]
json.dump([{"q": q["text"], "doc": qrel[q["_id"]]} for q in picked], open(f"{tmp}/known.json", "w"), ensure_ascii=False)
PY

"$RAGD_BIN" ingest --kb "$TMP/demo.kb" --index cmrc --embed-model "$EMBED" "$TMP/small.jsonl" \
  >"$TMP/ingest.log" 2>&1 || { cat "$TMP/ingest.log"; fail "ingest failed"; }

PORT=$(free_port)
"$RAGD_BIN" serve --model "$MODEL" --embed-model "$EMBED" --kb "$TMP/demo.kb" --port "$PORT" \
  --max-num-seqs 32 >"$TMP/serve.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_http "http://127.0.0.1:$PORT/health" 120 || { tail -20 "$TMP/serve.log"; fail "server did not start"; }
URL="http://127.0.0.1:$PORT"

python3 - "$URL" "$TMP" <<'PY' || { tail -30 "$TMP/serve.log"; fail "RAG HTTP checks failed"; }
import json, socket, sys, threading, time, urllib.request, urllib.error
url, tmp = sys.argv[1], sys.argv[2]
host, port = url.split("//")[1].split(":"); port = int(port)

def post(path, body, timeout=120):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()

def check(cond, msg):
    if not cond:
        print("FAIL:", msg, file=sys.stderr); sys.exit(1)

def events(raw, what):
    """Exact SSE framing: only 'data: <payload>\\n\\n' events, the last one [DONE]."""
    text = raw.decode("utf-8")
    check(text.endswith("data: [DONE]\n\n"), f"{what}: stream does not end with data: [DONE]")
    parts = text.split("\n\n")
    check(parts[-1] == "", f"{what}: trailing bytes after the last event")
    out = []
    for p in parts[:-1]:
        check(p.startswith("data: ") and "\n" not in p, f"{what}: bad event framing {p[:80]!r}")
        out.append(p[6:])
    check(out.count("[DONE]") == 1, f"{what}: [DONE] must come once, last")
    return [json.loads(p) for p in out[:-1]]

# 1. BM25 path: every known answer passage is among the sources.
known = json.load(open(f"{tmp}/known.json", encoding="utf-8"))
check(len(known) >= 8, "too few known questions")
for k in known:
    st, _, body = post("/v1/rag/chat", {"messages": [{"role": "user", "content": k["q"]}],
                                        "mode": "bm25", "top_k": 10, "max_tokens": 2})
    check(st == 200, f"rag chat status {st}: {body[:200]}")
    r = json.loads(body)
    docs = [s["document"] for s in r["sources"]]
    check(any(d.endswith("#" + k["doc"]) or d == k["doc"] for d in docs),
          f"{k['q']}: passage {k['doc']} not among sources {docs}")
    check(r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant", "shape")
    for key in ("keywords_ms", "embed_ms", "search_ms", "prompt_ms", "ttft_ms", "generation_ms"):
        check(key in r["timings"], f"timing {key} missing")
    check(r["usage"]["completion_tokens"] >= 1, "no tokens generated")

q = known[0]["q"]
# 2. /v1/rag/chat streaming: sources first, chunks, final chunk with finish_reason and timings,
#    usage only with include_usage; greedy stream text == non-stream text.
body = {"messages": [{"role": "user", "content": q}], "top_k": 3, "max_tokens": 24,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
st, ct, raw = post("/v1/rag/chat", body)
check(st == 200 and ct.startswith("text/event-stream"), f"stream status {st} {ct}")
evs = events(raw, "rag chat")
check(evs[0]["object"] == "chat.completion.chunk", "first event object")
check(evs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}, "first delta")
check(1 <= len(evs[0]["sources"]) <= 3, "first event must carry 1..3 sources")
for s in evs[0]["sources"]:
    check(set(s) >= {"index", "document", "chunk_id", "score", "text"} and s["text"], f"source fields {s}")
check(all("sources" not in e for e in evs[1:]), "sources only in the first event")
ids = {e["id"] for e in evs}
check(len(ids) == 1, "one id per stream")
usage = evs[-1]; fin = evs[-2]
check(usage["choices"] == [] and usage["usage"]["completion_tokens"] == 24, f"usage chunk {usage}")
check(fin["choices"][0]["finish_reason"] == "length" and "timings" in fin, f"final chunk {fin}")
mid = evs[1:-2]
check(all(e["choices"][0]["finish_reason"] is None and "usage" not in e for e in mid), "mid chunks")
streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in mid)
body["stream"] = False; del body["stream_options"]
st, _, full = post("/v1/rag/chat", body)
check(st == 200, "non-stream status")
full = json.loads(full)
check(full["choices"][0]["message"]["content"] == streamed, "streamed text != non-streamed text")
check([s["chunk_id"] for s in full["sources"]] == [s["chunk_id"] for s in evs[0]["sources"]], "sources differ")
# without include_usage no usage anywhere
body["stream"] = True
st, _, raw = post("/v1/rag/chat", body)
check(all("usage" not in e for e in events(raw, "rag chat (no usage)")), "usage without include_usage")

# 3. /text-generation (the seed endpoint): data: {"text": ...} fragments of >= 5 characters
#    or ending in punctuation (the last may be shorter), then [DONE].
PUNCT = set("，。！？；：、,.!?;:\n")
st, ct, raw = post("/text-generation", {"messages": [{"role": "user", "content": q}], "max_tokens": 40})
check(st == 200 and ct.startswith("text/event-stream"), f"seed status {st} {ct}")
frags = events(raw, "text-generation")
check(len(frags) >= 2, "too few fragments")
for i, e in enumerate(frags):
    check(list(e) == ["text"] and isinstance(e["text"], str) and e["text"], f"seed event {e}")
    if i < len(frags) - 1:
        t = e["text"]
        check(len(t) >= 5 or t[-1] in PUNCT, f"fragment {t!r} is short and not at punctuation")

# 4. 20 concurrent RAG requests all complete.
results = []
def one(i):
    st, _, raw = post("/v1/rag/chat", {"messages": [{"role": "user", "content": known[i % len(known)]["q"]}],
                                       "max_tokens": 16, "stream": True})
    results.append(st == 200 and raw.endswith(b"data: [DONE]\n\n") and b'"finish_reason":"length"' in raw)
ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
[t.start() for t in ts]; [t.join() for t in ts]
check(len(results) == 20 and all(results), f"concurrent requests: {results.count(True)}/20 ok")

# 5. A client that disconnects cancels its generation.
def metric(name, label=""):
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if (line.startswith(name + " ") or line.startswith(name + "{")) and label in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0
ABORT = ("ragd_requests_finished_total", '"abort"')
aborted0 = metric(*ABORT)
s = socket.create_connection((host, port))
payload = json.dumps({"messages": [{"role": "user", "content": q}], "max_tokens": 100000 // 50,
                      "stream": True, "ignore_eos": True}).encode()
s.sendall(b"POST /v1/rag/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
got = b""
while got.count(b"chat.completion.chunk") < 3:
    d = s.recv(4096); check(d, "stream closed early"); got += d
s.close()
deadline = time.time() + 60
while time.time() < deadline:
    if metric(*ABORT) > aborted0 and metric("ragd_requests_running") == 0:
        break
    time.sleep(0.2)
check(metric(*ABORT) > aborted0, "disconnect did not abort the request")
check(metric("ragd_requests_running") == 0 and metric("ragd_kv_blocks_used") == 0, "slot/blocks not freed")

# 6. Clear 4xx errors.
def err(path, body, status, param=None):
    st, ct, raw = post(path, body)
    check(st == status, f"{body}: status {st}, want {status}")
    e = json.loads(raw)["error"]
    check(e["message"] and "type" in e and "code" in e and "param" in e, f"error shape {e}")
    if param: check(e["param"] == param, f"param {e['param']} want {param}")
    return e
e = err("/v1/rag/chat", {"messages": [{"role": "user", "content": q}], "indexes": ["nope"]}, 404, "indexes")
check("nope" in e["message"], "missing index not named")
err("/text-generation", {"messages": [{"role": "user", "content": q}], "indexes": ["nope"]}, 404)
err("/v1/rag/chat", {"messages": []}, 400, "messages")
err("/v1/rag/chat", {"messages": [{"role": "user", "content": q}], "top_k": 0}, 400, "top_k")
err("/v1/rag/chat", {"messages": [{"role": "user", "content": q}], "mode": "x"}, 400, "mode")
err("/v1/rag/chat", {"messages": [{"role": "assistant", "content": "x"}]}, 400, "messages")
st, _, raw = post("/v1/rag/chat", {"x": 1}); check(st == 400, "no messages")

# 7. The chat page and the index list.
with urllib.request.urlopen(url + "/", timeout=30) as r:
    page = r.read().decode(); check("text/html" in r.headers["Content-Type"] and "/app.js" in page, "chat page")
with urllib.request.urlopen(url + "/v1/indexes", timeout=30) as r:
    ix = json.loads(r.read()); check([i["name"] for i in ix["data"]] == ["cmrc"] and ix["data"][0]["chunks"] >= 40, f"indexes {ix}")
with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
    m = r.read().decode()
for stage in ("keywords", "embed", "search", "prompt", "ttft", "generation"):
    check(f'ragd_rag_stage_seconds_count{{stage="{stage}"}}' in m, f"/metrics lacks the {stage} histogram")
print("http checks ok")
PY

# 8. ragd ask against the server: the answer, then the sources.
"$RAGD_BIN" ask --url "$URL" --top-k 2 --max-tokens 8 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["q"])' "$TMP/known.json")" \
  >"$TMP/ask.out" 2>"$TMP/ask.err" || { cat "$TMP/ask.err"; fail "ragd ask failed"; }
grep -q "^Sources:" "$TMP/ask.out" && grep -q "^\[2\] cmrc" "$TMP/ask.out" || { cat "$TMP/ask.out"; fail "ragd ask lists no sources"; }
grep -q "TTFT\|ttft" "$TMP/ask.err" || fail "ragd ask prints no timings"
"$RAGD_BIN" ask --url "$URL" --index nope "问题" >/dev/null 2>"$TMP/ask.err"; [ $? -eq 1 ] || fail "ask with a missing index must exit 1"
grep -q "nope" "$TMP/ask.err" || fail "ask does not report the missing index"

# ragd ask in-process (--kb --model --embed-model): one JSON object with answer, sources, timings.
"$RAGD_BIN" ask --kb "$TMP/demo.kb" --model "$MODEL" --embed-model "$EMBED" --top-k 2 --max-tokens 4 --json \
  "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["q"])' "$TMP/known.json")" \
  >"$TMP/ask.json" 2>"$TMP/ask.err" || { cat "$TMP/ask.err"; fail "ragd ask (local) failed"; }
python3 - "$TMP/ask.json" <<'PY' || fail "ragd ask --json output: $(cat "$TMP/ask.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["finish_reason"] == "length" and len(d["sources"]) == 2, d
assert d["timings"]["completion_tokens"] == 4 and d["timings"]["prompt_tokens"] > 100, d
PY
"$RAGD_BIN" ask "question" >/dev/null 2>&1; [ $? -eq 2 ] || fail "ask without --kb/--model or --url must exit 2"
"$RAGD_BIN" ask --url "$URL" --kb "$TMP/demo.kb" "q" >/dev/null 2>&1; [ $? -eq 2 ] || fail "ask --url with --kb must exit 2"

# The server shuts down cleanly (under ASan: no leak or memory error was reported).
kill -TERM "$SERVER"; wait "$SERVER"; rc=$?
[ "$rc" -eq 0 ] || { tail -20 "$TMP/serve.log"; fail "server exit status $rc after SIGTERM"; }
grep -q "Sanitizer" "$TMP/serve.log" && { grep -A20 "Sanitizer" "$TMP/serve.log" | head -40; fail "sanitizer report"; }

# 9. An empty knowledge base gives a clear 4xx, not a crash.
PORT2=$(free_port)
"$RAGD_BIN" serve --model "$MODEL" --kb "$TMP/empty.kb" --port "$PORT2" >"$TMP/serve2.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT2/health" 120 || { tail -20 "$TMP/serve2.log"; fail "server 2 did not start"; }
code=$(curl -s -o "$TMP/empty.json" -w '%{http_code}' "http://127.0.0.1:$PORT2/v1/rag/chat" \
  -d '{"messages":[{"role":"user","content":"问题"}]}')
[ "$code" = 400 ] || fail "empty knowledge base: HTTP $code, want 400"
grep -q "empty" "$TMP/empty.json" || fail "empty knowledge base: unclear message: $(cat "$TMP/empty.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT2/v1/indexes")
[ "$code" = 200 ] || fail "empty knowledge base: /v1/indexes HTTP $code"
pass
