#!/usr/bin/env bash
# Proves the release images without a Docker engine. Builds them with buildah (docker/build.sh)
# on a Debian 12 base made here with debootstrap, runs each image's ENTRYPOINT and CMD as
# `docker run` would (buildah run, chroot isolation, the host's network) on free loopback ports,
# makes a table through the server's HTTP API, reads it from PostgreSQL through the foreign
# server that the image's init script made, and runs both images' HEALTHCHECK commands.
# The server requires a password, so pg_kalam's login (KALAMDB_PASSWORD) is proven too.
# Keeps the images (a second run reuses the base and the layer cache); removes everything else.
#   bash docker/test.sh [--profile release|dev | --use-dist]   (passed to docker/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

BASE_IMAGE=localhost/debian:bookworm-slim

log() { printf '[container] %s\n' "$*" >&2; }
die() { printf '[container] FAILED: %s\n' "$*" >&2; exit 1; }

for tool in buildah podman debootstrap setsid curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/setup.sh installs it)"
done
VERSION=$(workspace_version)
started=$SECONDS

WORK=$(mktemp -d /tmp/pg_kalam_container.XXXXXX)
CONTAINERS=() PIDS=()

# program_pid PID: the program that the `buildah run` PID started. With chroot isolation it is a
# process of this host, below buildah's helpers (buildah run, buildah-chroot-runtime,
# buildah-chroot-exec: each name holds "buildah"), the first process that is not one of them.
program_pid() {
  local pid=$1
  while [ -n "$pid" ] && [[ $(ps -o comm= -p "$pid") == *buildah* ]]; do
    pid=$(ps -o pid= --ppid "$pid" | head -1 | tr -d ' ')
  done
  echo "$pid"
}

# stop PID: ends a `buildah run` that start began, as `docker stop` would: SIGTERM to the program
# (buildah itself answers SIGTERM with SIGKILL to it), then, if it has not ended within 20 s,
# SIGKILL to the process group of the `buildah run` (start made the group, with the same id).
stop() {
  local pid=$1 program
  program=$(program_pid "$pid")
  [ -z "$program" ] || kill -TERM "$program" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[i]}"; done
  for i in "${CONTAINERS[@]}"; do buildah rm "$i" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP # so that cleanup runs when the test is interrupted too

# debian_mirror SUITE_DIR: the first URL of apt's sources here that ends in /SUITE_DIR ("debian",
# "debian-security"), else deb.debian.org's.
debian_mirror() {
  local url
  url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE "https?://[^ ]*/$1/?( |\$)" | head -1 | tr -d ' ' || true)
  echo "${url:-http://deb.debian.org/$1}"
}

# image_argv CONTAINER run|healthcheck [ARGS...]: NUL-separated, the command `docker run` starts
# (ENTRYPOINT, then ARGS or else CMD) or the HEALTHCHECK's, from the container's image config.
image_argv() {
  buildah inspect --type container "$1" | python3 -c '
import json, sys
config = json.load(sys.stdin)["Docker"]["config"]
if sys.argv[1] == "run":
    argv = (config.get("Entrypoint") or []) + (sys.argv[2:] or config.get("Cmd") or [])
else:
    test = (config.get("Healthcheck") or {}).get("Test") or ["NONE"]
    if test[0] != "CMD":
        sys.exit("the image has no HEALTHCHECK CMD [...] (built without --format docker?)")
    argv = test[1:]
sys.stdout.write("".join(a + "\0" for a in argv))' "${@:2}"
}

# new_container NAME IMAGE ENV...: a working container of IMAGE with the environment ENV
# (NAME=VALUE each), as `docker run -e` gives it. Removed on exit.
new_container() {
  local name=$1 image=$2 env
  shift 2
  buildah from --name "$name" "$image" >/dev/null
  CONTAINERS+=("$name")
  for env in "$@"; do buildah config --env "$env" "$name"; done
}

