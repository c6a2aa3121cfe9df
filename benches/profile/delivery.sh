#!/bin/bash
# Callgrind of `herald serve` delivering N queued events to a local sink
# (instruction counts: repeatable on this shared machine, unlike time).
#   cargo bench --bench e2e --no-run      # the bench profile keeps symbols
#   benches/profile/delivery.sh 3000      # prints the top functions, inclusive
#   VIA=api benches/profile/delivery.sh 3000   # the events posted to the API instead
# Output in $OUT (default /tmp/herald-profile): cg.out for callgrind_annotate.
set -euo pipefail
N=${1:-3000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/herald-profile}
H=$ROOT/target/release/herald
PORT=18999
rm -rf "$OUT"; mkdir -p "$OUT/d"; cd "$OUT/d"
export HERALD_DATABASE_PATH=$OUT/d/herald.db HERALD_SERVER_LISTEN=127.0.0.1:0 \
  HERALD_ROUTER_READ_INTERVAL=0.1 HERALD_DELIVERY_ALLOW_NETWORKS=127.0.0.0/8 HERALD_LOG=warn
python3 "$ROOT/benches/profile/sink.py" $PORT & SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT
"$H" webhook add --name bench --url "http://127.0.0.1:$PORT/w" --events '*' \
  --header 'X-Id: <<event.uuid>>' --body "$(cat "$ROOT/templates/presets/iacbox-example.json.tmpl")" >/dev/null
SAMPLE=$ROOT/templates/samples/ticket.login.json
if [ "${VIA:-sql}" = sql ]; then
python3 - "$N" "$OUT/d/herald.db" "$SAMPLE" <<'PY'
import json, sqlite3, sys
n, db, sample = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = json.dumps(json.load(open(sample))["data"])
c = sqlite3.connect(db)
c.executemany("INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', 'T-1', ?)", [(data,)] * n)
c.commit()
PY
fi
KEY=$("$H" admin api-key create --name profile --scope admin)
HERALD_SERVER_LISTEN=127.0.0.1:18998 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$H" serve 2>"$OUT/valgrind.log" & VG=$!
if [ "${VIA:-sql}" = api ]; then
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', 18998), 1)" 2>/dev/null; do sleep 0.5; done
  python3 - "$N" "$KEY" "$SAMPLE" <<'PY'
import http.client, json, sys, threading
n, key, sample = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = json.dumps({"type": "ticket.login", "ticket_id": "T-1", "data": json.load(open(sample))["data"]})
def post(count):
    c = http.client.HTTPConnection("127.0.0.1", 18998)
    for _ in range(count):
        c.request("POST", "/api/v1/events", body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse(); r.read(); assert r.status == 202, r.status
ts = [threading.Thread(target=post, args=(n // 4 + (i < n % 4),)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
fi
until [ "$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM deliveries WHERE state='delivered'\").fetchone()[0])" "$OUT/d/herald.db" 2>/dev/null)" = "$N" ]; do sleep 1; done
kill -INT $VG; wait $VG || true
callgrind_annotate --inclusive=yes "$OUT/cg.out" 2>/dev/null | grep -E 'herald::' | head -40
