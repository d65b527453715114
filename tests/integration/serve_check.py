#!/usr/bin/env python3
"""Checks for `ragd serve` used by test_serve*.sh (stdlib only). Each subcommand exits non-zero
with a message on the first failure. Usage: serve_check.py URL CHECK [args]"""
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

URL = sys.argv[1]
U = urllib.parse.urlparse(URL)
HOST, PORT = U.hostname, U.port
MODEL = "qwen2-tiny"
SANITIZED = os.environ.get("RAGD_SANITIZED") == "1"
NTOK = 12 if SANITIZED else 24  # generated tokens per request in the batching checks


def die(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def req(method, path, body=None, headers=None, raw=None, timeout=300):
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    h = {"Content-Type": "application/json"}
    if os.environ.get("RAGD_API_KEY"):
        h["Authorization"] = "Bearer " + os.environ["RAGD_API_KEY"]
    h.update(headers or {})
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, dict(r.getheaders()), out


def post(path, body, **kw):
    st, h, out = req("POST", path, body, **kw)
    try:
        j = json.loads(out)
    except Exception:
        j = None
    return st, h, j, out


def stream(path, body, max_events=None):
    """POST and read SSE events; returns (status, [event data strings], raw)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=300)
    h = {"Content-Type": "application/json"}
    if os.environ.get("RAGD_API_KEY"):
        h["Authorization"] = "Bearer " + os.environ["RAGD_API_KEY"]
    c.request("POST", path, body=json.dumps(body), headers=h)
    r = c.getresponse()
    if r.status != 200:
        out = r.read()
        c.close()
        return r.status, [], out
    ctype = r.getheader("Content-Type")
    if not ctype.startswith("text/event-stream"):
        die("stream content type %r" % ctype)
    buf = b""
    events = []
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: "):
                die("bad SSE framing: %r" % ev[:80])
            events.append(ev[6:].decode("utf-8"))
            if max_events and len(events) >= max_events:
                c.close()
                return 200, events, None
    c.close()
    if buf.strip():
        die("trailing bytes after the last event: %r" % buf[:80])
    return 200, events, None


def metrics():
    st, _, out = req("GET", "/metrics")
    if st != 200:
        die("/metrics -> %d" % st)
    vals = {}
    for line in out.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, v = line.rsplit(" ", 1)
        vals[k] = float(v)
    return vals


def wait_idle(limit=60):
    t0 = time.time()
    while time.time() - t0 < limit:
        m = metrics()
        if m.get("ragd_requests_running") == 0 and m.get("ragd_kv_blocks_used") == 0 \
                and m.get("ragd_requests_waiting") == 0:
            return m
        time.sleep(0.05)
    die("server did not become idle: %r" % {k: v for k, v in metrics().items() if "running" in k or "blocks" in k or "waiting" in k})


def golden_cases():
    shared = os.environ["RAGD_SHARED"]
    g = json.load(open(os.path.join(shared, "golden", "qwen2-tiny_golden.json")))
    return g["cases"]


def greedy_ids(ids, max_tokens, logprobs=None):
    body = {"model": MODEL, "prompt": ids, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, "logprobs": 1 if logprobs else None,
            "return_tokens_as_token_ids": True}
    st, _, j, out = post("/v1/completions", body)
    if st != 200:
        die("completion -> %d %r" % (st, out[:300]))
    return j


def out_ids(j):
    return [int(t.split(":")[1]) for t in j["choices"][0]["logprobs"]["tokens"]]


def check_golden():
    cases = golden_cases()
    pick = list(range(0, len(cases), 6 if not SANITIZED else 40)) + [len(cases) - 2]
    if not SANITIZED:
        pick.append(len(cases) - 1)  # the 1500-token prompt
    for ci in pick:
        c = cases[ci]
        ids = [i % 151936 for i in c["ids"]]
        j = greedy_ids(ids, len(c["greedy"]), logprobs=True)
        lps = j["choices"][0]["logprobs"]["token_logprobs"]
        got = out_ids(j)
        n_cmp = len(c["greedy"])
        for k, m in enumerate(c["greedy_margins"]):
            if m < 1e-3:
                n_cmp = k
                break
        if got[:n_cmp] != c["greedy"][:n_cmp]:
            die("case %d greedy ids %r vs golden %r" % (ci, got, c["greedy"]))
        for k in range(n_cmp):
            ref = c["greedy_logprobs"][k]
            if abs(lps[k] - ref) > 1e-4 * max(1.0, abs(ref)):
                die("case %d token %d logprob %g vs golden %g" % (ci, k, lps[k], ref))
        if j["usage"]["prompt_tokens"] != len(ids) or j["usage"]["completion_tokens"] != len(c["greedy"]):
            die("case %d usage %r" % (ci, j["usage"]))
    print("golden: %d cases match (greedy ids and logprobs)" % len(pick))


def mixed_prompts(n):
    cases = golden_cases()
    out = []
    for i in range(n):
        c = cases[(i * 7) % len(cases)]
        ids = [t % 151936 for t in c["ids"]]
        if i % 5 == 4:
            ids = [(t * 3 + i) % 151936 for t in cases[-2]["ids"]][: 100 + 13 * i]
            if SANITIZED:
                ids = ids[:150]
        out.append(ids)
    return out


def check_batched_equals_alone(n=32, max_tokens=NTOK):
    prompts = mixed_prompts(n)
    alone = []
    for p in prompts:
        alone.append(greedy_ids(p, max_tokens, logprobs=True))
    results = [None] * n
    errs = []

    def worker(i):
        try:
            results[i] = greedy_ids(prompts[i], max_tokens, logprobs=True)
        except SystemExit:
            errs.append(i)
        except Exception as e:  # noqa
            errs.append("%d: %r" % (i, e))

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errs:
        die("concurrent requests failed: %r" % errs)
    for i in range(n):
        a = alone[i]["choices"][0]
        b = results[i]["choices"][0]
        if a["logprobs"]["tokens"] != b["logprobs"]["tokens"] or a["text"] != b["text"]:
            die("request %d (prompt %d tokens): batched output differs from alone" % (i, len(prompts[i])))
    print("batched = alone: %d concurrent requests" % n)
    return alone


def check_stream_equals_nonstream():
    for path, body in [
        ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "你好，介绍一下中医"}],
                                  "max_tokens": 40, "temperature": 0, "ignore_eos": True}),
        ("/v1/completions", {"model": MODEL, "prompt": "The quick brown fox", "max_tokens": 40,
                             "temperature": 0, "ignore_eos": True}),
        ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "stop test"}],
                                  "max_tokens": 60, "temperature": 0.8, "seed": 7, "stop": ["e", "\n\n"]}),
    ]:
        st, _, j, out = post(path, body)
        if st != 200:
            die("%s -> %d %r" % (path, st, out[:200]))
        full = j["choices"][0]["message"]["content"] if "messages" in body else j["choices"][0]["text"]
        sb = dict(body, stream=True, stream_options={"include_usage": True})
        st, events, _ = stream(path, sb)
        if st != 200 or events[-1] != "[DONE]":
            die("stream did not end with [DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        text = ""
        kind = "chat.completion.chunk" if "messages" in body else "text_completion"
        for k, ch in enumerate(chunks):
            if ch["object"] != kind or ch["id"] != chunks[0]["id"]:
                die("chunk object/id %r" % ch)
            last = k == len(chunks) - 1
            if last:
                if ch["choices"] != [] or ch["usage"]["completion_tokens"] != j["usage"]["completion_tokens"]:
                    die("usage chunk %r vs %r" % (ch, j["usage"]))
                continue
            if ch.get("usage") is not None:
                die("usage before the last chunk")
            c = ch["choices"][0]
            if "messages" in body:
                if k == 0 and c["delta"].get("role") != "assistant":
                    die("first chat chunk lacks the role")
                text += c["delta"].get("content", "")
            else:
                text += c["text"]
        fin = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"][0]["finish_reason"]]
        if fin != [j["choices"][0]["finish_reason"]]:
            die("finish reasons %r vs %r" % (fin, j["choices"][0]["finish_reason"]))
        if text != full:
            die("streamed text %r != non-streamed %r" % (text, full))
        if "stop" in body and any(s in full for s in body["stop"]):
            die("stop string left in the output")
    # the seed endpoint
    st, events, _ = stream("/text-generation", {"messages": [{"role": "user", "content": "你好"}],
                                                "max_tokens": 30, "temperature": 0, "ignore_eos": True})
    if st != 200 or events[-1] != "[DONE]":
        die("/text-generation framing")
    seed_text = "".join(json.loads(e)["text"] for e in events[:-1])
    st, _, j, _ = post("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "你好"}],
                                                "max_tokens": 30, "temperature": 0, "ignore_eos": True})
    if seed_text != j["choices"][0]["message"]["content"]:
        die("/text-generation text differs from chat completion")
    print("streaming = non-streaming (chat, completions, stop strings, /text-generation)")


def check_echo_n():
    st, _, j, _ = post("/v1/completions", {"model": MODEL, "prompt": ["Hello world", "abc"], "n": 2, "max_tokens": 5,
                                           "temperature": 0, "echo": True, "logprobs": 2, "ignore_eos": True})
    if st != 200 or len(j["choices"]) != 4:
        die("n=2 x 2 prompts: %r" % j)
    for c in j["choices"]:
        prompt = "Hello world" if c["index"] < 2 else "abc"
        if not c["text"].startswith(prompt):
            die("echo missing: %r" % c["text"])
        lp = c["logprobs"]
        if lp["token_logprobs"][0] is not None or len(lp["tokens"]) != len(lp["token_logprobs"]):
            die("echo logprobs shape %r" % lp)
    if j["choices"][0]["text"] != j["choices"][1]["text"]:
        die("greedy n=2 choices differ")
    print("echo + prompt logprobs + n>1 + prompt lists ok")


def check_disconnect():
    body = {"model": MODEL, "messages": [{"role": "user", "content": "tell me a long story"}],
            "max_tokens": 20000, "temperature": 0, "ignore_eos": True, "stream": True}
    st, events, _ = stream("/v1/chat/completions", body, max_events=5)
    if st != 200 or len(events) < 5:
        die("disconnect stream start")
    m = wait_idle(60)
    if m.get('ragd_requests_finished_total{finish_reason="abort"}', 0) < 1:
        die("the disconnected request was not aborted")
    print("client disconnect frees the slot and its blocks")


def check_malformed(n):
    bad = [
        ("/v1/chat/completions", b"{"),
        ("/v1/chat/completions", b"[]"),
        ("/v1/chat/completions", b"\xff\xfe{}"),
        ("/v1/completions", b'{"prompt": "\xc3\x28"}'),
        ("/v1/chat/completions", json.dumps({"messages": "hi"}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": []}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": 5, "content": "x"}]}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": 5}]}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}).encode()),
        ("/v1/chat/completions", b'{"messages":[{"role":"user","content":"x"}],"max_tokens":1e308}'),
        ("/v1/chat/completions", b'{"messages":[{"role":"user","content":"x"}],"temperature":1e999}'),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": -1}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "top_p": 0}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 0}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 1.5}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "stop": [1]}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "model": "gpt-4"}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "stop_token_ids": [-1]}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10 ** 9}).encode()),
        ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "seed": 1e30}).encode()),
        ("/v1/completions", json.dumps({"prompt": [151936]}).encode()),
        ("/v1/completions", json.dumps({"prompt": [[1, 2], "x", 3]}).encode()),
        ("/v1/completions", json.dumps({"prompt": []}).encode()),
        ("/v1/completions", json.dumps({"prompt": "x", "logprobs": 21}).encode()),
        ("/v1/completions", json.dumps({"prompt": "x", "echo": 1}).encode()),
        ("/v1/completions", json.dumps({"prompt": "x", "min_tokens": 5, "max_tokens": 2}).encode()),
        ("/v1/completions", json.dumps({"prompt": "x", "use_beam_search": True, "stream": True}).encode()),
        ("/v1/completions", json.dumps({"prompt": [1] * 40000}).encode()),
        ("/tokenize", json.dumps({"prompt": 3}).encode()),
        ("/detokenize", json.dumps({"tokens": ["a"]}).encode()),
        ("/detokenize", json.dumps({"tokens": [10 ** 12]}).encode()),
        ("/v1/nothing", b"{}"),
    ]
    big = b'{"prompt":"' + b"a" * (2 << 20) + b'"}'
    c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    codes = {}
    for i in range(n):
        path, body = bad[i % len(bad)]
        if i % 97 == 96:
            path, body = "/v1/completions", big
        try:
            c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            out = r.read()
        except (http.client.HTTPException, ConnectionError, socket.timeout):
            c.close()
            c = http.client.HTTPConnection(HOST, PORT, timeout=60)
            if body is big:
                codes[413] = codes.get(413, 0) + 1  # server may close after a 413
                continue
            raise
        if not (400 <= r.status < 500):
            die("malformed request %d (%s %r) -> %d %r" % (i, path, body[:60], r.status, out[:200]))
        if path != "/v1/nothing" or True:
            try:
                e = json.loads(out)["error"]
                for k in ("message", "type", "param", "code"):
                    if k not in e:
                        die("error JSON lacks %s: %r" % (k, out))
            except (ValueError, KeyError):
                die("not an OpenAI error body: %r" % out[:200])
        codes[r.status] = codes.get(r.status, 0) + 1
        if r.getheader("Connection", "").lower() == "close":
            c.close()
            c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    c.close()
    st, _, j, _ = post("/v1/completions", {"model": MODEL, "prompt": "still alive", "max_tokens": 3})
    if st != 200:
        die("server stopped serving after malformed requests")
    print("malformed: %d requests -> %r, server still serving" % (n, codes))


def check_preemption(alone, rounds=5):
    # same prompts as check_batched_equals_alone, against a server with a tiny KV cache. All
    # requests start together (barrier); whether they overlap enough to exhaust the cache still
    # depends on scheduling (ASan, a loaded machine), so a round without any preemption is
    # repeated, up to `rounds` times. Every round must return exactly the alone outputs.
    n = len(alone)
    prompts = mixed_prompts(n)
    for rnd in range(rounds):
        results = [None] * n
        gate = threading.Barrier(n)

        def worker(i):
            gate.wait()
            results[i] = greedy_ids(prompts[i], NTOK, logprobs=True)
        ths = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        for i in range(n):
            if results[i] is None:
                die("request %d failed under preemption" % i)
            if results[i]["choices"][0]["logprobs"]["tokens"] != alone[i]["choices"][0]["logprobs"]["tokens"]:
                die("request %d output changed under preemption" % i)
        m = wait_idle(60)
        if m.get("ragd_preemptions_total", 0) >= 1:
            break
    else:
        die("no preemption happened with the tiny KV cache in %d rounds" % rounds)
    print("tiny KV cache: %d preemptions (round %d), all %d requests correct, 0 blocks in use after"
          % (m["ragd_preemptions_total"], rnd + 1, n))


def check_busy():
    """--max-num-seqs 1 --max-waiting 1: one runs, one waits, the third gets 503 + Retry-After."""
    body = json.dumps({"model": MODEL, "prompt": "busy", "max_tokens": 30000, "temperature": 0,
                       "ignore_eos": True, "stream": True})
    hdr = {"Content-Type": "application/json"}
    running = http.client.HTTPConnection(HOST, PORT, timeout=60)
    running.request("POST", "/v1/completions", body=body, headers=hdr)
    r = running.getresponse()
    if r.status != 200:
        die("first request -> %d" % r.status)
    r.read1(100)  # it is generating
    waiting = http.client.HTTPConnection(HOST, PORT, timeout=60)
    waiting.request("POST", "/v1/completions", body=body, headers=hdr)
    t0 = time.time()
    while metrics().get("ragd_requests_waiting", 0) < 1:
        if time.time() - t0 > 30:
            die("second request never queued")
        time.sleep(0.02)
    third = http.client.HTTPConnection(HOST, PORT, timeout=60)
    third.request("POST", "/v1/completions", body=body, headers=hdr)
    r3 = third.getresponse()
    if r3.status != 503 or not r3.getheader("Retry-After"):
        die("third request -> %d (Retry-After %r), want 503" % (r3.status, r3.getheader("Retry-After")))
    e = json.loads(r3.read())["error"]
    if "capacity" not in e["message"]:
        die("503 message %r" % e)
    for c in (running, waiting, third):
        c.close()
    wait_idle(120)
    print("bounded queue: 1 running, 1 waiting, 503 + Retry-After for the next; idle after")


def main():
    what = sys.argv[2]
    if what == "golden":
        check_golden()
    elif what == "batched":
        alone = check_batched_equals_alone(8 if SANITIZED else 32)
        json.dump(alone, open(sys.argv[3], "w"))
    elif what == "preempt":
        check_preemption(json.load(open(sys.argv[3])))
    elif what == "stream":
        check_stream_equals_nonstream()
        check_echo_n()
    elif what == "disconnect":
        check_disconnect()
    elif what == "malformed":
        check_malformed(int(sys.argv[3]))
    elif what == "busy":
        check_busy()
    elif what == "idle":
        wait_idle(60)
    else:
        die("unknown check " + what)


main()
