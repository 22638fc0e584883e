#!/usr/bin/env bash
# The pg_kalam demo, from nothing: installs what is missing, builds, starts kalamdb-server on
# its default ports (Flight SQL 2910, HTTP 2900) and a throwaway PostgreSQL 15 cluster, loads
# one million taxi trips into KalamDB, queries them from PostgreSQL through a foreign table, and
# authors a KalamDB table from PostgreSQL (CREATE TABLE ... USING kalamdb) to write and read.
#
#   bash scripts/demo.sh          # run, print the results, stop everything
#   bash scripts/demo.sh --keep   # leave the server and the cluster running to explore
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1
ROWS=${DEMO_ROWS:-1000000}
FLIGHT_PORT=${KALAMDB_FLIGHT_PORT:-2910}
HTTP_PORT=${KALAMDB_HTTP_PORT:-2900}

bash scripts/setup.sh
build_and_install ""

WORK=$(mktemp -d /tmp/pg_kalam_demo.XXXXXX)
cleanup() { [ "$KEEP" -eq 1 ] || { stop_all "$WORK"; rm -rf "$WORK"; }; }
trap cleanup EXIT

echo "== starting kalamdb-server (Flight SQL 127.0.0.1:$FLIGHT_PORT, HTTP 127.0.0.1:$HTTP_PORT)"
start_kalamdb "$WORK" debug "$FLIGHT_PORT" "$HTTP_PORT"
curl -fsS "http://127.0.0.1:$HTTP_PORT/v1/api/healthcheck"; echo

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
start_cluster "$WORK"
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

\echo '== a KalamDB table authored from PostgreSQL, written and read through it'
CREATE TABLE demo.ratings (
  id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(),
  city TEXT NOT NULL,
  stars INTEGER,
  rated_at TIMESTAMP DEFAULT NOW()
) USING kalamdb WITH (type = 'shared', flush_policy = 'rows:1000,interval:60');
INSERT INTO demo.ratings (city, stars) SELECT city, 1 + (id / 5 % 5)::int FROM demo.trips WHERE id <= 1000;
SELECT city, count(*) AS ratings, round(avg(stars), 2) AS avg_stars FROM demo.ratings GROUP BY city ORDER BY city;
SELECT kalam_exec('SELECT count(*) AS ratings, count(DISTINCT id) AS ids FROM demo.ratings') AS on_the_server;
SQL

if [ "$KEEP" -eq 1 ]; then
  echo "== left running: psql -h 127.0.0.1 -p $PG_PORT -U postgres   (kalamdb-server pid $KALAMDB_PID, files in $WORK)"
fi
