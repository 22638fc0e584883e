#!/usr/bin/env bash
# The release packages, proven as a user would use them: builds them (scripts/package.sh),
# checks SHA256SUMS, shows that install.sh refuses what does not fit (and writes nothing then),
# installs the extension into this machine's PostgreSQL, creates it in a fresh cluster, starts
# the packaged kalamdb-server with its example config and reads a table through pg_kalam.
#   bash tests/package.sh [--profile release|dev]    (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
profile=release
[ "${1:-}" = --profile ] && profile=${2:?--profile needs release or dev}

log() { printf '[package test] %s\n' "$*" >&2; }
failed() { printf '[package test] FAILED: %s\n' "$*" >&2; exit 1; }
WORK=$(mktemp -d /tmp/pg_kalam_package.XXXXXX)
chmod 755 "$WORK"
trap 'stop_all "$WORK"; rm -rf "$WORK"' EXIT

bash scripts/package.sh --profile "$profile"
version=$(workspace_version)
ext="pg_kalam-$version-pg15-linux-$(uname -m)"
server="kalamdb-server-$version-linux-$(uname -m)"

log "SHA256SUMS"
(cd dist && sha256sum -c SHA256SUMS) || failed "checksums do not match"
# The first checksum with its first digit changed must be refused.
awk 'NR == 1 { $0 = (substr($0, 1, 1) == "0" ? "1" : "0") substr($0, 2) } 1' dist/SHA256SUMS >"$WORK/tampered.sums"
(cd dist && ! sha256sum -c --status "$WORK/tampered.sums") || failed "a wrong checksum was accepted"
tar -C "$WORK" -xzf "dist/$ext.tar.gz"
tar -C "$WORK" -xzf "dist/$server.tar.gz"

# The package holds the library, this version's install script, every script of sql/, the
# control file, and what a user reads.
expected_files=$(
  { printf '%s\n' BUILD-INFO INSTALL LICENSE install.sh lib/pg_kalam.so extension/pg_kalam.control \
      "extension/pg_kalam--$version.sql"
    for f in sql/pg_kalam--*.sql; do echo "extension/${f#sql/}"; done; } | sort
)
[ "$(cd "$WORK/$ext" && find . -type f | sed 's|^\./||' | sort)" = "$expected_files" ] \
  || failed "the package's files are not the expected ones: $(cd "$WORK/$ext" && find . -type f | sort)"

# expect_refusal NEEDLE CMD...: CMD fails, says NEEDLE and that nothing was installed.
expect_refusal() {
  local needle=$1 out
  shift
  if out=$("$@" 2>&1); then failed "install.sh accepted: $*"; fi
  grep -qF -- "$needle" <<<"$out" || failed "install.sh's refusal does not say '$needle':"$'\n'"$out"
  grep -qF "Nothing was installed." <<<"$out" || failed "install.sh's refusal does not say nothing was installed"
}
# fake_pg_config DIR VERSION: a pg_config at DIR/bin reporting VERSION, its directories in DIR.
fake_pg_config() {
  mkdir -p "$1/bin" "$1/lib" "$1/share/extension"
  printf '#!/bin/sh\ncase "$1" in\n  --version) echo "%s" ;;\n  --pkglibdir) echo "%s" ;;\n  --sharedir) echo "%s" ;;\n  --bindir) echo "%s" ;;\nesac\n' \
    "$2" "$1/lib" "$1/share" "$1/bin" >"$1/bin/pg_config"
  chmod +x "$1/bin/pg_config"
}
# written DIR: the files an install wrote into a fake installation.
written() { (cd "$1" && find lib share -type f | sort); }

log "install.sh refuses what does not fit, and writes nothing then"
built_with=$("$PG_CONFIG" --version | awk '{print $2}')
fake_pg_config "$WORK/pg16" "PostgreSQL 16.4 (Debian 16.4-1.pgdg120+1)"
expect_refusal "this package is for PostgreSQL 15, but $WORK/pg16/bin/pg_config is PostgreSQL 16.4" \
  "$WORK/$ext/install.sh" "$WORK/pg16/bin/pg_config"
fake_pg_config "$WORK/pg15.1" "PostgreSQL 15.1 (Debian 15.1-1)"
expect_refusal "this package was built against PostgreSQL $built_with and needs $built_with or a later 15.x" \
  "$WORK/$ext/install.sh" "$WORK/pg15.1/bin/pg_config"
