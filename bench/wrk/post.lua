-- wrk script: POSTs the JSON body in $WRK_BODY (with `Authorization: Bearer $WRK_TOKEN` when set)
-- to the URL, counts responses whose body carries GraphQL "errors" (HTTP 200 with errors is
-- still a failure), and prints one RESULT line that bench/load.py parses.
local path = os.getenv("WRK_BODY")
local f = assert(io.open(path, "rb"))
local payload = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = payload
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  gql_errors = 0
  min_bytes = -1
end

function response(status, headers, body)
  if string.find(body, '"errors"', 1, true) then
    gql_errors = gql_errors + 1
  end
  local n = #body
  if min_bytes < 0 or n < min_bytes then
    min_bytes = n
  end
end

function done(summary, latency, requests)
  local errs, minb = 0, -1
  for _, t in ipairs(threads) do
    errs = errs + t:get("gql_errors")
    local m = t:get("min_bytes")
    if m >= 0 and (minb < 0 or m < minb) then minb = m end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f requests=%d non2xx=%d socket_errors=%d gql_errors=%d min_body_bytes=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, errs, minb))
end
