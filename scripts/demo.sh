#!/usr/bin/env bash
# The pg_kalam demo, from nothing: installs what is missing, builds, starts kalamdb-server on
# its default ports (Flight SQL 2910, HTTP 2900) and a throwaway PostgreSQL 15 cluster, loads
# one million taxi trips into KalamDB, and queries them from PostgreSQL through a foreign table.
#
#   bash scripts/demo.sh          # run, print the results, stop everything
#   bash scripts/demo.sh --keep   # leave the server and the cluster running to explore
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
ROWS=${DEMO_ROWS:-1000000}
FLIGHT_PORT=${KALAMDB_FLIGHT_PORT:-2910}
HTTP_PORT=${KALAMDB_HTTP_PORT:-2900}

bash scripts/setup.sh
build_and_install ""

WORK=$(mktemp -d /tmp/pg_kalam_demo.XXXXXX)
chmod 755 "$WORK"
SERVER_PID=""
PGDATA_DIR="$WORK/pgdata"
PG_BIN=$($PG_CONFIG --bindir)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  if [ "$KEEP" -eq 1 ]; then return; fi
  [ -f "$PGDATA_DIR/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null 2>&1 || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting kalamdb-server (Flight SQL 127.0.0.1:$FLIGHT_PORT, HTTP 127.0.0.1:$HTTP_PORT)"
KALAMDB_FLIGHT_PORT=$FLIGHT_PORT KALAMDB_HTTP_PORT=$HTTP_PORT KALAMDB_DATA_DIR="$WORK/kalamdb" \
  "$CARGO_TARGET_DIR/debug/kalamdb-server" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q ready "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/v1/api/healthcheck"; echo

kalam_sql() {
  local body
  body=$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$1")
  curl -fsS -X POST -H 'Content-Type: application/json' --data "$body" "http://127.0.0.1:$HTTP_PORT/v1/api/sql" >/dev/null \
    || { echo "KalamDB SQL failed: $1" >&2; exit 1; }
}

echo "== loading $ROWS trips into KalamDB (namespace demo)"
kalam_sql "CREATE SCHEMA demo"
kalam_sql "CREATE TABLE demo.trips (id BIGINT NOT NULL, city VARCHAR, fare DOUBLE, distance_km DOUBLE, shared_ride BOOLEAN, started_at TIMESTAMP)"
kalam_sql "INSERT INTO demo.trips
  SELECT value,
         CASE value % 5 WHEN 0 THEN 'Amsterdam' WHEN 1 THEN 'Berlin' WHEN 2 THEN 'Lisbon' WHEN 3 THEN 'Oslo' ELSE 'Paris' END,
         CAST((value * 7919) % 5000 AS DOUBLE) / 100.0,
         CASE WHEN value % 97 = 0 THEN NULL ELSE CAST((value * 104729) % 300 AS DOUBLE) / 10.0 END,
         value % 11 = 0,
         to_timestamp(1735689600 + value * 30)
  FROM generate_series(1, $ROWS)"

echo "== starting PostgreSQL 15 with pg_kalam"
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -A trust -U postgres -E UTF8 --locale=C >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$WORK/postgres.log" -w \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null

PSQL=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" <<SQL
CREATE EXTENSION pg_kalam;
SELECT kalam_version(), kalam_compiled_mode();
CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '$FLIGHT_PORT');
CREATE SCHEMA demo;
CREATE FOREIGN TABLE demo.trips (
  id bigint, city text, fare double precision, distance_km double precision,
  shared_ride boolean, started_at timestamp
) SERVER kalam_server;

\echo '== fares by city, rides started in March 2025 or later'
\timing on
SELECT city,
       count(*)                                    AS trips,
       round(avg(fare)::numeric, 2)                AS avg_fare,
       round(sum(distance_km)::numeric, 1)         AS total_km,
       round(100.0 * avg(shared_ride::int), 1)     AS shared_pct,
       min(started_at)                             AS first_ride
FROM demo.trips
WHERE started_at >= '2025-03-01'
GROUP BY city
ORDER BY trips DESC, city;
\timing off

\echo '== what runs on the KalamDB server'
EXPLAIN (VERBOSE, COSTS OFF)
SELECT city, avg(fare) FROM demo.trips WHERE started_at >= '2025-03-01' GROUP BY city;
SQL

if [ "$KEEP" -eq 1 ]; then
  echo "== left running: psql -h 127.0.0.1 -p $PG_PORT -U postgres   (kalamdb-server pid $SERVER_PID, files in $WORK)"
fi
