#!/usr/bin/env bash
# Installs everything pg_kalam needs on a fresh Debian 12 machine, and nothing twice:
# each step checks first, so a warm machine passes through in seconds.
#   - Debian packages: PostgreSQL 15 server + headers, libclang for pgrx's bindgen, binutils
#     (strip, objdump: scripts/package.sh), container tools
#   - cargo-pgrx 0.18.1 (must match the pgrx version in Cargo.toml) and its PG15 config
set -euo pipefail

PGRX_VERSION=0.18.1
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang pkg-config make curl binutils)
# Container tools for docker/test.sh, which needs no Docker engine: debootstrap makes the Debian
# base image, podman imports it, buildah builds the images and runs them.
CONTAINER_PACKAGES=(buildah podman debootstrap)

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${APT_PACKAGES[@]}" "${CONTAINER_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's postgresql-common creates a 'main' cluster and starts it; pg_kalam never uses it.
# Leave it alone: our clusters run on their own ports and directories.

if ! command -v cargo-pgrx >/dev/null 2>&1 || ! cargo pgrx --version 2>/dev/null | grep -q " $PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (takes several minutes on a cold machine)"
  cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked --quiet
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
if ! grep -qs '^pg15' "$PGRX_HOME/config.toml"; then
  log "cargo pgrx init --pg15 $PG_CONFIG"
  cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked --quiet
fi

# Flight SQL clients nobody here wrote, for the tests: Apache Arrow's flight_sql_client CLI (Rust),
# and Apache ADBC's driver (Go) with pyarrow and pandas (what a data engineer reads results into).
if ! command -v flight_sql_client >/dev/null 2>&1; then
  log "installing Apache Arrow's flight_sql_client (a few minutes on a cold machine)"
  cargo install arrow-flight --version =59.3.2 --features cli,flight-sql,tls-ring --locked --quiet
fi

PY_PEERS=(adbc-driver-flightsql==1.13.0 adbc-driver-manager==1.13.0 pyarrow==26.0.1 pandas==3.1.1 numpy==2.4.6)
if ! python3 -c "import adbc_driver_flightsql.dbapi, pyarrow, pandas" >/dev/null 2>&1; then
  log "installing Python test peers: ${PY_PEERS[*]}"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${PY_PEERS[@]}"
fi

# TPC-H data (the test suite's SF0.01 and benches/tpch.sh): Apache DataFusion's tpchgen-cli.
if ! command -v tpchgen-cli >/dev/null 2>&1; then
  log "installing tpchgen-cli (TPC-H data generator)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore tpchgen-cli==4.0.0
fi

log "setup complete"
