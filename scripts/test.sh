#!/usr/bin/env bash
# Runs every test: unit tests of the workspace crates, then the end-to-end suite against a
# real PostgreSQL 15 cluster and a real kalamdb-server (tests/). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/setup.sh
build_and_install ""
export KALAMDB_SERVER_BIN="$CARGO_TARGET_DIR/debug/kalamdb-server"

# The extension crate itself is exercised end to end (tests/): its code only runs inside PostgreSQL.
cargo nextest run --locked --workspace --exclude pg_kalam --no-fail-fast "$@"
