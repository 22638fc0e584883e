#!/usr/bin/env bash
# Side-by-side scan benchmark, one run, one cluster: the same rows read from
#   heap        a native PostgreSQL table
#   pg_kalam    a pg_kalam foreign table on kalamdb-server (Flight SQL over loopback)
#   postgres_fdw  a postgres_fdw foreign table over loopback to the heap table (fetch_size 10000)
# Each query runs in interleaved rounds (heap, pg_kalam, postgres_fdw, repeat) so machine noise
# hits all three alike; the median server-side execution time and the ratio to heap are printed.
#
#   bash benches/scan.sh [ROWS] [ROUNDS]      # defaults: 2000000 rows, 5 rounds; release build
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
ROWS=${1:-2000000}
ROUNDS=${2:-5}

bash scripts/setup.sh
build_and_install --release

WORK=$(mktemp -d /tmp/pg_kalam_bench.XXXXXX)
trap 'stop_all "$WORK"; rm -rf "$WORK"' EXIT
start_kalamdb "$WORK" release 0 0

echo "== loading $ROWS rows × (bigint, int, float8, text, timestamp)"
kalam_sql "CREATE SCHEMA bench"
kalam_sql "CREATE TABLE bench.t (id BIGINT, n INT, x DOUBLE, s VARCHAR, ts TIMESTAMP)"
kalam_sql "INSERT INTO bench.t SELECT value, CAST(value % 1000 AS INT), CAST(value AS DOUBLE) * 0.5,
           'row-' || CAST(value AS VARCHAR), to_timestamp(1700000000 + value) FROM generate_series(1, $ROWS)"

start_cluster "$WORK" shared_buffers=1GB max_parallel_workers_per_gather=0 jit=off
PSQL+=(-At)
"${PSQL[@]}" <<SQL
CREATE EXTENSION pg_kalam;
CREATE EXTENSION postgres_fdw;
CREATE SERVER kalam FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '$FLIGHT_PORT', timeout '600000');
CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$PG_PORT', dbname 'postgres', fetch_size '10000');
CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres');
CREATE SCHEMA bench;
CREATE TABLE bench.heap (id bigint, n int, x double precision, s text, ts timestamp);
INSERT INTO bench.heap SELECT g, g % 1000, g * 0.5, 'row-' || g, to_timestamp(1700000000 + g) AT TIME ZONE 'UTC'
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE bench.heap;
CREATE FOREIGN TABLE bench.kalam (id bigint, n int, x double precision, s text, ts timestamp)
  SERVER kalam OPTIONS (namespace 'bench', table 't');
CREATE FOREIGN TABLE bench.pgfdw (id bigint, n int, x double precision, s text, ts timestamp)
  SERVER loopback OPTIONS (schema_name 'bench', table_name 'heap');
SQL

# Median execution time (ms) of one query shape per source.
declare -A TIMES
QUERIES=(
  "all columns|SELECT count(*) FROM (SELECT * FROM bench.%s OFFSET 0) r WHERE r IS NOT NULL"
  "2 columns|SELECT count(*) FROM (SELECT id, x FROM bench.%s OFFSET 0) r WHERE r IS NOT NULL"
)
SOURCES=(heap kalam pgfdw)
exec_ms() { "${PSQL[@]}" -c "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) $1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'; }
for q in "${QUERIES[@]}"; do
  name=${q%%|*}; sql=${q#*|}
  for src in "${SOURCES[@]}"; do exec_ms "$(printf "$sql" "$src")" >/dev/null; done   # warm-up
  for _ in $(seq 1 "$ROUNDS"); do
    for src in "${SOURCES[@]}"; do TIMES["$name|$src"]+="$(exec_ms "$(printf "$sql" "$src")") "; done
  done
done

echo
printf '%-12s %-13s %12s %14s %10s\n' query source median_ms rows_per_s vs_heap
for q in "${QUERIES[@]}"; do
  name=${q%%|*}
  heap=$(echo ${TIMES["$name|heap"]} | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  for src in "${SOURCES[@]}"; do
    med=$(echo ${TIMES["$name|$src"]} | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    label=$src; [ "$src" = kalam ] && label=pg_kalam; [ "$src" = pgfdw ] && label=postgres_fdw
    awk -v n="$name" -v s="$label" -v m="$med" -v h="$heap" -v r="$ROWS" \
      'BEGIN { printf "%-12s %-13s %12.1f %14.0f %9.2fx\n", n, s, m, r / (m / 1000), m / h }'
  done
done
