#!/usr/bin/env bash
# Starts kalamdb-server beside PostgreSQL on every container start, waits until it is ready,
# then hands over to the postgres image's own entrypoint.
set -euo pipefail
mkdir -p "$KALAMDB_DATA_DIR"
# Without a root password the server accepts requests without credentials as root, so it is
# only reachable from inside the container unless KALAMDB_ROOT_PASSWORD is set.
if [ -n "${KALAMDB_ROOT_PASSWORD:-}" ]; then default_host=0.0.0.0; else default_host=127.0.0.1; fi
KALAMDB_SERVER_HOST=${KALAMDB_SERVER_HOST:-$default_host} kalamdb-server >/tmp/kalamdb-ready.txt 2>>/var/log/kalamdb.log &
for _ in $(seq 1 100); do
  grep -q ready /tmp/kalamdb-ready.txt 2>/dev/null && break
  sleep 0.1
done
grep -q ready /tmp/kalamdb-ready.txt || { echo "kalamdb-server did not start; see /var/log/kalamdb.log" >&2; exit 1; }
exec docker-entrypoint.sh "$@"
