# Sourced by the project's scripts: where builds go, which PostgreSQL is used, and helpers.
# Builds are cached outside the checkout so a fresh clone (CI) reuses them; override freely.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pg_kalam/target}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export NO_COLOR=1

# Builds the workspace (kalamdb-server among it) and installs the extension into $PG_CONFIG's
# PostgreSQL. $1: cargo profile flag ("" for debug, "--release").
# The package set is the one the tests build (--workspace --exclude pg_kalam): building another
# set would unify dependency features differently and rebuild DataFusion.
build_and_install() {
  local profile=${1:-}
  echo "[build] workspace ${profile:-(debug)}" >&2
  cargo build --locked --workspace --exclude pg_kalam $profile
  echo "[build] pg_kalam extension -> $($PG_CONFIG --pkglibdir)" >&2
  cargo pgrx install --pg-config "$PG_CONFIG" $profile >/dev/null
  # pgrx copies the upgrade scripts of sql/ but not the install scripts of released versions,
  # which CREATE EXTENSION pg_kalam VERSION '<old>' (and the upgrade tests) need.
  install -m 644 sql/pg_kalam--*.sql "$($PG_CONFIG --sharedir)/extension/"
}

# The version of everything this repository builds: [workspace.package] version in Cargo.toml.
workspace_version() {
  sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml
}

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# start_kalamdb DIR SERVER FLIGHT_PORT HTTP_PORT [ARGS...]: starts kalamdb-server in the
# background with its data under DIR, waits for its ready line, and sets KALAMDB_PID,
# FLIGHT_PORT, HTTP_PORT (ports resolved when 0 was asked for). SERVER: a build profile's
# directory (debug, release) or the path of a kalamdb-server binary; ARGS go to the server.
start_kalamdb() {
  local dir=$1 server=$2 flight=$3 http=$4
  shift 4
  [[ $server == */* ]] || server="$CARGO_TARGET_DIR/$server/kalamdb-server"
  KALAMDB_FLIGHT_PORT=$flight KALAMDB_HTTP_PORT=$http KALAMDB_DATA_DIR="$dir/kalamdb" \
    "$server" "$@" >"$dir/server.out" 2>"$dir/server.log" &
  KALAMDB_PID=$!
  await_kalamdb "$dir/server.out" "$KALAMDB_PID" 10 \
    || { cat "$dir/server.log" >&2; echo "kalamdb-server did not start; see $dir/server.log" >&2; return 1; }
}

# await_kalamdb OUT PID SECONDS: waits until the kalamdb-server process PID (or a process
# that runs it) has printed its ready line into OUT, and sets FLIGHT_PORT and HTTP_PORT from
# it; fails when PID ends first or SECONDS pass.
await_kalamdb() {
  local out=$1 pid=$2
  for _ in $(seq 1 $(($3 * 10))); do
    grep -q ready "$out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  FLIGHT_PORT=$(sed -n 's/.*flight=[^ ]*:\([0-9]*\).*/\1/p' "$out")
  HTTP_PORT=$(sed -n 's/.*http=[^ ]*:\([0-9]*\).*/\1/p' "$out")
  [ -n "$FLIGHT_PORT" ]
}

# free_port: a loopback TCP port nobody listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# kalam_sql SQL: runs one statement on the server at HTTP_PORT (start_kalamdb's), through HTTP;
# as root with KALAMDB_ROOT_PASSWORD when that is set.
kalam_sql() {
  local body answer auth=()
  body=$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$1")
  [ -z "${KALAMDB_ROOT_PASSWORD:-}" ] || auth=(-u "root:$KALAMDB_ROOT_PASSWORD")
  answer=$(curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' --data "$body" \
    "http://127.0.0.1:$HTTP_PORT/v1/api/sql") || { echo "KalamDB SQL failed: $1: $answer" >&2; return 1; }
}

# start_cluster DIR [postgres -c options...]: initdb + start a cluster in DIR/pgdata on a free
# loopback port, owned by the postgres OS user when run as root. Sets PG_PORT and PSQL (array).
start_cluster() {
  local dir=$1; shift
  local bin; bin=$($PG_CONFIG --bindir)
  local extra="" opt
  for opt in "$@"; do extra+=" -c $opt"; done
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  PG_PORT=$(free_port)
  as_pg "$bin/initdb" -D "$dir/pgdata" -A trust -U postgres -E UTF8 --locale=C >/dev/null
  as_pg "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/postgres.log" -w \
    -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1$extra" start >/dev/null
  PSQL=("$bin/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
}

# stop_all DIR: stops the cluster and server started above (by their PID/data dir).
stop_all() {
  local dir=$1
  [ -f "$dir/pgdata/postmaster.pid" ] && as_pg "$($PG_CONFIG --bindir)/pg_ctl" -D "$dir/pgdata" -m fast stop >/dev/null 2>&1
  [ -n "${KALAMDB_PID:-}" ] && kill "$KALAMDB_PID" 2>/dev/null && wait "$KALAMDB_PID" 2>/dev/null
  return 0
}
