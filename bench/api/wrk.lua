-- bench/api/wrk.lua: wrk's request and report for bench/api/run.
--   WRK_BODY_FILE  a file whose content is POSTed as JSON (else GET)
--   WRK_HEADERS    extra request headers, one "name: value" a line
-- done() prints one line "WRK_JSON {...}": requests, errors (connect, read, write, timeouts
-- and status >= 400, as wrk counts them), seconds, and latency percentiles in microseconds.
local body_file = os.getenv("WRK_BODY_FILE")
if body_file then
  local f = assert(io.open(body_file, "r"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
local extra = os.getenv("WRK_HEADERS")
if extra then
  for line in extra:gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"errors":%d,"seconds":%.6f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, e.connect + e.read + e.write + e.timeout + e.status, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
