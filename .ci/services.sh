#!/usr/bin/env bash
# What the test suite needs besides the Rust toolchain: a PostgreSQL server
# (.ci/postgres.sh: the machine's, or Debian's package started here) and
# HAProxy for the balancer test (Debian's package, installed as root when
# missing), and the message brokers and Celery of the bus tests
# (.ci/brokers.sh). Tests that need them fail, never skip, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

.ci/postgres.sh
.ci/brokers.sh
if ! command -v haproxy >/dev/null; then
  echo "== installing HAProxy from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
echo "== $(haproxy -v | head -n 1)"
