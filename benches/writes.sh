#!/usr/bin/env bash
# Side-by-side benchmark of writes, one kalamdb-server, one PostgreSQL cluster, the same rows
# (ROWS lineitem-like rows made by generate_series in a heap table) written into
#   heap          a PostgreSQL table with a primary key
#   pg_kalam      a pg_kalam foreign table on kalamdb-server (a KalamDB table with a primary key)
#   postgres_fdw  a postgres_fdw foreign table (batch_size 1000) over loopback to a heap table
#                 with a primary key
# by `INSERT INTO t SELECT * FROM src` and by `COPY t FROM '<csv file>'`, each in its own
# transaction (autocommit; the time includes the commit). Rounds are interleaved after a
# warm-up; each round empties the targets first. Times are psql's \timing of the statement.
# Then, on the targets as the last COPY left them, an UPDATE of 10% of the rows by a WHERE
# pg_kalam pushes whole (`l_shipmode = 'AIR' AND l_partkey < 100000`, run by the server as one
# statement), the same rounds. It prints medians, rows/s and ratios, checks every target holds
# ROWS rows after each write and the same updated rows after each UPDATE, and the goals of the
# issue: pg_kalam >= 0.5x the heap's rate and >= 5x postgres_fdw's; the UPDATE <= 2x the heap's time.
# Last, the peak memory of a fresh backend running one INSERT ... SELECT into pg_kalam of 1M and
# of 10M rows (MEMORY_ROWS), which must not grow with the statement.
#
#   bash benches/writes.sh [ROWS] [ROUNDS]     # defaults: 1000000 rows, 3 rounds; release build
#   PROFILE=debug bash benches/writes.sh 20000 1  # quick smoke run on a debug build
#   BUILD=0 bash benches/writes.sh                 # without building first
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
ROWS=${1:-1000000}
ROUNDS=${2:-3}
PROFILE=${PROFILE:-release}
case $PROFILE in
  release) PROFILE_FLAG=--release ;;
  debug) PROFILE_FLAG= ;;
  *) echo "PROFILE=$PROFILE: use release or debug" >&2; exit 2 ;;
esac

# BUILD=0 uses what is built and installed already (after a build of the same commit).
if [ "${BUILD:-1}" = 1 ]; then
  bash scripts/setup.sh
  build_and_install $PROFILE_FLAG
fi

WORK=$(mktemp -d /tmp/pg_kalam_bench.XXXXXX)
chmod 755 "$WORK"
trap 'stop_all "$WORK"; rm -rf "$WORK"' EXIT
start_kalamdb "$WORK" "$PROFILE" 0 0
start_cluster "$WORK" shared_buffers=1GB max_parallel_workers_per_gather=0 jit=off
PSQL+=(-At)

COLUMNS="l_orderkey bigint, l_partkey bigint, l_quantity numeric(15,2), l_extendedprice numeric(15,2),
  l_shipdate date, l_shipmode text, l_comment text"
kalam_sql "CREATE NAMESPACE bench"
kalam_sql "CREATE TABLE bench.t (l_orderkey BIGINT PRIMARY KEY, l_partkey BIGINT, l_quantity DECIMAL(15,2),
  l_extendedprice DECIMAL(15,2), l_shipdate DATE, l_shipmode TEXT, l_comment TEXT)"
CSV="$WORK/rows.csv"
echo "== $ROWS rows in bench.src, and $CSV"
"${PSQL[@]}" <<SQL
CREATE EXTENSION pg_kalam;
CREATE EXTENSION postgres_fdw;
CREATE SERVER kalam FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '$FLIGHT_PORT', timeout '600000');
CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$PG_PORT', dbname 'postgres', batch_size '1000');
CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres');
CREATE SCHEMA bench;
CREATE TABLE bench.src ($COLUMNS);
INSERT INTO bench.src SELECT g, g % 200000, (g % 50) + 0.25, (g % 100000) / 100.0 + 900, date '1992-01-01' + (g % 2500),
  (ARRAY['AIR','MAIL','SHIP','TRUCK','RAIL'])[1 + g % 5], 'comment number ' || g
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE bench.src;
COPY bench.src TO '$CSV' (FORMAT csv);
CREATE TABLE bench.t_heap ($COLUMNS, PRIMARY KEY (l_orderkey));
CREATE TABLE bench.t_remote ($COLUMNS, PRIMARY KEY (l_orderkey));
CREATE FOREIGN TABLE bench.t_kalam ($COLUMNS) SERVER kalam OPTIONS (namespace 'bench', table 't');
CREATE FOREIGN TABLE bench.t_pgfdw ($COLUMNS) SERVER loopback OPTIONS (schema_name 'bench', table_name 't_remote');
SQL

