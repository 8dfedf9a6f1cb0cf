#!/usr/bin/env bash
# The contract test: schemathesis (contract/requirements.txt) against the
# server's own /openapi.json, with every check and every phase (examples,
# coverage, fuzzing, stateful), once as an admin and once as an application
# that publishes and consumes. Each run gets a fresh server and data dir.
# Exits non-zero on any failure.
#
#   contract/run.sh                  # as CI runs it
#   EXAMPLES=200 SEED=7 contract/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${EXAMPLES:-40}
SEED=${SEED:-20261129}
VENV=${SECAPP_VENV:-${HOME:-/root}/.cache/secapp-venv}
TARGET=${CARGO_TARGET_DIR:-target}
REPORTS=${REPORTS:-$(mktemp -d)}

wanted=$(grep -E '^schemathesis==' contract/requirements.txt | cut -d= -f3)
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $3}')" != "$wanted" ]; then
  echo "== installing schemathesis $wanted into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r contract/requirements.txt
fi

cargo build --quiet --locked -p secapp
SECAPP="$TARGET/debug/secapp"

# shellcheck source=contract/server.sh
. contract/server.sh

# schemathesis_run LABEL APP ROLES TOKEN TOKEN_ID [extra args]
schemathesis_run() {
  local label=$1 app=$2 roles=$3 token=$4 token_id=$5
  shift 5
  echo "== schemathesis as $label ($EXAMPLES examples per operation, seed $SEED)"
  SECAPP_CONTRACT_TOKEN_ID=$token_id SECAPP_CONTRACT_APP=$app SECAPP_CONTRACT_ROLES=$roles \
  PYTHONPATH=contract SCHEMATHESIS_HOOKS=hooks \
    "$VENV/bin/schemathesis" --config-file contract/schemathesis.toml run "$BASE/openapi.json" \
      --checks all --phases examples,coverage,fuzzing,stateful \
      --max-examples "$EXAMPLES" --seed "$SEED" --generation-database none \
      --header "Token: $token" --header "Authorization: Bearer $token" "$@" \
      --report junit --report-junit-path "$REPORTS/$label.xml" --no-color
}

dir=$(mktemp -d)
start_server "$dir"
admin_id=$(SECAPP_SERVER=$BASE SECAPP_ADMIN_TOKEN=$ADMIN_TOKEN "$SECAPP" tokens list --app admin --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"][0]["id"])')
failed=0
schemathesis_run admin admin admin "$ADMIN_TOKEN" "$admin_id" || failed=1
stop_server

dir=$(mktemp -d)
start_server "$dir"
added=$(SECAPP_SERVER=$BASE SECAPP_ADMIN_TOKEN=$ADMIN_TOKEN \
  "$SECAPP" apps add contract --role publish --role consume --json)
app_token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"]["token"])' <<<"$added")
app_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"]["id"])' <<<"$added")
schemathesis_run application contract publish,consume "$app_token" "$app_id" \
  --header "App-name: contract" || failed=1
stop_server
if [ "$failed" -ne 0 ]; then
  echo "== schemathesis found failures (reports in $REPORTS)" >&2
  exit 1
fi
echo "== schemathesis: no failures (reports in $REPORTS)"
