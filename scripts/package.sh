#!/usr/bin/env bash
# Builds the release packages into dist/ (or --out DIR):
#   pg_kalam-<version>-pg<major>-linux-<arch>.tar.gz  the extension for one PostgreSQL major,
#                                                     installed by its install.sh
#   kalamdb-server-<version>-linux-<arch>.tar.gz      the server, its example config, a systemd unit
#   SHA256SUMS                                        both archives' checksums
# Usage: bash scripts/package.sh [--profile release|dev] [--out DIR]
# --profile dev packages the debug build the tests have already made (the test command uses it,
# so that a cold run does not also compile DataFusion at opt-level 3); releases use release.
# PG_CONFIG chooses the PostgreSQL to build for (default: PostgreSQL 15 from Debian).
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
source scripts/common.sh

profile=release
out=dist
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=${2:?--profile needs release or dev}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    *) echo "usage: scripts/package.sh [--profile release|dev] [--out DIR]" >&2; exit 2 ;;
  esac
done
case $profile in
  release) cargo_flag=--release pgrx_flag="" target_dir=release ;;
  dev) cargo_flag="" pgrx_flag=--debug target_dir=debug ;;
  *) echo "package.sh: unknown profile '$profile' (release or dev)" >&2; exit 2 ;;
esac
log() { printf '[package] %s\n' "$*" >&2; }

bash scripts/setup.sh
version=$(workspace_version)
pg_version=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9.]*\).*/\1/p')
pg_major=${pg_version%%.*}
arch=$(uname -m)
[ -n "$version" ] && [ -n "$pg_major" ] || { echo "package.sh: cannot read the version or the PostgreSQL major" >&2; exit 1; }
ext_name="pg_kalam-$version-pg$pg_major-linux-$arch"
server_name="kalamdb-server-$version-linux-$arch"

# The package set is the one the tests build (see build_and_install), so nothing is built twice.
log "building $profile: kalamdb-server, pg_kalam for PostgreSQL $pg_major"
cargo build --locked --workspace --exclude pg_kalam $cargo_flag
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
PGRX_BUILD_FLAGS=--locked cargo pgrx package --pg-config "$PG_CONFIG" $pgrx_flag --out-dir "$stage/pgrx" >/dev/null

# Archives are reproducible: sorted names, no owners, times from the last commit.
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
# build_info NAME BINARY: what install.sh checks. glibc: the newest version of the C library's
# symbols that BINARY uses, so it runs with that glibc or a newer one.
build_info() {
  local glibc
  glibc=$(objdump -T "$2" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  printf 'name=%s\nversion=%s\nos=linux\narch=%s\nglibc=%s\nprofile=%s\ncommit=%s\n' \
    "$1" "$version" "$arch" "$glibc" "$profile" "$(git describe --always --dirty 2>/dev/null || echo unknown)"
}
archive() {
  tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --mode='u+rwX,go+rX,go-w' -cf - "$1" \
    | gzip -n >"$out/$1.tar.gz"
}
mkdir -p "$out"

log "$out/$ext_name.tar.gz"
ext="$stage/$ext_name"
mkdir -p "$ext/lib" "$ext/extension"
# Debug information stays out of the package; the symbols PostgreSQL looks up are dynamic ones.
strip --strip-unneeded -o "$ext/lib/pg_kalam.so" "$stage/pgrx$("$PG_CONFIG" --pkglibdir)/pg_kalam.so"
cp "$stage/pgrx$("$PG_CONFIG" --sharedir)/extension/"pg_kalam* "$ext/extension/"
# Install scripts of released versions and every upgrade (CREATE EXTENSION ... VERSION, UPDATE).
cp sql/pg_kalam--*.sql "$ext/extension/"
install -m 755 scripts/dist/install.sh "$ext/install.sh"
cp scripts/dist/INSTALL-pg_kalam.txt "$ext/INSTALL"
cp LICENSE "$ext/LICENSE"
# The library may use functions of the server that only later minor releases export.
{ build_info pg_kalam "$ext/lib/pg_kalam.so"; printf 'pg_major=%s\npg_version=%s\n' "$pg_major" "$pg_version"; } >"$ext/BUILD-INFO"
archive "$ext_name"

log "$out/$server_name.tar.gz"
srv="$stage/$server_name"
mkdir -p "$srv/bin"
strip --strip-unneeded -o "$srv/bin/kalamdb-server" "$CARGO_TARGET_DIR/$target_dir/kalamdb-server"
cp server/server.example.toml scripts/dist/kalamdb-server.service "$srv/"
cp scripts/dist/INSTALL-kalamdb-server.txt "$srv/INSTALL"
cp LICENSE "$srv/LICENSE"
build_info kalamdb-server "$srv/bin/kalamdb-server" >"$srv/BUILD-INFO"
archive "$server_name"

(cd "$out" && sha256sum "$ext_name.tar.gz" "$server_name.tar.gz" >SHA256SUMS)
log "$out/SHA256SUMS"
ls -l "$out" >&2
