-- wrk script for scripts/bench: POST one fixed JSON body to the target URL.
--
-- The body file comes from the BENCH_BODY environment variable (wrk gives
-- scripts no other clean way to receive a path before the request is built).
-- Method, body and headers are set once, so wrk pre-builds the request and
-- sends the same bytes on every connection.
--
-- wrk itself only reports "Non-2xx or 3xx responses" for statuses >= 400, so
-- a 1xx or 3xx answer would count as success. For a webhook ingest anything
-- outside 2xx is a failure, so we count those here, per thread, and print the
-- total in done() as "bench non-2xx: N" for scripts/bench.d/report.py.
-- (Defining response() makes wrk parse each reply in Lua: a small, equal cost
-- for every target, so the ratios stay fair.)

local path = os.getenv("BENCH_BODY")
if not path or path == "" then
  error("BENCH_BODY must name the request body file")
end
local file = assert(io.open(path, "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

-- Per-thread state: each wrk thread runs this file in its own Lua state.
non2xx = 0
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

-- setup() and done() run in the main Lua state; collect the threads so done()
-- can read each thread's counter.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non2xx") or 0)
  end
  io.write(string.format("bench non-2xx: %d\n", total))
end
