#!/usr/bin/env bash
# Entrypoint of the pg-kalam image.
# - On the official postgres image: hands over to its docker-entrypoint.sh, so every variable it
#   documents works; it runs /docker-entrypoint-initdb.d/ (pg_kalam's script among them) once.
# - On a plain Debian base: the minimal equivalent. On first start, initdb of the empty $PGDATA
#   as user postgres (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB), a password for every TCP
#   connection, /docker-entrypoint-initdb.d/* run once; then PostgreSQL on every interface,
#   port $PGPORT (default 5432).
# As with the official image, `docker run IMAGE -c name=value` passes options to postgres, and
# any other command (psql, bash) runs instead of it.
set -euo pipefail

if command -v docker-entrypoint.sh >/dev/null 2>&1; then
  exec docker-entrypoint.sh "$@"
fi

if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi

# As root: hand the data directory to postgres, then start again as postgres.
if [ "$(id -u)" -eq 0 ]; then
  install -d -o postgres -g postgres -m 700 "$PGDATA"
  HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "${BASH_SOURCE[0]}" "$@"
fi

export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "pg-kalam-entrypoint: set POSTGRES_PASSWORD to create the cluster (TCP connections need it)" >&2
    exit 1
  fi
  initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256
  printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # The init scripts run against a server that listens on its socket only, as in the official image.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start
  psql=(psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER")
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  shopt -s nullglob
  # shellcheck source=/dev/null
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) echo "pg-kalam-entrypoint: running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "pg-kalam-entrypoint: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) echo "pg-kalam-entrypoint: ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec "$@"
