#!/usr/bin/env bash
# Runs once, when the container's cluster is created (from /docker-entrypoint-initdb.d/):
# pg_kalam in POSTGRES_DB and, when KALAMDB_HOST is set, the foreign server kalam_server for it
# (port KALAMDB_PORT, default 2910). When KALAMDB_PASSWORD is set too, pg_kalam logs in as
# KALAMDB_USER (default root), through a user mapping of POSTGRES_USER that holds the password.
# Values reach SQL as psql variables (:'name' quotes them), never pasted into statements; psql
# reads them from the environment (\getenv), so the password is on no command line.
set -euo pipefail
psql=(psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}"
      --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}")

"${psql[@]}" -c 'CREATE EXTENSION IF NOT EXISTS pg_kalam'
if [ -n "${KALAMDB_HOST:-}" ]; then
  export KALAMDB_PORT=${KALAMDB_PORT:-2910} KALAMDB_USER=${KALAMDB_USER:-root} KALAMDB_PASSWORD=${KALAMDB_PASSWORD:-}
  "${psql[@]}" <<'SQL'
\getenv host KALAMDB_HOST
\getenv port KALAMDB_PORT
\getenv login_user KALAMDB_USER
\getenv login_password KALAMDB_PASSWORD
CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host :'host', port :'port');
SELECT :'login_password' <> '' AS with_login \gset
\if :with_login
ALTER SERVER kalam_server OPTIONS (ADD auth_mode 'account_login');
CREATE USER MAPPING FOR CURRENT_USER SERVER kalam_server
    OPTIONS (login_user :'login_user', login_password :'login_password');
\endif
SQL
fi
