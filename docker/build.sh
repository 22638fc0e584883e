#!/usr/bin/env bash
# Builds the release's two images from its tarballs in dist/, each tagged :<version> and :latest:
#   pg-kalam        PostgreSQL 15 with pg_kalam   (docker/Dockerfile.postgres)
#   kalamdb-server  kalamdb-server                (docker/Dockerfile.server)
#   bash docker/build.sh [--profile release|dev | --use-dist]
# Packages the current checkout first (scripts/package.sh, release by default); --use-dist takes
# the tarballs already in dist/ (tests/package.sh has just made them, in the test command).
# Builds with Docker when an engine answers, else with buildah.
#   PG_BASE_IMAGE      base of pg-kalam (default postgres:15-bookworm; plain Debian 12 works too)
#   SERVER_BASE_IMAGE  base of kalamdb-server (default debian:bookworm-slim)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh

log() { printf '[container] %s\n' "$*" >&2; }

VERSION=$(workspace_version)
case ${1:-} in
  --use-dist) ;;
  --profile | "")
    log "packaging $VERSION (scripts/package.sh $*)"
    bash scripts/package.sh "$@"
    ;;
  *) echo "usage: docker/build.sh [--profile release|dev | --use-dist]" >&2; exit 2 ;;
esac
for tarball in "pg_kalam-$VERSION-pg15-linux-x86_64" "kalamdb-server-$VERSION-linux-x86_64"; do
  [ -f "dist/$tarball.tar.gz" ] || { echo "build.sh: dist/$tarball.tar.gz is missing (bash scripts/package.sh)" >&2; exit 1; }
done

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  build() { docker build "$@"; }
elif command -v buildah >/dev/null 2>&1; then
  # chroot isolation needs no container runtime; the docker format keeps HEALTHCHECK (OCI has
  # none); --layers keeps a cache of the steps, as Docker does.
  build() { buildah bud --isolation chroot --format docker --layers "$@"; }
else
  echo "build.sh: needs a working Docker engine or buildah (Debian: apt-get install buildah)" >&2
  exit 1
fi

# build_image NAME DOCKERFILE BASE
build_image() {
  log "building $1:$VERSION from $2 on $3"
  build -f "$2" --build-arg BASE="$3" --build-arg VERSION="$VERSION" -t "$1:$VERSION" -t "$1:latest" .
}
build_image kalamdb-server docker/Dockerfile.server "${SERVER_BASE_IMAGE:-debian:bookworm-slim}"
build_image pg-kalam docker/Dockerfile.postgres "${PG_BASE_IMAGE:-postgres:15-bookworm}"
