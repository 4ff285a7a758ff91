-- http_bench.lua - wrk script of bench/http_bench.sh.
-- WRK_METHOD (default GET) and WRK_BODY (a JSON body, sent as
-- application/json) come from the environment; the request is built once,
-- so the script costs wrk nothing per request. done() prints one line that
-- http_bench.sh reads:
--   wrk_result REQUESTS DURATION_US NON_2XX_3XX CONNECT READ WRITE TIMEOUT
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk_result %d %d %d %d %d %d %d\n",
                         summary.requests, summary.duration, e.status,
                         e.connect, e.read, e.write, e.timeout))
end
