# Sourced by the scripts that test the server from outside (contract/run.sh,
# clients/python/run.sh): start and stop one `secapp serve` on a fresh data
# dir. Needs SECAPP (the binary) set; stops the server on exit.

server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT

# start_server DIR: starts secapp on a free port; sets BASE and ADMIN_TOKEN.
start_server() {
  local dir=$1
  SECAPP_LOG=info "$SECAPP" serve --listen 127.0.0.1:0 --data-dir "$dir/data" \
    --publish-rate 1000 --max-wait 1s --heartbeat 1s >"$dir/stdout" 2>"$dir/stderr" &
  server_pid=$!
  for _ in $(seq 100); do
    if grep -q 'address=' "$dir/stderr"; then break; fi
    sleep 0.1
  done
  BASE="http://$(grep -o 'address=[0-9.:]*' "$dir/stderr" | head -1 | cut -d= -f2)"
  ADMIN_TOKEN=$(grep -o 'admin token: secapp_[0-9a-f]*' "$dir/stdout" | awk '{print $3}')
  [ -n "$ADMIN_TOKEN" ] || { cat "$dir/stderr"; echo "the server did not start" >&2; exit 1; }
}
