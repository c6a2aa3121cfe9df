#!/bin/bash
# Callgrind of `herald serve` delivering N queued events to a local sink
# (instruction counts: repeatable on this shared machine, unlike time).
#   cargo bench --bench e2e --no-run      # the bench profile keeps symbols
#   benches/profile/delivery.sh 3000      # prints the top functions, inclusive
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
python3 - "$N" "$OUT/d/herald.db" "$ROOT/templates/samples/ticket.login.json" <<'PY'
import json, sqlite3, sys
n, db, sample = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = json.dumps(json.load(open(sample))["data"])
c = sqlite3.connect(db)
c.executemany("INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', 'T-1', ?)", [(data,)] * n)
c.commit()
PY
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$H" serve 2>"$OUT/valgrind.log" & VG=$!
until [ "$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM deliveries WHERE state='delivered'\").fetchone()[0])" "$OUT/d/herald.db" 2>/dev/null)" = "$N" ]; do sleep 1; done
kill -INT $VG; wait $VG || true
callgrind_annotate --inclusive=yes "$OUT/cg.out" 2>/dev/null | grep -E 'herald::' | head -40
