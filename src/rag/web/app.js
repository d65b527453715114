// ragd chat page. Plain JS, no dependencies: POST /v1/rag/chat with stream=true and read the
// SSE stream with fetch + ReadableStream. The first event carries the sources, then
// chat.completion.chunk deltas, a final chunk with finish_reason and timings, then [DONE].
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), form = $("ask"), question = $("question");
const sendBtn = $("send"), stopBtn = $("stop"), statusEl = $("status");
let controller = null;

$("settings-toggle").addEventListener("click", () => {
  const s = $("settings");
  s.hidden = !s.hidden;
  $("settings-toggle").setAttribute("aria-expanded", String(!s.hidden));
});

// Bearer key for servers started with --api-key (kept in this browser only).
const keyInput = $("apikey");
keyInput.value = localStorage.getItem("ragd-api-key") || "";
keyInput.addEventListener("change", () => {
  localStorage.setItem("ragd-api-key", keyInput.value);
  loadStatus();
  loadIndexes();
});
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (keyInput.value) h.Authorization = "Bearer " + keyInput.value;
  return h;
}

async function loadStatus() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    if (r.status === 401) { statusEl.textContent = "API key needed (Settings)"; return; }
    const j = await r.json();
    const names = (j.data || []).map((m) => m.id).join(", ");
    statusEl.textContent = names ? "model: " + names : "no model";
  } catch (e) {
    statusEl.textContent = "server unreachable";
  }
}

async function loadIndexes() {
  const box = $("indexes");
  try {
    const r = await fetch("/v1/indexes", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error((j.error && j.error.message) || r.statusText);
    box.textContent = "";
    const list = j.data || [];
    if (!list.length) { box.innerHTML = '<span class="muted">the knowledge base has no indexes</span>'; return; }
    for (const ix of list) {
      const label = document.createElement("label");
      const cb = document.createElement("input");
      cb.type = "checkbox"; cb.checked = true; cb.value = ix.name; cb.name = "index";
      label.append(cb, " " + ix.name + " ");
      const n = document.createElement("span");
      n.className = "muted";
      n.textContent = "(" + (ix.chunks != null ? ix.chunks + " chunks" : "") + ")";
      label.append(n);
      box.append(label);
    }
  } catch (e) {
    box.innerHTML = "";
    box.append(document.createTextNode("cannot list indexes: " + e.message));
  }
}

function selectedIndexes() {
  return [...document.querySelectorAll('#indexes input[name=index]:checked')].map((c) => c.value);
}

function renderSources(turn, sources) {
  const det = turn.querySelector(".sources"), ol = det.querySelector("ol");
  det.querySelector("summary").textContent = "Sources (" + sources.length + ")";
  ol.textContent = "";
  for (const s of sources) {
    const li = document.createElement("li");
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = s.index + " · " + (s.title || s.document) + " · chunk " + s.chunk_id +
        " · score " + Number(s.score).toFixed(4);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = s.text;
    text.title = "tap to show all / less";
    text.addEventListener("click", () => li.classList.toggle("open"));
    li.append(meta, text);
    ol.append(li);
  }
  det.open = sources.length > 0 && sources.length <= 3;
}

function fmtMs(v) { return v == null ? "–" : (v < 10 ? v.toFixed(1) : Math.round(v)) + " ms"; }

function renderStats(turn, t, usage) {
  const parts = [];
  if (t) {
    parts.push("keywords " + fmtMs(t.keywords_ms), "embed " + fmtMs(t.embed_ms),
               "search " + fmtMs(t.search_ms), "prompt " + fmtMs(t.prompt_ms),
               "TTFT " + fmtMs(t.ttft_ms), "generation " + fmtMs(t.generation_ms));
    if (t.tokens_per_s != null) parts.push(t.tokens_per_s.toFixed(1) + " tok/s");
  }
  if (usage) parts.push(usage.prompt_tokens + " prompt + " + usage.completion_tokens + " tokens");
  turn.querySelector(".stats").textContent = parts.join(" · ");
}

// Parse an SSE byte stream into the JSON payloads of its data: lines.
async function* sseEvents(body) {
  const reader = body.getReader(), dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = ev.split("\n").filter((l) => l.startsWith("data:"))
                     .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data === "[DONE]") return;
      if (data) yield JSON.parse(data);
    }
  }
}

async function ask(q) {
  const turn = $("turn-tpl").content.firstElementChild.cloneNode(true);
  turn.querySelector(".q").textContent = q;
  const answer = turn.querySelector(".a");
  answer.classList.add("streaming");
  log.append(turn);
  turn.scrollIntoView({ block: "end" });

  const body = {
    messages: [{ role: "user", content: q }],
    stream: true,
    stream_options: { include_usage: true },
    top_k: Number($("topk").value) || 10,
    mode: $("mode").value,
    max_tokens: Number($("maxtok").value) || 256,
  };
  const ix = selectedIndexes();
  if (ix.length) body.indexes = ix;

  controller = new AbortController();
  sendBtn.disabled = true; stopBtn.hidden = false;
  const t0 = performance.now();
  let timings = null, usage = null, firstTok = null, nChunks = 0;
  try {
    const r = await fetch("/v1/rag/chat", {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { const j = await r.json(); if (j.error) msg = j.error.message; } catch (e) { /* keep */ }
      throw new Error(msg);
    }
    for await (const ev of sseEvents(r.body)) {
      if (ev.error) throw new Error(ev.error.message || "server error");
      if (ev.sources) renderSources(turn, ev.sources);
      if (ev.timings) timings = ev.timings;
      if (ev.usage) usage = ev.usage;
      for (const c of ev.choices || []) {
        const piece = c.delta && c.delta.content;
        if (piece) {
          if (firstTok === null) firstTok = performance.now();
          answer.textContent += piece;
          nChunks++;
        }
      }
      log.scrollTop = log.scrollHeight;
    }
    if (!timings && firstTok !== null) {
      timings = { ttft_ms: firstTok - t0, generation_ms: performance.now() - firstTok };
    }
    renderStats(turn, timings, usage);
  } catch (e) {
    if (e.name === "AbortError") {
      turn.querySelector(".stats").textContent = "stopped";
    } else {
      answer.classList.add("err");
      answer.textContent += (answer.textContent ? "\n" : "") + "error: " + e.message;
    }
  } finally {
    answer.classList.remove("streaming");
    turn.dataset.done = "1";
    controller = null;
    sendBtn.disabled = false; stopBtn.hidden = true;
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = question.value.trim();
  if (!q || controller) return;
  question.value = "";
  ask(q);
});
question.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
});
stopBtn.addEventListener("click", () => controller && controller.abort());

loadStatus();
loadIndexes();
