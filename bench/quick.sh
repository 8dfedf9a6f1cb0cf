#!/usr/bin/env bash
# Quick HTTP benchmark of one release server on SQLite, with wrk.
#
#   bench/quick.sh            # 3 runs of 10 s per case
#   RUNS=5 DURATION=20s bench/quick.sh
#
# Cases, all against the same server in the same run:
#   healthz   GET /healthz: no auth, no state: the server's own floor (baseline)
#   poll      GET /secapp/update by an app already told: the hot path
#   publish   POST /secapp/update: durable (committed and synced) publishes
# plus the disk's own rate of small synced writes in the data dir, measured
# with the same clock, as the reference for publishes.
# Prints a Markdown table of medians (min–max) of requests per second.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
PORT="${PORT:-18080}"
TOKEN=bench-token
command -v wrk >/dev/null || { echo "bench/quick.sh needs wrk (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet -p secapp
data=$(mktemp -d)
SECAPP_API_TOKEN=$TOKEN SECAPP_LOG=warn target/release/secapp serve \
  --listen "127.0.0.1:$PORT" --data-dir "$data" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

base="http://127.0.0.1:$PORT"
curl -sf -X POST "$base/secapp/update" -H "App-name: bench" -H "Token: $TOKEN" \
  -d '{"current_status": 3}' >/dev/null
curl -sf "$base/secapp/update" -H "App-name: bench-poller" -H "Token: $TOKEN" >/dev/null

# rate CONNECTIONS ARGS...: requests/s of one wrk run.
# A run with any non-2xx answer is an error, not a rate.
rate() {
  local conns=$1; shift
  local threads=$(( conns < 2 ? 1 : 2 )) out
  out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" "$@")
  if grep -q "Non-2xx" <<<"$out"; then echo "wrk saw errors: $out" >&2; exit 1; fi
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

# median_of CMD...: "median (min–max)" of RUNS runs.
median_of() {
  local values=()
  for _ in $(seq "$RUNS"); do values+=("$("$@")"); done
  printf '%s\n' "${values[@]}" | sort -g | awk '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.0f (%.0f–%.0f)", m, v[1], v[NR] }'
}

disk_syncs() {
  python3 - "$data" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "sync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
n, start = 0, time.monotonic()
while time.monotonic() - start < 3:
    os.write(fd, b"x" * 100)
    os.fdatasync(fd)
    n += 1
os.close(fd)
os.unlink(path)
print(n / (time.monotonic() - start))
PY
}

echo "| case | connections | requests/s, median (min–max) of $RUNS × $DURATION |"
echo "|---|---|---|"
for c in 64 256; do
  echo "| GET /healthz (baseline) | $c | $(median_of rate "$c" "$base/healthz") |"
  echo "| GET /secapp/update, nothing new | $c | $(median_of rate "$c" -H "App-name: bench-poller" -H "Token: $TOKEN" "$base/secapp/update") |"
done
for c in 1 16 64; do
  echo "| POST /secapp/update (durable) | $c | $(median_of rate "$c" -s bench/publish.lua -H "App-name: bench" -H "Token: $TOKEN" "$base/secapp/update") |"
done
echo "| disk: 100-byte write + fdatasync | 1 | $(median_of disk_syncs) |"
