#!/usr/bin/env bash
# Installs this pg_kalam package into one PostgreSQL installation: the library into its
# pkglibdir, the control file and SQL scripts into its extension directory.
#   ./install.sh [PG_CONFIG]     PG_CONFIG: that installation's pg_config (default: the one on PATH)
# Checks first that the package fits: the PostgreSQL major and minor release, Linux, the CPU,
# the C library.
set -euo pipefail
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

fail() {
  printf 'pg_kalam install: %s\n' "$1" >&2
  shift
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  printf 'Nothing was installed.\n' >&2
  exit 1
}
info() { sed -n "s/^$1=//p" "$here/BUILD-INFO"; }

[ -f "$here/BUILD-INFO" ] || fail "$here/BUILD-INFO is missing: this is not a complete pg_kalam package" \
  "Extract the archive again and run install.sh from the directory it creates."
version=$(info version)
pg_major=$(info pg_major)
built_with=$(info pg_version)
arch=$(info arch)
glibc=$(info glibc)

pg_config=$(command -v -- "${1:-pg_config}" || true)
[ -n "$pg_config" ] || fail "no pg_config${1:+ at $1}${1:-" on PATH"}" \
  "Pass the pg_config of the PostgreSQL $pg_major installation to install into, e.g.:" \
  "  $0 /usr/lib/postgresql/$pg_major/bin/pg_config" \
  "(Debian and Ubuntu: package postgresql-client-$pg_major; RPM systems: postgresql$pg_major-devel)."
[ -x "$pg_config" ] && [ ! -d "$pg_config" ] || fail "$pg_config is not an executable pg_config" \
  "Pass the path of the pg_config program of the PostgreSQL $pg_major installation to install into."
pg_line=$("$pg_config" --version 2>/dev/null) || fail "$pg_config --version failed" "Is it a PostgreSQL pg_config?"
release=$(printf '%s\n' "$pg_line" | sed -n 's/^PostgreSQL \([0-9.]*\).*/\1/p')
major=${release%%.*}
[ -n "$major" ] || fail "$pg_config reports '$pg_line', not a PostgreSQL version"

# The library is built against one PostgreSQL major's server ABI; another major refuses it
# ("incompatible library") or, worse, loads it into a differently laid out server.
[ "$major" = "$pg_major" ] || fail "this package is for PostgreSQL $pg_major, but $pg_config is $pg_line" \
  "Use the pg_kalam-$version-pg$major-linux-$arch package for PostgreSQL $major, or build from source" \
  "for it (cargo pgrx install --pg-config $pg_config --no-default-features -F pg$major)," \
  "or pass the pg_config of your PostgreSQL $pg_major installation instead."
# Built against one minor release's headers, the library may call functions that earlier minor
# releases do not export ("undefined symbol" at CREATE EXTENSION).
[ "$(printf '%s\n%s\n' "$built_with" "$release" | sort -V | head -1)" = "$built_with" ] \
  || fail "this package was built against PostgreSQL $built_with and needs $built_with or a later $pg_major.x; $pg_config is $release" \
    "Update PostgreSQL $pg_major to its latest minor release (bug fixes; the data directory stays as it is)," \
    "or build pg_kalam from source against this installation (cargo pgrx install --pg-config $pg_config)."
[ "$(uname -s)" = Linux ] || fail "this package is for Linux; this machine runs $(uname -s)" \
  "Build from source on this machine, or run PostgreSQL with pg_kalam in a Linux container (docker/)."
machine=$(uname -m)
[ "$machine" = "$arch" ] || fail "this package is built for $arch CPUs; this machine is $machine" \
  "Build from source on this machine (cargo pgrx install), or use a $machine package."
have_glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}' || true)
[ -n "$have_glibc" ] || fail "this package needs the GNU C library (glibc $glibc or newer); this system has another one" \
  "Build from source on this machine."
[ "$(printf '%s\n%s\n' "$glibc" "$have_glibc" | sort -V | head -1)" = "$glibc" ] \
  || fail "this package needs glibc $glibc or newer; this system has glibc $have_glibc" \
    "Build from source on this machine, or use a distribution with glibc $glibc or newer."

libdir=$("$pg_config" --pkglibdir) || fail "$pg_config --pkglibdir failed"
extdir=$("$pg_config" --sharedir)/extension || fail "$pg_config --sharedir failed"
for dir in "$libdir" "$extdir"; do
  [ -d "$dir" ] || fail "$dir does not exist" "Is the PostgreSQL $pg_major server package installed (not only its client)?"
  [ -w "$dir" ] || fail "cannot write to $dir" "Run as root (sudo $0 $pg_config) or as the owner of that installation."
done

# A newer pg_kalam there stays: its databases would load a library that lacks its functions.
installed=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$extdir/pg_kalam.control" 2>/dev/null || true)
if [ -n "$installed" ] && [ "$(printf '%s\n%s\n' "$installed" "$version" | sort -V | tail -1)" != "$version" ]; then
  fail "pg_kalam $installed is installed there, newer than this package's $version" \
    "Databases updated to $installed need its library; an extension cannot be updated backwards." \
    "To go back anyway: DROP EXTENSION pg_kalam in every database, remove $extdir/pg_kalam* and" \
    "$libdir/pg_kalam.so, then run install.sh again."
fi

# Every file is written next to its destination under a temporary name first, then renamed
# into place: a failed copy (a full disk) leaves nothing half-written, a running backend keeps
# the library it mapped, and CREATE EXTENSION never reads a partly written script. The scripts
# go first, the library next, the control file (what makes the version visible) last.
temporaries=()
trap 'rm -f "${temporaries[@]}"' EXIT
temporary() { printf '%s/.%s.install-%s' "$2" "$(basename "$1")" "$$"; } # temporary FILE DIR
stage() { # stage FILE DIR MODE: copies FILE into DIR under its temporary name
  local tmp
  tmp=$(temporary "$1" "$2")
  temporaries+=("$tmp")
  install -m "$3" "$1" "$tmp" || fail "cannot write $tmp" "Is the disk full?"
}
place() { mv -f "$(temporary "$1" "$2")" "$2/$(basename "$1")"; } # place FILE DIR
scripts=("$here/extension/"pg_kalam--*.sql)
for f in "${scripts[@]}"; do stage "$f" "$extdir" 644; done
stage "$here/lib/pg_kalam.so" "$libdir" 755
stage "$here/extension/pg_kalam.control" "$extdir" 644
replaced=""
[ -e "$libdir/pg_kalam.so" ] && replaced=" (replacing pg_kalam${installed:+ $installed})"
for f in "${scripts[@]}"; do place "$f" "$extdir"; done
place "$here/lib/pg_kalam.so" "$libdir"
place "$here/extension/pg_kalam.control" "$extdir"

cat <<MSG
pg_kalam $version installed into $pg_line$replaced:
  $libdir/pg_kalam.so
  $extdir/pg_kalam.control and $(ls "$here/extension" | grep -c '\.sql$') SQL scripts

This is the installation of $("$pg_config" --bindir). A PostgreSQL server started from another
installation does not see it ('extension "pg_kalam" is not available'). To check which one a
server uses, run in psql:  SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR';

Next, in psql as a superuser, in each database that uses pg_kalam:
  CREATE EXTENSION pg_kalam;
  CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam
      OPTIONS (host '127.0.0.1', port '2910');
MSG
if [ -n "$replaced" ]; then
  cat <<MSG
Databases that have an older pg_kalam: ALTER EXTENSION pg_kalam UPDATE; sessions that had
loaded the old library use the new one once they reconnect.
MSG
fi