# start CONTAINER [BUILDAH_RUN_OPTIONS...] -- [ARGS...]: runs the image's command in the
# background, in a process group of its own; output in $WORK/CONTAINER.out and .err. Sets PID.
start() {
  local container=$1 opts=() argv=()
  shift
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  mapfile -d '' argv < <(image_argv "$container" run "$@")
  setsid buildah run --isolation chroot "${opts[@]}" "$container" -- "${argv[@]}" \
    >"$WORK/$container.out" 2>"$WORK/$container.err" &
  PID=$!
  PIDS+=("$PID")
}

# healthcheck CONTAINER [BUILDAH_RUN_OPTIONS...]: runs the image's HEALTHCHECK command once.
healthcheck() {
  local argv=()
  mapfile -d '' argv < <(image_argv "$1" healthcheck)
  buildah run --isolation chroot "${@:2}" "$1" -- "${argv[@]}"
}

# show_logs CONTAINER: its output, for a failure message.
show_logs() { tail -n 30 "$WORK/$1.out" "$WORK/$1.err" >&2 || true; }

# (a) The base image: Debian 12 from debootstrap, like Docker's debian:bookworm-slim: no package
# lists, and apt sources with the updates and security suites (PostgreSQL's fixes come from there).
if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE is there"
else
  mirror=$(debian_mirror debian)
  log "making $BASE_IMAGE with debootstrap from $mirror (about 2 minutes)"
  rootfs=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$rootfs"/etc/apt/sources.list "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $(debian_mirror debian-security)
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  tar -C "$rootfs" -c . | podman import --quiet - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

# (b) Both images, on that base. The images they replace (same tags, older packages) are
# removed, so that runs after code changes do not pile up untagged images.
images() {
  local image
  for image in "pg-kalam:$VERSION" "kalamdb-server:$VERSION"; do
    buildah images --quiet --no-trunc "$image" 2>/dev/null || true
  done
}
before=$(images)
log "building pg-kalam:$VERSION and kalamdb-server:$VERSION (docker/build.sh)"
PG_BASE_IMAGE=$BASE_IMAGE SERVER_BASE_IMAGE=$BASE_IMAGE bash docker/build.sh "$@" 2>&1 \
  | tee "$WORK/build.log" | grep --line-buffered '^\[container\]' >&2 \
  || { tail -n 40 "$WORK/build.log" >&2; die "docker/build.sh failed"; }
after=$(images)
for id in $before; do
  [[ $after == *"$id"* ]] || buildah rmi "$id" >/dev/null 2>&1 || true
done

# (c) kalamdb-server, its data directory a volume from here, owned by the image's user.
# Port 0: the server picks free ports and prints them in its ready line.
name=$(basename "$WORK")
SERVER=$name-server PG=$name-postgres
# The server requires this password; kalam_sql (scripts/common.sh) logs in with it.
KALAMDB_ROOT_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
new_container "$SERVER" "kalamdb-server:$VERSION" KALAMDB_SERVER_HOST=127.0.0.1 \
  KALAMDB_HTTP_PORT=0 KALAMDB_FLIGHT_PORT=0 KALAMDB_ROOT_PASSWORD="$KALAMDB_ROOT_PASSWORD"
server_user=$(buildah inspect --type container --format '{{.Docker.Config.User}}' "$SERVER")
mkdir "$WORK/kalamdb"
chown "$server_user" "$WORK/kalamdb"
start "$SERVER" -v "$WORK/kalamdb:/var/lib/kalamdb" --
SERVER_PID=$PID
await_kalamdb "$WORK/$SERVER.out" "$SERVER_PID" 30 \
  || { show_logs "$SERVER"; die "kalamdb-server exited, or printed no ready line in 30 s"; }
