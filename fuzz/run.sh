#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a while each, on the corpus
# kept in fuzz/corpus/<target>, and fails on the first crash (its input is
# left in fuzz/artifacts/<target>/). Needs the nightly toolchain; installs
# cargo-fuzz if it is missing.
#
#   fuzz/run.sh            # 20 s per target, as CI runs it
#   fuzz/run.sh 600        # ten minutes per target, by hand
#   fuzz/run.sh 600 grow   # the same, adding new inputs to fuzz/corpus
set -euo pipefail
cd "$(dirname "$0")/.."

each=${1:-20}
grow=${2:-}
# Nightly and sanitizer builds kept apart from the workspace's.
export CARGO_TARGET_DIR=${SECAPP_FUZZ_TARGET_DIR:-${HOME:-/root}/.cache/secapp-fuzz-target}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz/run.sh needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
  if [ "$grow" = grow ]; then
    dirs=("fuzz/corpus/$target")
  else
    # New inputs go to a scratch directory; the kept corpus is only read.
    dirs=("$(mktemp -d)" "fuzz/corpus/$target")
  fi
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$target" "${dirs[@]}" -- \
      -max_total_time="$each" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "== fuzz target $target crashed; reproduce with:" >&2
    echo "   cargo +nightly fuzz run $target fuzz/artifacts/$target/<crash file>" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  echo "== fuzz $target: $runs inputs in ${each} s, no crash"
done
