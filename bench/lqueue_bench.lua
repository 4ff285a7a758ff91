-- lqueue_bench.lua - wrk script of bench/http_bench.sh: take one item under
-- a lease and acknowledge it, in turns on each connection (run it with one
-- connection per thread: -tN -cN), each ack carrying what its take answered.
--   WRK_MODE=atrium: POST /v1/queues/NAME/pop?lease=30, then
--     POST /v1/queues/NAME/ack {"receipts":["<the pop's receipt>"]};
--   WRK_MODE=webdis: XREADGROUP GROUP g <consumer> COUNT 1 STREAMS NAME >,
--     then GET /XACK/NAME/g/<the entry's id> (Redis Streams' consumer
--     groups: an entry read is pending until acknowledged). Webdis cannot
--     encode XREADGROUP's nested reply (its JSON and raw formats give
--     null and a bare "*1"), so the read runs in GET /EVAL/<script>/1/NAME/
--     <consumer>, a Lua script that calls it and returns the entry's id
--     and item flat: one request and one XREADGROUP, as a client's.
-- WRK_QUEUE names the queue (the stream). A take that hands out nothing or
-- an ack that does not acknowledge one counts as a failure. done() prints
-- the line of http_bench.lua, with pairs for requests:
--   wrk_result PAIRS DURATION_US FAILURES CONNECT READ WRITE TIMEOUT
local mode = os.getenv("WRK_MODE") or "atrium"
local name = os.getenv("WRK_QUEUE") or "lp"
local json = { ["Content-Type"] = "application/json" }
local pop_atrium = wrk.format("POST", "/v1/queues/" .. name .. "/pop?lease=30")
local step, receipt = "take", nil
local read_script =
  "local r = redis.call('XREADGROUP','GROUP','g',ARGV[1],'COUNT',1," ..
  "'STREAMS',KEYS[1],'>') if not r then return nil end " ..
  "local e = r[1][2][1] return {e[1], e[2][2]}"
local read_webdis
pairs_done, failures = 0, 0

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function init(args)
  local consumer = string.format("c%d", math.random(1, 1e9))
  read_webdis = wrk.format("GET", "/EVAL/" .. urlencode(read_script) .. "/1/" ..
                           name .. "/" .. consumer)
end

function request()
  if step == "take" then
    return mode == "webdis" and read_webdis or pop_atrium
  end
  if mode == "webdis" then
    return wrk.format("GET", "/XACK/" .. name .. "/g/" .. receipt)
  end
  return wrk.format("POST", "/v1/queues/" .. name .. "/ack", json,
                    '{"receipts":["' .. receipt .. '"]}')
end

function response(status, headers, body)
  if step == "take" then
    if mode == "webdis" then
      receipt = body:match('"(%d+%-%d+)"')
    else
      receipt = body:match('"receipt":"(%x+)"')
    end
    if status == 200 and receipt ~= nil then
      step = "ack"
    else
      failures = failures + 1
    end
  else
    local ok
    if mode == "webdis" then
      ok = status == 200 and body:find('"XACK":1', 1, true) ~= nil
    else
      ok = status == 200 and body:find('"applied":1', 1, true) ~= nil
    end
    if ok then
      pairs_done = pairs_done + 1
    else
      failures = failures + 1
    end
    step = "take"
  end
end

function done(summary, latency, requests)
  local pairs, fails = 0, 0
  for _, t in ipairs(threads_all) do
    pairs = pairs + t:get("pairs_done")
    fails = fails + t:get("failures")
  end
  local e = summary.errors
  io.write(string.format("wrk_result %d %d %d %d %d %d %d\n", pairs,
                         summary.duration, fails, e.connect, e.read, e.write,
                         e.timeout))
end

function setup(thread)
  threads_all = threads_all or {}
  table.insert(threads_all, thread)
end