[ -z "$(written "$WORK/pg16")$(written "$WORK/pg15.1")" ] || failed "a refused install wrote files"
expect_refusal "no pg_config at $WORK/no/such/pg_config" "$WORK/$ext/install.sh" "$WORK/no/such/pg_config"
# A newer pg_kalam in the installation stays.
fake_pg_config "$WORK/newer" "PostgreSQL $built_with"
echo "default_version = '9.0.0'" >"$WORK/newer/share/extension/pg_kalam.control"
expect_refusal "pg_kalam 9.0.0 is installed there, newer than this package's $version" \
  "$WORK/$ext/install.sh" "$WORK/newer/bin/pg_config"
[ "$(written "$WORK/newer")" = share/extension/pg_kalam.control ] || failed "a refused install wrote files"
# The same package built for another CPU, or for a newer C library.
cp -r "$WORK/$ext" "$WORK/other-arch"
sed -i 's/^arch=.*/arch=aarch64/' "$WORK/other-arch/BUILD-INFO"
expect_refusal "this package is built for aarch64 CPUs; this machine is $(uname -m)" \
  "$WORK/other-arch/install.sh" "$PG_CONFIG"
sed -i 's/^arch=.*/arch='"$(uname -m)"'/; s/^glibc=.*/glibc=9.99/' "$WORK/other-arch/BUILD-INFO"
expect_refusal "this package needs glibc 9.99 or newer" "$WORK/other-arch/install.sh" "$PG_CONFIG"

log "install.sh into an empty installation writes exactly the package's files"
fake_pg_config "$WORK/empty" "PostgreSQL $built_with"
"$WORK/$ext/install.sh" "$WORK/empty/bin/pg_config" >/dev/null || failed "install.sh into an empty installation failed"
[ "$(written "$WORK/empty")" = "$(cd "$WORK/$ext" && { echo lib/pg_kalam.so; find extension -type f | sed 's|^|share/|'; } | sort)" ] \
  || failed "install.sh wrote: $(written "$WORK/empty")"

log "install.sh $PG_CONFIG"
"$WORK/$ext/install.sh" "$PG_CONFIG" >"$WORK/install.out" || failed "install.sh failed"
grep -q "pg_kalam $version installed into PostgreSQL 15" "$WORK/install.out" || failed "$(cat "$WORK/install.out")"
cmp "$WORK/$ext/lib/pg_kalam.so" "$($PG_CONFIG --pkglibdir)/pg_kalam.so" || failed "the library was not installed"
for f in "$WORK/$ext/extension/"*; do
  cmp "$f" "$($PG_CONFIG --sharedir)/extension/$(basename "$f")" || failed "$(basename "$f") was not installed"
done

log "the packaged kalamdb-server, with its example config"
[ "$("$WORK/$server/bin/kalamdb-server" --version)" = "kalamdb-server $version" ] || failed "server version"
mkdir -p "$WORK/server"
start_kalamdb "$WORK/server" "$WORK/$server/bin/kalamdb-server" 0 0 --config "$WORK/$server/server.example.toml"
kalam_sql "CREATE SCHEMA shop"
kalam_sql "CREATE TABLE shop.orders (id BIGINT, city VARCHAR, total DOUBLE)"
kalam_sql "INSERT INTO shop.orders VALUES (1, 'Oslo', 10.5), (2, 'Lima', 3.25), (3, 'Oslo', 4.0)"
if command -v systemd-analyze >/dev/null; then
  # The unit as installed by the INSTALL steps, with the binary where this test extracted it.
  sed "s|/usr/local/bin/kalamdb-server|$WORK/$server/bin/kalamdb-server|" \
    "$WORK/$server/kalamdb-server.service" >"$WORK/kalamdb-server.service"
  # verify warns about unknown keys and still succeeds: a clean unit has nothing to say.
  verdict=$(systemd-analyze verify "$WORK/kalamdb-server.service" 2>&1) && [ -z "$verdict" ] \
    || failed "systemd-analyze on the unit: $verdict"
fi

log "a fresh cluster: CREATE EXTENSION pg_kalam, a foreign table, a query"
mkdir -p "$WORK/pg"
start_cluster "$WORK/pg"
out=$("${PSQL[@]}" -At <<SQL
CREATE EXTENSION pg_kalam;
CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '$FLIGHT_PORT');
CREATE SCHEMA shop;
IMPORT FOREIGN SCHEMA shop FROM SERVER kalam_server INTO shop;
SELECT kalam_version(), kalam_compiled_mode();
SELECT city, count(*), sum(total) FROM shop.orders GROUP BY city ORDER BY city;
SQL
)
expected_mode="remote (Arrow Flight SQL)"
[ "$profile" = dev ] && expected_mode="$expected_mode, debug build"
expected="pg_kalam $version|$expected_mode
Lima|1|3.25
Oslo|2|14.5"
[ "$out" = "$expected" ] || failed "the query through the packaged extension returned:"$'\n'"$out"$'\n'"expected:"$'\n'"$expected"
log "passed: $ext and $server"