SOURCES=(heap pg_kalam postgres_fdw)
declare -A TARGET=([heap]=bench.t_heap [pg_kalam]=bench.t_kalam [postgres_fdw]=bench.t_pgfdw)
empty() {
  case $1 in
    heap) "${PSQL[@]}" -c "TRUNCATE bench.t_heap" >/dev/null ;;
    postgres_fdw) "${PSQL[@]}" -c "TRUNCATE bench.t_remote" >/dev/null ;;
    pg_kalam) kalam_sql "DELETE FROM bench.t" ;;
  esac
}
# Milliseconds of one write statement into $2's target ($1: insert or copy), after emptying it.
write_ms() {
  empty "$2"
  local sql
  if [ "$1" = insert ]; then sql="INSERT INTO ${TARGET[$2]} SELECT * FROM bench.src"; else sql="COPY ${TARGET[$2]} FROM '$CSV' (FORMAT csv)"; fi
  local ms
  ms=$("${PSQL[@]}" -c '\timing on' -c "$sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
  local rows
  rows=$("${PSQL[@]}" -c "SELECT count(*) FROM ${TARGET[$2]}")
  [ "$rows" = "$ROWS" ] || { echo "$1 into $2: $rows rows, expected $ROWS" >&2; exit 1; }
  echo "$ms"
}

declare -A TIMES
echo "== 1 warm-up round, then $ROUNDS interleaved rounds"
for op in insert copy; do
  for src in "${SOURCES[@]}"; do write_ms "$op" "$src" >/dev/null; done
  for round in $(seq 1 "$ROUNDS"); do
    for src in "${SOURCES[@]}"; do TIMES["$op|$src"]+="$(write_ms "$op" "$src") "; done
  done
  echo "  $op done"
done

UPDATE_WHERE="l_shipmode = 'AIR' AND l_partkey < 100000"
"${PSQL[@]}" -c "EXPLAIN (VERBOSE, COSTS OFF) UPDATE bench.t_kalam SET l_comment = 'x' WHERE $UPDATE_WHERE" \
  | grep -q "Foreign Update" || { echo "the UPDATE of pg_kalam is not run by the server whole" >&2; exit 1; }
# Milliseconds of one UPDATE of $1's target in round $2; the rows it changed must be the heap's.
update_ms() {
  local ms
  ms=$("${PSQL[@]}" -c '\timing on' -c "UPDATE ${TARGET[$1]} SET l_comment = 'updated $2', l_quantity = 1.00 WHERE $UPDATE_WHERE" \
    | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
  local changed
  changed=$("${PSQL[@]}" -c "SELECT count(*) FROM ${TARGET[$1]} WHERE l_comment = 'updated $2' AND l_quantity = 1.00")
  [ "$changed" = "$("${PSQL[@]}" -c "SELECT count(*) FROM bench.src WHERE $UPDATE_WHERE")" ] \
    || { echo "UPDATE of $1: $changed rows updated" >&2; exit 1; }
  # Dead row versions are cleaned outside the timing.
  if [ "$1" != pg_kalam ]; then "${PSQL[@]}" -c "VACUUM bench.t_heap" -c "VACUUM bench.t_remote" >/dev/null; fi
  echo "$ms"
}
for src in "${SOURCES[@]}"; do update_ms "$src" 0 >/dev/null; done
for round in $(seq 1 "$ROUNDS"); do
  for src in "${SOURCES[@]}"; do TIMES["update|$src"]+="$(update_ms "$src" "$round") "; done
done
UPDATED=$("${PSQL[@]}" -c "SELECT count(*) FROM bench.src WHERE $UPDATE_WHERE")
echo "  update done ($UPDATED rows each)"

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
declare -A MEDIAN
for op in insert copy update; do
  for src in "${SOURCES[@]}"; do MEDIAN["$op|$src"]=$(median "${TIMES["$op|$src"]}"); done
done
echo
echo "Writes of $ROWS rows, median of $ROUNDS rounds ($PROFILE build)"
printf '%-7s %-13s %11s %12s %9s\n' write target median_ms rows_per_s vs_heap
for op in insert copy update; do
  n=$ROWS
  [ "$op" = update ] && n=$UPDATED
  for src in "${SOURCES[@]}"; do
    awk -v o="$op" -v s="$src" -v m="${MEDIAN["$op|$src"]}" -v h="${MEDIAN["$op|heap"]}" -v n="$n" \
      'BEGIN { printf "%-7s %-13s %11.1f %12.0f %8.2fx\n", o, s, m, n / (m / 1000), m / h }'
  done
done
echo "goals (rate: rows/s):"
for op in insert copy; do
  awk -v o="$op" -v k="${MEDIAN["$op|pg_kalam"]}" -v h="${MEDIAN["$op|heap"]}" -v f="${MEDIAN["$op|postgres_fdw"]}" 'BEGIN {
    printf "  %s  %s pg_kalam >= 0.5x the heap rate:   %.2fx\n", (h / k >= 0.5 ? "PASS" : "MISS"), o, h / k
    printf "  %s  %s pg_kalam >= 5x postgres_fdw rate: %.2fx\n", (f / k >= 5 ? "PASS" : "MISS"), o, f / k
  }'
done
awk -v k="${MEDIAN["update|pg_kalam"]}" -v h="${MEDIAN["update|heap"]}" 'BEGIN {
  printf "  %s  update of 10%% by a pushed WHERE <= 2x the heap time: %.2fx\n", (k / h <= 2 ? "PASS" : "MISS"), k / h
}'

# Backend memory of one INSERT ... SELECT into pg_kalam, for MEMORY_ROWS rows each (peak RSS of
# a fresh backend, VmHWM): flat when the write streams, whatever the statement's size.
MEMORY_ROWS=${MEMORY_ROWS:-"1000000 10000000"}
echo "backend peak memory (VmHWM) of INSERT INTO pg_kalam SELECT ... FROM generate_series(1, N):"
for n in $MEMORY_ROWS; do
  empty pg_kalam
  peak=$("${PSQL[@]}" -c "INSERT INTO bench.t_kalam SELECT g, g % 200000, (g % 50) + 0.25, (g % 100000) / 100.0 + 900,
      date '1992-01-01' + (g % 2500), (ARRAY['AIR','MAIL','SHIP','TRUCK','RAIL'])[1 + g % 5], 'comment number ' || g
      FROM generate_series(1, $n) g" \
    -c "SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+)'))[1]" | tail -1)
  rows=$("${PSQL[@]}" -c "SELECT count(*) FROM bench.t_kalam")
  [ "$rows" = "$n" ] || { echo "memory run of $n rows: $rows rows written" >&2; exit 1; }
  printf '  %10d rows: %8d kB\n' "$n" "$peak"
done
