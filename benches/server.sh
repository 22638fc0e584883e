#!/usr/bin/env bash
# Flight SQL throughput of kalamdb-server (issue 3), one run, one fresh server:
#   ingest     TPC-H lineitem generated in the bench, sent with Flight SQL bulk ingest (DoPut)
#   scan       SELECT * streamed back with GetFlightInfo + DoGet and decoded by a Rust client
#   ceiling    the same client reading the same batches from an in-process Flight SQL server
#              over a DataFusion MemTable (no storage, nothing to convert)
# Scans run in interleaved rounds and medians are printed, with the server's RSS sampled from
# /proc around them. Goals: DoGet >= 1 GB/s and >= 0.7x the ceiling.
#
#   bash benches/server.sh [SF] [ROUNDS]      # defaults: SF 1 (6M rows, ~1.3 GB of Arrow), 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
SF=${1:-1}
ROUNDS=${2:-3}

# The package set of scripts/common.sh's builds, so benches and tests share one release build.
echo "[build] workspace --release" >&2
cargo build --locked --release --workspace --exclude pg_kalam

WORK=$(mktemp -d /tmp/kalam_server_bench.XXXXXX)
trap 'stop_all "$WORK"; rm -rf "$WORK"' EXIT
start_kalamdb "$WORK" release 0 0
echo "kalamdb-server pid $KALAMDB_PID, Flight SQL on 127.0.0.1:$FLIGHT_PORT, data in $WORK/kalamdb"

"$CARGO_TARGET_DIR/release/kalam-bench" --sf "$SF" --rounds "$ROUNDS" \
  --flight "127.0.0.1:$FLIGHT_PORT" --server-pid "$KALAMDB_PID" || {
  echo "kalam-bench failed; the server's log ends with:" >&2
  tail -n 20 "$WORK/server.log" >&2
  exit 1
}
