# Sourced by the project's scripts: where builds go and which PostgreSQL is used.
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
}
