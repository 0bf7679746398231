-- POST /api/auth/signup with a new email on every request: "<nonce>-<thread>-<n>@bench.example".
-- Requires common.lua above (tid, seq, P.nonce).

function request()
  local n = seq()
  local body = string.format(
    '{"name":"Bench %d-%d","email":"s%s-%d-%d@bench.example","password":"bench-password-%d"}',
    tid, n, P.nonce, tid, n, n)
  return wrk.format("POST", nil, nil, body)
end
