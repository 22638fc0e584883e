#!/usr/bin/env bash
# Side-by-side benchmark of what authoring adds, one kalamdb-server, one PostgreSQL cluster:
#   ids     IDS ids made in one backend by snowflake_id() (runs reserved on the server), by
#           nextval() of a local sequence and by gen_random_uuid(), as
#           `SELECT count(f()) FROM generate_series(1, IDS)`;
#   insert  INSERT of IDS rows into a KalamDB table authored with `id BIGINT PRIMARY KEY DEFAULT
#           SNOWFLAKE_ID()` leaving the id out (PostgreSQL fills it with snowflake_id()), and
#           the same rows with ids given (`g`), to show what the ids cost a bulk write;
#   create  TABLES tables made (and dropped) by CREATE TABLE ... USING kalamdb, and as heap tables.
# Rounds are interleaved after a warm-up; times are psql's \timing. It prints medians and ratios.
#
#   bash benches/authoring.sh [IDS] [TABLES] [ROUNDS]   # defaults: 1000000 ids, 50 tables, 3 rounds; release
#   PROFILE=debug bash benches/authoring.sh 20000 5 1  # quick smoke run on a debug build
#   BUILD=0 bash benches/authoring.sh                  # without building first
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
IDS=${1:-1000000}
TABLES=${2:-50}
ROUNDS=${3:-3}
PROFILE=${PROFILE:-release}
case $PROFILE in
  release) PROFILE_FLAG=--release ;;
  debug) PROFILE_FLAG= ;;
  *) echo "PROFILE=$PROFILE: use release or debug" >&2; exit 2 ;;
esac
if [ "${BUILD:-1}" = 1 ]; then
  bash scripts/setup.sh
  build_and_install $PROFILE_FLAG
fi

WORK=$(mktemp -d /tmp/pg_kalam_bench.XXXXXX)
chmod 755 "$WORK"
trap 'stop_all "$WORK"; rm -rf "$WORK"' EXIT
start_kalamdb "$WORK" "$PROFILE" 0 0
start_cluster "$WORK" shared_buffers=256MB max_parallel_workers_per_gather=0 jit=off
PSQL+=(-At)
"${PSQL[@]}" <<SQL >/dev/null
CREATE EXTENSION pg_kalam;
CREATE SERVER kalam FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '$FLIGHT_PORT', timeout '600000');
CREATE SEQUENCE ids_seq CACHE 1;
CREATE TABLE app.t (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), g bigint, note text) USING kalamdb;
SQL

timed() { "${PSQL[@]}" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{ s += $1 } END { print s }'; }
declare -A SQL=(
  [ids_snowflake]="SELECT count(snowflake_id()) FROM generate_series(1, $IDS)"
  [ids_sequence]="SELECT count(nextval('ids_seq')) FROM generate_series(1, $IDS)"
  [ids_uuid]="SELECT count(gen_random_uuid()) FROM generate_series(1, $IDS)"
  [insert_default_id]="INSERT INTO app.t (g, note) SELECT g, 'row ' || g FROM generate_series(1, $IDS) g"
  [insert_given_id]="INSERT INTO app.t (id, g, note) SELECT g, g, 'row ' || g FROM generate_series(1, $IDS) g"
)
CASES=(ids_snowflake ids_sequence ids_uuid insert_default_id insert_given_id create_kalamdb create_heap)
create_sql() {
  local using=$1 sql=""
  for i in $(seq 1 "$TABLES"); do
    sql+="CREATE TABLE app.c_$i (id bigint PRIMARY KEY, v text) $using; "
  done
  echo "$sql"
}
drop_sql() { local sql=""; for i in $(seq 1 "$TABLES"); do sql+="DROP TABLE app.c_$i; "; done; echo "$sql"; }
run() {
  case $1 in
    create_kalamdb) ms=$(timed "$(create_sql 'USING kalamdb')"); "${PSQL[@]}" -c "$(drop_sql)" >/dev/null ;;
    create_heap) ms=$(timed "$(create_sql '')"); "${PSQL[@]}" -c "$(drop_sql)" >/dev/null ;;
    insert_*) "${PSQL[@]}" -c "DELETE FROM app.t" >/dev/null; ms=$(timed "${SQL[$1]}") ;;
    *) ms=$(timed "${SQL[$1]}") ;;
  esac
  echo "$ms"
}
declare -A TIMES
for c in "${CASES[@]}"; do run "$c" >/dev/null; done   # warm-up
for r in $(seq 1 "$ROUNDS"); do
  for c in "${CASES[@]}"; do TIMES[$c]+="$(run "$c") "; done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
declare -A M
for c in "${CASES[@]}"; do M[$c]=$(median "${TIMES[$c]}"); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "Authoring, median of $ROUNDS rounds ($PROFILE build): $IDS ids, $TABLES tables"
printf '%-18s %10s  %s\n' case median_ms note
printf '%-18s %10s  %s\n' ids_snowflake "${M[ids_snowflake]}" "$(ratio "${M[ids_snowflake]}" "${M[ids_sequence]}")x a local sequence's time, $(ratio "${M[ids_snowflake]}" "${M[ids_uuid]}")x gen_random_uuid()'s"
printf '%-18s %10s\n' ids_sequence "${M[ids_sequence]}"
printf '%-18s %10s\n' ids_uuid "${M[ids_uuid]}"
printf '%-18s %10s  %s\n' insert_default_id "${M[insert_default_id]}" "$(ratio "${M[insert_default_id]}" "${M[insert_given_id]}")x the time with the ids given"
printf '%-18s %10s\n' insert_given_id "${M[insert_given_id]}"
printf '%-18s %10s  %s\n' create_kalamdb "${M[create_kalamdb]}" "$(awk -v a="${M[create_kalamdb]}" -v n="$TABLES" 'BEGIN { printf "%.1f", a / n }') ms per table, $(ratio "${M[create_kalamdb]}" "${M[create_heap]}")x a heap table's"
printf '%-18s %10s\n' create_heap "${M[create_heap]}"
"${PSQL[@]}" -c "SELECT count(*) = count(DISTINCT id) AS ids_unique FROM app.t" | sed 's/^/ids unique in app.t: /'
