#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for user
# `postgres` without a password (what the PostgreSQL tests use by default;
# SECAPP_TEST_DATABASE_URL points them elsewhere). Uses the one running when
# it answers; otherwise installs Debian's package (as root) and starts a
# cluster with trust authentication on loopback. The tests never skip: with
# no server they fail.
set -euo pipefail

url=${SECAPP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
answers() { psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1; }

if command -v psql >/dev/null && answers; then
  echo "== PostgreSQL answers at ${url%%\?*}"
  exit 0
fi
if [ -n "${SECAPP_TEST_DATABASE_URL:-}" ]; then
  echo "SECAPP_TEST_DATABASE_URL=$url does not answer" >&2
  exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "== installing PostgreSQL from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
fi
bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")
data=${SECAPP_PG_DATA:-/var/tmp/secapp-postgres}
if [ ! -s "$data/PG_VERSION" ]; then
  echo "== creating a cluster in $data"
  mkdir -p "$data"
  chown postgres: "$data"
  su postgres -c "$bin/initdb -D '$data' -U postgres --auth=trust" >/dev/null
fi
echo "== starting PostgreSQL on 127.0.0.1:5432"
su postgres -c "$bin/pg_ctl -D '$data' -l '$data/server.log' -w \
  -o \"-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=/tmp\" start" >/dev/null
for _ in $(seq 1 50); do answers && break; sleep 0.2; done
answers || { tail -n 20 "$data/server.log" >&2; echo "PostgreSQL did not start" >&2; exit 1; }
echo "== PostgreSQL answers at ${url%%\?*}"