log "kalamdb-server up: Flight SQL 127.0.0.1:$FLIGHT_PORT, HTTP 127.0.0.1:$HTTP_PORT"
healthcheck "$SERVER" -e "KALAMDB_HTTP_PORT=$HTTP_PORT" || die "the server image's HEALTHCHECK failed"
health=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/v1/api/healthcheck")
[[ $health == *"\"version\":\"$VERSION\""* ]] \
  || die "the server's healthcheck answered $health, expected version $VERSION"
[ -n "$(ls -A "$WORK/kalamdb")" ] || die "the server wrote nothing into its data volume"
[ -z "$(find "$WORK/kalamdb" ! -user "${server_user%%:*}")" ] \
  || die "files in the data volume not owned by the image's user $server_user: the server ran as someone else"

# (d) PostgreSQL, its foreign server pointed at that kalamdb-server, logging in as root.
PG_PORT=$(free_port)
PG_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
new_container "$PG" "pg-kalam:$VERSION" POSTGRES_USER=kalam POSTGRES_PASSWORD="$PG_PASSWORD" \
  POSTGRES_DB=app PGPORT="$PG_PORT" \
  KALAMDB_HOST=127.0.0.1 KALAMDB_PORT="$FLIGHT_PORT" KALAMDB_PASSWORD="$KALAMDB_ROOT_PASSWORD"
start "$PG" -- -c listen_addresses=127.0.0.1
PG_PID=$PID
for _ in $(seq 1 60); do
  healthcheck "$PG" 2>/dev/null && break
  kill -0 "$PG_PID" 2>/dev/null || { show_logs "$PG"; die "PostgreSQL exited"; }
  sleep 0.5
done
healthcheck "$PG" || { show_logs "$PG"; die "PostgreSQL is not ready after 30 s (its HEALTHCHECK fails)"; }
log "PostgreSQL up on 127.0.0.1:$PG_PORT"
# psql_tcp PASSWORD: a login over TCP, which needs the password.
psql_tcp() {
  buildah run --isolation chroot -e PGPASSWORD="$1" "$PG" -- \
    psql -X -At -h 127.0.0.1 -U kalam -d app -c 'SELECT 1' 2>/dev/null
}
[ "$(psql_tcp "$PG_PASSWORD")" = 1 ] || die "PostgreSQL refused a TCP login with POSTGRES_PASSWORD"
! psql_tcp wrong >/dev/null || die "PostgreSQL accepted a TCP login with a wrong password"

# (e) A table made on the server, read from PostgreSQL; the answers are compared exactly.
psql_pg() { buildah run --isolation chroot "$PG" -- psql -X -q -At -v ON_ERROR_STOP=1 -U kalam -d app "$@"; }
# expect WHAT EXPECTED ACTUAL
expect() {
  [ "$3" = "$2" ] || die "$1: expected
$2
got
$3"
}
# The root password is in force: SQL without credentials is refused.
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data '{"sql": "SELECT 1"}' "http://127.0.0.1:$HTTP_PORT/v1/api/sql")
[ "$status" = 401 ] || die "the server answered $status to SQL without credentials, expected 401"
kalam_sql "CREATE NAMESPACE app"
kalam_sql "CREATE SHARED TABLE app.cities (name TEXT PRIMARY KEY, country TEXT, population BIGINT)"
kalam_sql "INSERT INTO app.cities VALUES
  ('Amsterdam', 'NL', 931000), ('Berlin', 'DE', 3755000), ('Lisbon', 'PT', 545000)"
expect "kalam_version()" "pg_kalam $VERSION" "$(psql_pg -c 'SELECT kalam_version()')"
psql_pg -c 'IMPORT FOREIGN SCHEMA app FROM SERVER kalam_server INTO public'
rows=$(psql_pg -c 'SELECT name, country, population FROM cities WHERE population > 600000 ORDER BY name')
expect "rows read through pg_kalam" "Amsterdam|NL|931000
Berlin|DE|3755000" "$rows"
log "PostgreSQL read the server's table through pg_kalam"

log "passed in $((SECONDS - started)) s"
