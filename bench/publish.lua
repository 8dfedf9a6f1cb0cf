-- wrk script: every request publishes a change (a new level "now").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"current_status": %d}', 1 + n % 5)
  return wrk.format(nil, nil, nil, body)
end
