#!/usr/bin/env bash
# Client capacity of `ragd loadtest` against the fast local scripted SSE server
# (tests/tools/sse_server.c): (1) many concurrent long-lived streams, (2) parsed SSE events per
# second and client CPU per event, against curl reading the same bytes without parsing as the
# reference measured in the same run.
#
#   bench/loadtest_bench.sh [BUILD_DIR] [STREAMS] [EVENT_USERS] [EVENTS_PER_STREAM]
#   defaults: build 2000 50 40000
set -u
BUILD=${1:-build}
STREAMS=${2:-2000}
EUSERS=${3:-50}
NEV=${4:-40000}
RAGD=$BUILD/ragd
SRV=$BUILD/tests/sse_server
[ -x "$RAGD" ] && [ -x "$SRV" ] || { echo "build first: $RAGD / $SRV missing" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TMP=$(mktemp -d)
"$SRV" --port "$PORT" & SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
B="http://127.0.0.1:$PORT/v1/chat/completions"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"

summ() { # summ JSON: key figures
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["requests"]; ev = sum(x["events"] for x in d["records"])
print(f"  requests ok {r['completed']} failed {r['failed']} cut {r['cut']}, events {ev}, "
      f"total {d['total_s']:.2f} s, errors {d['errors']}")
print(f"  TTFT p50 {d['ttft_ms']['p50']:.2f} p99 {d['ttft_ms']['p99']:.2f} ms; "
      f"ITL p50 {d['itl_ms']['p50']:.2f} p99 {d['itl_ms']['p99']:.2f} max {d['itl_ms']['max']:.2f} ms")
open(sys.argv[1] + ".events", "w").write(str(ev))
PY
}
cpu_of() { grep '^client CPU' "$1" | awk '{print $3}'; }

echo
echo "== 1. $STREAMS concurrent streams (20 events 500 ms apart, TTFT 100 ms: ~10 s each)"
curl -sf "http://127.0.0.1:$PORT/reset" > /dev/null
"$RAGD" loadtest --url "$B?n=20&ttft_ms=100&gap_ms=500" --users "$STREAMS" --loops 1 \
  --threads "${LT_THREADS:-1}" --timeout 120 --no-event-times --json "$TMP/c.json" > "$TMP/c.out" || echo "loadtest failed"
summ "$TMP/c.json"
echo "  client CPU $(cpu_of "$TMP/c.out") s for the whole run"
curl -sf "http://127.0.0.1:$PORT/stats" > "$TMP/truth.json"
python3 - "$TMP/c.json" "$TMP/truth.json" <<'PY'
import json, sys, statistics as st
d = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
g = sorted(t["gap_ms"]); q = lambda a, p: a[min(len(a) - 1, int(p / 100 * len(a)))]
print(f"  server-side truth (when the server really wrote the events): gaps p50 {q(g,50):.2f} "
      f"p99 {q(g,99):.2f} ms; client ITL p50 {d['itl_ms']['p50']:.2f} p99 {d['itl_ms']['p99']:.2f} ms")
print(f"  -> client minus server: p50 {d['itl_ms']['p50'] - q(g,50):+.2f} ms, "
      f"p99 {d['itl_ms']['p99'] - q(g,99):+.2f} ms")
PY

echo
echo "== 2. events/s: $EUSERS streams x $NEV OpenAI chunks, written 100 per write"
"$RAGD" loadtest --url "$B?n=$NEV&batch=100" --users "$EUSERS" --loops 1 --timeout 300 \
  --no-event-times --json "$TMP/e.json" > "$TMP/e.out" || echo "loadtest failed"
summ "$TMP/e.json"
EV=$(cat "$TMP/e.json.events")
CPU=$(cpu_of "$TMP/e.out")
TOT=$(python3 -c "import json; print(json.load(open('$TMP/e.json'))['total_s'])")
# reference: curl reads the same bytes (HTTP + chunked decoding) and throws them away
REFN=$(( EUSERS < 10 ? EUSERS : 10 ))
TIMEFORMAT='%U %S %R'
{ time (for i in $(seq "$REFN"); do curl -sN -X POST -d '{}' "$B?n=$NEV&batch=100" -o /dev/null & done; wait) ; } 2> "$TMP/curl.t"
read -r CU CS CR < "$TMP/curl.t"
python3 - "$EV" "$CPU" "$TOT" "$REFN" "$NEV" "$CU" "$CS" <<'PY'
import sys
ev, cpu, tot, refn, nev, cu, cs = (float(x) for x in sys.argv[1:])
curl_cpu = cu + cs
print(f"  ragd loadtest: {ev/tot:,.0f} events/s wall, {ev/cpu:,.0f} events per client CPU-second, "
      f"{cpu/ev*1e6:.2f} us CPU per event (SSE parse + JSON + timestamps + records)")
print(f"  reference curl (no parsing): {refn*nev/curl_cpu:,.0f} events per CPU-second, "
      f"{curl_cpu/(refn*nev)*1e6:.2f} us per event -> loadtest costs "
      f"{(cpu/ev)/(curl_cpu/(refn*nev)):.1f}x curl per event")
PY

echo
echo "== 3. open loop: 1000 req/s Poisson for 5 s (5 events 10 ms apart each)"
"$RAGD" loadtest --seed 8 --url "$B?n=5&gap_ms=10" --rate 1000 --duration 5 --no-event-times \
  --json "$TMP/o.json" > "$TMP/o.out" || echo "loadtest failed"
summ "$TMP/o.json"
python3 - "$TMP/o.json" <<'PY'
import json, sys, statistics as st
d = json.load(open(sys.argv[1])); l = sorted(r["start_s"] - r["scheduled_s"] for r in d["records"])
print(f"  scheduled arrivals {len(l)}, achieved {d['throughput']['requests_per_s']:.1f} req/s; "
      f"start lateness vs the absolute schedule p50 {st.median(l)*1e3:.1f} ms, "
      f"p99 {l[int(0.99*len(l))]*1e3:.1f} ms, max {l[-1]*1e3:.1f} ms (1 ms JSON resolution)")
PY
echo "  client CPU $(cpu_of "$TMP/o.out") s"
