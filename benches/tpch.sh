#!/usr/bin/env bash
# TPC-H through pg_kalam, side by side, one kalamdb-server and one PostgreSQL cluster:
#   heap          the 8 tables as heap tables with TPC-H's primary keys, ANALYZEd
#   pg_kalam      the same rows in tables authored in KalamDB (CREATE TABLE ... USING kalamdb)
#   postgres_fdw  foreign tables over loopback to the heap tables (use_remote_estimate, fetch_size 10000)
# Data: tpchgen-cli (installed by scripts/setup.sh), loaded with COPY into the heap and through
# pg_kalam. The 22 queries are benches/tpch/queries (the standard text with the validation
# parameters; a unique key ends the ORDER BY of Q3, Q10, Q11 and Q18, so answers compare in order).
# Per query it prints whether pg_kalam's and postgres_fdw's answers are the heap's (in order,
# numerics exact; where the heap's query runs past TIMEOUT, the heap's answer to its
# decorrelated form in benches/tpch/checks), whether pg_kalam ran it as one remote statement
# (the plan is one Foreign Scan), the median times (EXPLAIN ANALYZE's Execution Time, rounds interleaved after a warm-up) and
# the ratios, then the geometric means; and writes a chart to benches/results/tpch-sf<SF>.svg.
#
#   bash benches/tpch.sh [SF] [ROUNDS]        # defaults: SF 1, 3 rounds
#   PROFILE=debug bash benches/tpch.sh 0.1 1  # smoke run on a debug build
#   TIMEOUT=300 bash benches/tpch.sh 1 1      # a statement past 300 s is stopped and shown as
#                                             # ">300000" (left out of the geometric means)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
SF=${1:-1}
ROUNDS=${2:-3}
PROFILE=${PROFILE:-release}
TIMEOUT=${TIMEOUT:-0}
case $PROFILE in
  release) PROFILE_FLAG=--release ;;
  debug) PROFILE_FLAG= ;;
  *) echo "PROFILE=$PROFILE: use release or debug" >&2; exit 2 ;;
esac

bash scripts/setup.sh
build_and_install $PROFILE_FLAG
WORK=$(mktemp -d /tmp/pg_kalam_tpch.XXXXXX)
chmod 755 "$WORK"
trap 'stop_all "$WORK"; rm -rf "$WORK"' EXIT
start_kalamdb "$WORK" "$PROFILE" 0 0
start_cluster "$WORK" shared_buffers=2GB work_mem=256MB max_parallel_workers_per_gather=0 jit=off

echo "== TPC-H SF$SF data (tpchgen-cli)"
tpchgen-cli csv -s "$SF" --output-dir "$WORK/data" >/dev/null
kalam_sql "CREATE SCHEMA tpch"
SCHEMA=$(cat benches/tpch/schema.sql)
"${PSQL[@]}" <<SQL
CREATE EXTENSION pg_kalam;
CREATE EXTENSION postgres_fdw;
CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '$FLIGHT_PORT', timeout '3600000');
CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '127.0.0.1', port '$PG_PORT', dbname 'postgres', fetch_size '10000', use_remote_estimate 'true');
CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres');
CREATE SCHEMA tpch; CREATE SCHEMA tpch_heap; CREATE SCHEMA tpch_pgfdw;
SET search_path = tpch;
${SCHEMA//\{USING\}/USING kalamdb}
SET search_path = tpch_heap;
${SCHEMA//\{USING\}/}
IMPORT FOREIGN SCHEMA tpch_heap FROM SERVER loopback INTO tpch_pgfdw;
SQL
for table in region nation supplier customer part partsupp orders lineitem; do
  header=$(head -1 "$WORK/data/$table.csv")
  for schema in tpch_heap tpch; do
    start=$(date +%s.%N)
    "${PSQL[@]}" -c "\\copy $schema.$table ($header) FROM '$WORK/data/$table.csv' WITH (FORMAT csv, HEADER)"
    echo "  $schema.$table loaded in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  done
done
"${PSQL[@]}" -c "VACUUM ANALYZE" >/dev/null
rm -rf "$WORK/data"

python3 benches/tpch/run.py --psql "${PSQL[*]}" --sf "$SF" --rounds "$ROUNDS" --profile "$PROFILE" --timeout "$TIMEOUT" \
  --chart "benches/results/tpch-sf$SF.svg"
