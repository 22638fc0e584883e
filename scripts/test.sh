#!/usr/bin/env bash
# Runs every test: unit tests of the workspace crates, then the end-to-end suite against a
# real PostgreSQL 15 cluster and a real kalamdb-server (tests/). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

bash scripts/setup.sh
build_and_install ""
export KALAMDB_SERVER_BIN="$CARGO_TARGET_DIR/debug/kalamdb-server"

# Every scratch directory of this run (clusters, servers) lives under RUN_DIR. Tests tear down
# what they start; if a test process is killed instead, the sweep stops what it left, by PID.
RUN_DIR=$(mktemp -d /tmp/pg_kalam_test.XXXXXX)
chmod 755 "$RUN_DIR"
sweep() {
  local pid pgdata
  for pidfile in "$RUN_DIR"/*/server.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && grep -q kalamdb-server "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid"; fi
  done
  for pidfile in "$RUN_DIR"/*/data/postmaster.pid; do
    [ -f "$pidfile" ] || continue
    pgdata=$(dirname "$pidfile")
    as_pg "$($PG_CONFIG --bindir)/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$RUN_DIR"
}
trap sweep EXIT

# The extension crate itself is exercised end to end (tests/): its code only runs inside PostgreSQL.
TMPDIR="$RUN_DIR" cargo nextest run --locked --workspace --exclude pg_kalam "$@"

# The release packages and the container images, installed and run as users would. The packages
# hold the debug build made above: a release build would add DataFusion at opt-level 3 to a
# cold run (bash tests/package.sh checks the release packages themselves).
bash tests/package.sh --profile dev
if command -v buildah >/dev/null 2>&1; then
  bash docker/test.sh --use-dist
fi
