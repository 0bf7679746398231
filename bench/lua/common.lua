-- Shared prelude of every bench scenario. bench.py writes `P = {...}` (the scenario's
-- parameters) above this file, then appends the scenario's own Lua file, if any, below it.
--
-- P.method, P.headers, P.body: the request, when every request is the same (a static request:
--   wrk formats it once per connection, the cheapest way to load the server).
-- A scenario file that needs a different request each time defines request() and may use:
--   tid    this wrk thread's number (0, 1, ...), set before the thread starts
--   seq()  a per-thread counter, 1, 2, 3, ...
--   P.nonce a string unique to this run, so ids never repeat across runs or scenarios.
-- done() prints one machine-readable line, BENCH_RESULT {json}, that bench.py reads.

wrk.method = P.method or "GET"
for k, v in pairs(P.headers or {}) do
  wrk.headers[k] = v
end
if P.body then
  wrk.body = P.body
end

local threads = {}
local n_threads = 0

function setup(thread)
  thread:set("tid", n_threads)
  n_threads = n_threads + 1
  table.insert(threads, thread)
end

local counter = 0
function seq()
  counter = counter + 1
  return counter
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
