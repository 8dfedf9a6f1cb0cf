#!/usr/bin/env bash
# The message brokers the bus tests (crates/secapp/tests/api/bus.rs) talk
# to: RabbitMQ on 127.0.0.1:5672 (guest/guest) and NATS with JetStream on
# 127.0.0.1:4222 — the machine's when they answer, otherwise Debian's
# packages installed (as root) and started here — and a real `celery
# worker` from PyPI in a virtualenv at ~/.cache/secapp-celery.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  for _ in $(seq 1 120); do listening "$1" && return 0; sleep 0.5; done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! listening 5672; then
  echo "== starting RabbitMQ"
  command -v rabbitmq-server >/dev/null || install rabbitmq-server
  (service rabbitmq-server start || rabbitmq-server -detached) >/dev/null 2>&1 || true
  wait_for 5672
fi
echo "== RabbitMQ answers on 5672"

if ! listening 4222; then
  echo "== starting NATS with JetStream"
  command -v nats-server >/dev/null || install nats-server
  mkdir -p /tmp/secapp-nats
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/secapp-nats >/tmp/secapp-nats.log 2>&1 &
  wait_for 4222
fi
echo "== NATS answers on 4222"

venv="${HOME:-/root}/.cache/secapp-celery"
if ! "$venv/bin/celery" --version >/dev/null 2>&1; then
  echo "== installing celery into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "celery==5.6.3"
fi
echo "== celery $("$venv/bin/celery" --version)"
