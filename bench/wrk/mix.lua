-- wrk script for Q5: a mix of reads and writes. Reads are the JSON bodies in $WRK_READS
-- (comma-separated files, sent in turn); every $WRK_WRITE_EVERY-th request (default 10, i.e.
-- 10 % writes) is instead one of the write templates in $WRK_WRITES, in turn, with "@KEY@"
-- replaced by an idempotency key unique to this run, thread and request ($WRK_RUN_ID-T-N).
-- `Authorization: Bearer $WRK_TOKEN` when set. Prints the same RESULT line as post.lua.
local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local content = f:read("*a")
  f:close()
  return content
end

local function bodies(list)
  local out = {}
  for path in string.gmatch(list or "", "[^,]+") do
    table.insert(out, read_file(path))
  end
  return out
end

local reads = bodies(os.getenv("WRK_READS"))
local writes = bodies(os.getenv("WRK_WRITES"))
local every = tonumber(os.getenv("WRK_WRITE_EVERY") or "10")
local run_id = os.getenv("WRK_RUN_ID") or "bench"
assert(#reads > 0, "WRK_READS names no body")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

function init(args)
  gql_errors = 0
  min_bytes = -1
  sent = 0
  read_index = 0
  write_index = 0
  read_requests = {}
  for i, body in ipairs(reads) do
    read_requests[i] = wrk.format(nil, nil, nil, body)
  end
end

function request()
  sent = sent + 1
  if #writes > 0 and sent % every == 0 then
    write_index = write_index + 1
    local template = writes[(write_index + thread_id) % #writes + 1]
    local key = string.format("%s-%d-%d", run_id, thread_id, sent)
    return wrk.format(nil, nil, nil, (string.gsub(template, "@KEY@", key)))
  end
  read_index = read_index + 1
  return read_requests[read_index % #read_requests + 1]
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
