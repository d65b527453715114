#!/usr/bin/env bash
# The main job (`make run` sets up and builds first): ingest the CMRC 2018 demo corpus into a
# knowledge base once, start `ragd serve` with a chat model and an embedding model over it,
# and print the chat page's URL. Ctrl-C stops the server.
#
#   scripts/run.sh [--model DIR] [--embed-model DIR] [--port N] [--host H] [--kb FILE]
#
# Defaults: the test models in ../shared/models (qwen2-tiny, bert-tiny: real architectures
# and tokenizers, RANDOM weights - answers read as noise while retrieval, streaming and speed
# are real). Name real models to get real answers, e.g.
#   scripts/run.sh --model ~/models/Qwen2.5-7B-Instruct --embed-model ~/models/bge-small-zh-v1.5
# Environment equivalents: RAGD_MODEL, RAGD_EMBED_MODEL, RAGD_PORT, RAGD_HOST, RAGD_KB,
# RAGD_CORPUS, RAGD_INDEX, RAGD_SHARED, RAGD_BIN; extra `ragd serve` flags in RAGD_SERVE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RAGD_BIN:-build/ragd}
SHARED=${RAGD_SHARED:-$(cd .. && pwd)/shared}
MODEL=${RAGD_MODEL:-$SHARED/models/qwen2-tiny}
EMBED=${RAGD_EMBED_MODEL:-$SHARED/models/bert-tiny}
HOST=${RAGD_HOST:-127.0.0.1}
PORT=${RAGD_PORT:-8080}
KB=${RAGD_KB:-}
CORPUS=${RAGD_CORPUS:-$SHARED/data/cmrc2018/corpus.jsonl}
INDEX=${RAGD_INDEX:-cmrc}

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --embed-model) EMBED=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --host) HOST=$2; shift 2 ;;
    --kb) KB=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

[ -x "$BIN" ] || { echo "run.sh: $BIN not found - run 'make run' (it builds first)" >&2; exit 1; }
for d in "$MODEL" "$EMBED"; do
  [ -d "$d" ] || { echo "run.sh: model directory '$d' not found (set RAGD_SHARED or pass --model/--embed-model)" >&2; exit 1; }
done
[ -f "$CORPUS" ] || { echo "run.sh: corpus '$CORPUS' not found (set RAGD_SHARED)" >&2; exit 1; }

# One knowledge base per embedding model: an index records the model that embedded it.
if [ -z "$KB" ]; then
  KB="data/demo-$(basename "$(cd "$EMBED" && pwd)").kb"
fi
mkdir -p "$(dirname "$KB")"

# Ingest once: re-ingesting an unchanged file is a no-op, so this is cheap on later runs and
# resumes an interrupted first run.
echo "== knowledge base $KB (index '$INDEX' <- $CORPUS)"
"$BIN" ingest --kb "$KB" --index "$INDEX" --embed-model "$EMBED" "$CORPUS"

echo "== starting ragd serve on http://$HOST:$PORT/ (model $MODEL, embeddings $EMBED)"
# shellcheck disable=SC2086
"$BIN" serve --model "$MODEL" --embed-model "$EMBED" --kb "$KB" --host "$HOST" --port "$PORT" \
  ${RAGD_SERVE_ARGS:-} &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null' INT TERM EXIT
for _ in $(seq 1 600); do
  if curl -sf -o /dev/null "http://$HOST:$PORT/health"; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { echo "run.sh: ragd serve exited" >&2; exit 1; }
  sleep 0.5
done
curl -sf -o /dev/null "http://$HOST:$PORT/health" || { echo "run.sh: server did not become ready" >&2; exit 1; }
echo
echo "  Chat page:   http://$HOST:$PORT/"
echo "  Terminal:    $BIN ask --url http://$HOST:$PORT \"范廷颂是什么时候被任为主教的？\""
echo "  API:         curl -N http://$HOST:$PORT/v1/rag/chat -d '{\"messages\":[{\"role\":\"user\",\"content\":\"...\"}],\"stream\":true}'"
echo "  (Ctrl-C stops the server)"
wait "$SERVER"
