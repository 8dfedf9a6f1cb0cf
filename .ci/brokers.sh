#!/usr/bin/env bash
# The message brokers the bus tests (crates/secapp/tests/api/bus/) talk
# to: RabbitMQ on 127.0.0.1:5672 (guest/guest) and NATS with JetStream on
# 127.0.0.1:4222 — the machine's when they answer, otherwise Debian's
# packages installed (as root) and started here —, a Kafka-protocol broker
# on 127.0.0.1:9092 (tansu from the Rust package registry, built once into
# ~/.cache/secapp-tansu, keeping its topics in memory), and a real `celery
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

if ! listening 9092; then
  tansu="${HOME:-/root}/.cache/secapp-tansu/bin/tansu"
  if ! "$tansu" --version >/dev/null 2>&1; then
    echo "== building the tansu Kafka-protocol broker (once; about 20 minutes on two cores)"
    cargo install tansu --version 0.6.0 --features dynostore --locked \
      --root "${HOME:-/root}/.cache/secapp-tansu" >/tmp/secapp-tansu-build.log 2>&1 \
      || { tail -n 30 /tmp/secapp-tansu-build.log; exit 1; }
  fi
  echo "== starting tansu (Kafka protocol, in memory)"
  nohup "$tansu" broker --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 \
    --storage-engine memory://tansu/ >/tmp/secapp-tansu.log 2>&1 &
  wait_for 9092
fi
echo "== a Kafka-protocol broker answers on 9092"

venv="${HOME:-/root}/.cache/secapp-celery"
if ! "$venv/bin/celery" --version >/dev/null 2>&1; then
  echo "== installing celery into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "celery==5.6.3"
fi
echo "== celery $("$venv/bin/celery" --version)"
