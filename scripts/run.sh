#!/usr/bin/env bash
# `make run`: admin + redirector in the foreground, on $REDIS_URL if it answers, else on a
# local redis-server (AOF on, fsynced before every answer; data under .data/) that stops with
# this script.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
scripts/private_data.sh .data

redis_answers() {
    "$BIN/python" - "$1" <<'PY'
import sys
from redis import Redis
try:
    Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
except Exception:
    sys.exit(1)
PY
}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [[ -n "${REDIS_URL:-}" ]] && redis_answers "$REDIS_URL"; then
    echo "using Redis at $REDIS_URL"
else
    [[ -n "${REDIS_URL:-}" ]] && echo "REDIS_URL=$REDIS_URL does not answer; starting a local redis-server"
    command -v redis-server >/dev/null || { echo "redis-server is not on PATH (apt-get install -y redis-server)" >&2; exit 1; }
    port="${DEV_REDIS_PORT:-6390}"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/.data" --appendonly yes \
        --appendfsync always \
        --save "" --maxmemory-policy noeviction \
        --hash-max-listpack-entries 512 --hash-max-listpack-value 1024 \
        --logfile "$PWD/.data/redis.log" &
    pids+=($!)
    export REDIS_URL="redis://127.0.0.1:$port/0"
    for _ in $(seq 50); do redis_answers "$REDIS_URL" && break; sleep 0.1; done
    redis_answers "$REDIS_URL" || { echo "local redis-server did not start, see .data/redis.log" >&2; exit 1; }
    echo "started redis-server at $REDIS_URL (data in .data/)"
fi

if [[ -z "${ADMIN_API_KEYS:-}" ]]; then
    ADMIN_API_KEYS="$(scripts/private_data.sh .data --key)"
    export ADMIN_API_KEYS
fi
KEY="${ADMIN_API_KEYS%%,*}"

"$BIN/python" -m admin & pids+=($!)
"$BIN/python" -m redirector & pids+=($!)

ADMIN="http://${ADMIN_HOST:-127.0.0.1}:${ADMIN_PORT:-8081}"
REDIRECTOR="http://${REDIRECTOR_HOST:-127.0.0.1}:${REDIRECTOR_PORT:-8080}"
for url in "$ADMIN/healthz" "$REDIRECTOR/healthz"; do
    for _ in $(seq 100); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done

cat <<TXT

smslinks is running (Ctrl-C stops it)
  admin API   $ADMIN      (bearer key below)
  redirector  $REDIRECTOR
  Redis       $REDIS_URL

Try it (paste into another shell):

export KEY=$KEY ADMIN=$ADMIN REDIRECTOR=$REDIRECTOR
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "\$1"; }
CAMPAIGN=\$(curl -s -X POST \$ADMIN/api/campaigns -H "Authorization: Bearer \$KEY" \\
  -d '{"name": "Black Friday", "kind": "campaign"}' | json id)
CODE=\$(curl -s -X POST \$ADMIN/api/links -H "Authorization: Bearer \$KEY" \\
  -d "{\"url\": \"https://shop.example/deals?ref=sms\", \"campaign_id\": \$CAMPAIGN}" | json code)
curl -si \$REDIRECTOR/\$CODE | head -n 4

TXT
# Until Ctrl-C, a server dying, or whoever started us going away (a SIGTERM to `make`
# alone would otherwise leave the servers running without it).
parent=$PPID
while kill -0 "$parent" 2>/dev/null; do
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { echo "a server stopped; stopping the rest" >&2; exit 1; }
    done
    sleep 1
done
