#!/usr/bin/env bash
# Builds the release binaries and runs every benchmark (see docs/performance.md,
# "Benchmarks"). Arguments go to `secapp-bench run`, e.g.
#   bench/run.sh --runs 5 --watchers 1000,10000 --only poll,fanout
#   bench/run.sh --only relay   # needs the brokers of .ci/brokers.sh
# Needs wrk (apt-get install wrk) for the HTTP rates.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench/run.sh needs wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet -p secapp -p secapp-bench
target="${CARGO_TARGET_DIR:-target}/release"
exec "$target/secapp-bench" run --secapp "$target/secapp" "$@"
