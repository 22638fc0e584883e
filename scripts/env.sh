# Sourced by the project's scripts: where builds go and which PostgreSQL is used.
# Builds are cached outside the checkout so a fresh clone (CI) reuses them; override freely.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pg_kalam/target}
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Builds kalamdb-server and installs the extension into $PG_CONFIG's PostgreSQL.
# $1: cargo profile flag for the server ("" for debug, "--release").
build_and_install() {
  local profile=${1:-}
  echo "[build] kalamdb-server ${profile:-(debug)}" >&2
  cargo build --locked -p kalamdb-server $profile
  echo "[build] pg_kalam extension -> $($PG_CONFIG --pkglibdir)" >&2
  cargo pgrx install --locked --pg-config "$PG_CONFIG" $profile >/dev/null
}
