#!/usr/bin/env bash
# Any language: generates a Python client from a running server's
# /openapi.json with openapi-python-client (clients/python/requirements.txt)
# and uses it (clients/python/use_client.py) to register apps, publish, poll
# every way and read typed errors. Fails on any generator warning, so the
# OpenAPI document stays good enough to generate from.
#
#   clients/python/run.sh            # as CI runs it
#   KEEP=/tmp/secapp_py clients/python/run.sh   # keep the generated client
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${SECAPP_PYCLIENT_VENV:-${HOME:-/root}/.cache/secapp-pyclient-venv}
TARGET=${CARGO_TARGET_DIR:-target}

wanted=$(grep -E '^openapi-python-client==' clients/python/requirements.txt | cut -d= -f3)
if [ "$("$VENV/bin/openapi-python-client" --version 2>/dev/null | awk '{print $3}')" != "$wanted" ]; then
  echo "== installing openapi-python-client $wanted into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements.txt
fi

cargo build --quiet --locked -p secapp
SECAPP="$TARGET/debug/secapp"
# shellcheck source=contract/server.sh
. contract/server.sh

dir=$(mktemp -d)
start_server "$dir"
python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$BASE/openapi.json" >"$dir/openapi.json"

echo "== generating a Python client from /openapi.json"
out=${KEEP:-$dir/client}
rm -rf "$out"
mkdir -p "$(dirname "$out")"
# The generator formats its output with ruff, installed beside it.
if ! PATH="$VENV/bin:$PATH" "$VENV/bin/openapi-python-client" generate \
  --path "$dir/openapi.json" --config clients/python/generator.yaml \
  --meta none --output-path "$out/secapp_py" >"$dir/generate.log" 2>&1; then
  cat "$dir/generate.log"
  echo "== the generator failed" >&2
  exit 1
fi
if grep -qi 'warning' "$dir/generate.log"; then
  cat "$dir/generate.log"
  echo "== the generator warned: fix the OpenAPI document" >&2
  exit 1
fi

echo "== using it against the server"
PYTHONPATH="$out" "$VENV/bin/python" clients/python/use_client.py "$BASE" "$ADMIN_TOKEN"
