#!/usr/bin/env bash
# Checks the Prometheus and Grafana kit against a real Prometheus:
#   1. promtool checks the scrape config and the alerting rules, and runs the
#      rules' unit tests (deploy/prometheus/secapp-rules.test.yml);
#   2. a running secapp (the debug build) gets some traffic, a real
#      Prometheus scrapes it with a viewer token, and every PromQL expression
#      of the Grafana dashboard must return at least one series, and the
#      level alert must fire.
# Installs Debian's `prometheus` package (which has promtool) when missing;
# needs root for that. Run from anywhere: deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "== installing prometheus (and promtool) from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version 2>&1 | head -1

echo "== promtool check config / rules / test rules"
work=$(mktemp -d)
secapp_pid=
prometheus_pid=
cleanup() {
  [ -n "$secapp_pid" ] && kill "$secapp_pid" 2>/dev/null || true
  [ -n "$prometheus_pid" ] && kill "$prometheus_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# The shipped config reads its token from /etc/prometheus; check a copy that
# points at a file that exists here.
sed "s|/etc/prometheus/secapp-token|$work/token|" deploy/prometheus/prometheus.yml >"$work/prometheus.yml"
cp deploy/prometheus/secapp-rules.yml "$work/"
echo placeholder >"$work/token"
promtool check config "$work/prometheus.yml"
promtool check rules deploy/prometheus/secapp-rules.yml
(cd deploy/prometheus && promtool test rules secapp-rules.test.yml)

echo "== the HAProxy config, the Dockerfile, compose file and Kubernetes manifests"
if ! command -v haproxy >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
haproxy -c -q -f deploy/haproxy/haproxy.cfg
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
python3 deploy/check-kit.py

echo "== a real Prometheus scraping a running secapp"
cargo build --quiet -p secapp
secapp="${CARGO_TARGET_DIR:-target}/debug/secapp"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"
# A short allowance, so the stale-consumer alert can fire within the check.
SECAPP_LOG=warn "$secapp" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
  --stale-after 3s --watch-interval 200ms >"$work/secapp.out" 2>"$work/secapp.err" &
secapp_pid=$!
for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
admin=$(grep -o 'admin token: secapp_[0-9a-f]*' "$work/secapp.out" | awk '{print $3}')
[ -n "$admin" ] || { cat "$work/secapp.err"; echo "secapp did not start" >&2; exit 1; }
token_of() { # name role...: registers the application, prints its token
  local name=$1; shift
  local roles=()
  for role in "$@"; do roles+=(--role "$role"); done
  SECAPP_SERVER=$base SECAPP_ADMIN_TOKEN=$admin "$secapp" apps add "$name" "${roles[@]}" --json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"]["token"])'
}
token_of prometheus viewer >"$work/token"
producer=$(token_of security-team publish)
consumer=$(token_of billing consume)
token_of payroll consume >/dev/null # registered, never polls: behind, then stale
curl -sf -X POST "$base/secapp/update" -H "Authorization: Bearer $producer" -H 'App-name: security-team' \
  -d '{"current_status": 4, "Change_at": "2026-03-01T12:00:00Z"}' >/dev/null

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $work/secapp-rules.yml
scrape_configs:
  - job_name: secapp
    authorization:
      type: Bearer
      credentials_file: $work/token
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
pport=$(free_port)
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
# Polls between scrapes, so rates and latency histograms have something to show.
for _ in $(seq 1 40); do
  curl -s "$base/secapp/update" -H "Authorization: Bearer $consumer" -H 'App-name: billing' >/dev/null
  sleep 0.2
done
python3 - "$pport" deploy/grafana/dashboards/secapp.json <<'PY'
import json, sys, time, urllib.parse, urllib.request

port, dashboard = sys.argv[1], sys.argv[2]

def query(expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return body["data"]["result"]

deadline = time.time() + 30
while time.time() < deadline:
    try:
        if query('up{job="secapp"} == 1'):
            break
    except OSError:
        pass
    time.sleep(0.5)
else:
    sys.exit("Prometheus never scraped secapp")
time.sleep(3)  # a few more scrapes, for rates

failed = 0
for panel in json.load(open(dashboard))["panels"]:
    for target in panel["targets"]:
        # Grafana's variables, as it would fill them for a short range.
        expr = target["expr"].replace("$__range", "1m").replace("$__rate_interval", "10s")
        result = query(expr)
        print(f"   {len(result)} series  {panel['title']}: {expr}")
        if not result:
            failed += 1
if failed:
    sys.exit(f"{failed} dashboard expressions returned no series")

expected = {"SecappLevelHigh", "SecappConsumerStale"}
deadline = time.time() + 20
while time.time() < deadline:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10) as answer:
        alerts = json.load(answer)["data"]["alerts"]
    firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    stale = {a["labels"].get("app") for a in alerts if a["labels"]["alertname"] == "SecappConsumerStale"}
    if expected <= firing:
        assert stale == {"payroll"}, f"only payroll, which never polled, is stale: {stale}"
        print(f"   firing: {sorted(firing)}")
        break
    time.sleep(0.5)
else:
    sys.exit(f"{expected - firing} did not fire: {alerts}")
PY
echo "== the kit works against a real Prometheus"
