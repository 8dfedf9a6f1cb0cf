#!/usr/bin/env bash
# Counts the CPU instructions one plain poll costs with the shared
# compatibility token and with an application's own token, by running the
# release server under callgrind (instruction counts do not depend on what
# else the machine is doing), and those of one request to the bare axum
# baseline of crates/secapp-bench as the yardstick. Needs valgrind
# (apt-get install valgrind).
#   bench/poll-instructions.sh [POLLS] [SECAPP]   (default 3000, the release build)
# SECAPP measures another secapp binary, e.g. a build of an older commit.
# Each figure is (instructions of a run with POLLS polls - those of a run
# with none) / POLLS, so start-up and shutdown cancel out. callgrind hides
# the CPU's SHA extensions, so SHA-256 runs in software here: the script
# prints its share separately.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench/poll-instructions.sh needs valgrind: apt-get install valgrind" >&2; exit 1; }
polls=${1:-3000}
cargo build --release --quiet -p secapp -p secapp-bench
target="${CARGO_TARGET_DIR:-target}/release"
secapp=${2:-$target/secapp}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One run: $1 label, $2 polls, $3 shared|own|baseline. Prints the total
# instructions.
run() {
  local label=$1 count=$2 kind=$3 dir="$work/$1" port token=none
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$kind" = baseline ]; then
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
      "$target/secapp-bench" baseline --listen "127.0.0.1:$port" >/dev/null 2>"$dir/stderr" &
  else
    token=$(SECAPP_LOG=warn "$secapp" apps add poller --role consume --json --data-dir "$dir/data" \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"]["token"])')
    SECAPP_API_TOKEN=bench-shared-token SECAPP_LOG=warn SECAPP_READ_RATE=0 \
      valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
      "$secapp" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >/dev/null 2>"$dir/stderr" &
  fi
  local server=$!
  for _ in $(seq 1 200); do
    curl -s -o /dev/null -H 'App-name: warm-up' -H 'Token: bench-shared-token' \
      "http://127.0.0.1:$port/secapp/update" && break
    sleep 0.2
  done
  python3 - "$port" "$count" "$kind" "$token" <<'PY'
import http.client, sys
port, count, kind, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if kind in ("shared", "baseline"):
    headers = {"App-name": "legacy-poller", "Token": "bench-shared-token"}
else:
    headers = {"App-name": "poller", "Authorization": f"Bearer {token}"}
connection = http.client.HTTPConnection("127.0.0.1", port)
# The first poll is told the (empty) state; every counted one is "nothing new".
for _ in range(count + 1):
    connection.request("GET", "/secapp/update", headers=headers)
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
PY
  kill -TERM "$server"
  wait "$server" || true
  callgrind_annotate --threshold=100 "$dir/callgrind.out" >"$dir/annotated" 2>/dev/null || true
  local total sha
  total=$(grep -m1 '^summary:' "$dir/callgrind.out" | awk '{print $2}')
  sha=$(awk '/sha256/ {gsub(",", "", $1); s += $1} END {print s + 0}' "$dir/annotated")
  echo "$total $sha"
}

read -r bare_zero _ < <(run bare-zero 0 baseline)
read -r bare _ < <(run bare "$polls" baseline)
read -r zero zero_sha < <(run zero 0 shared)
read -r shared shared_sha < <(run shared "$polls" shared)
read -r own own_sha < <(run own "$polls" own)
per() { echo $(( ($1 - $2) / polls )); }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
bare_per=$(per "$bare" "$bare_zero")
shared_per=$(per "$shared" "$zero")
own_per=$(per "$own" "$zero")
echo "### Instructions per plain poll (callgrind, $polls polls per run)"
echo
echo "| server | instructions per request | baseline ÷ this | of which software SHA-256 |"
echo "|---|---|---|---|"
echo "| baseline: bare axum handler reading the two headers | $bare_per | 1.00 | 0 |"
echo "| secapp, shared compatibility token | $shared_per | $(ratio "$bare_per" "$shared_per") | $(per "$shared_sha" "$zero_sha") |"
echo "| secapp, an application's own token (Authorization: Bearer) | $own_per | $(ratio "$bare_per" "$own_per") | $(per "$own_sha" "$zero_sha") |"
