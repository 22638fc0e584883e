#!/usr/bin/env bash
# HEALTHCHECK of the kalamdb-server image: GET /v1/api/healthcheck on the HTTP port through
# bash's /dev/tcp (the image has no HTTP client). Healthy when the server answers 200.
set -euo pipefail
exec 3<>"/dev/tcp/127.0.0.1/${KALAMDB_HTTP_PORT:-2900}"
printf 'GET /v1/api/healthcheck HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
read -r -t 5 status <&3
[[ $status == HTTP/1.?" 200 "* ]] || { echo "kalamdb-server answered: $status" >&2; exit 1; }
