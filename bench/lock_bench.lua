-- lock_bench.lua - wrk script of bench/http_bench.sh: acquire and release
-- one lock in turns on each connection (run it with -c1), each release
-- carrying what its acquire answered.
--   WRK_MODE=atrium: POST /v1/locks/NAME/acquire?ttl=10, then
--     POST /v1/locks/NAME/release {"token":"<the acquire's token>"};
--   WRK_MODE=webdis: GET /SET/NAME/<token>/NX/PX/10000, then
--     GET /EVAL/<compare-and-delete script>/1/NAME/<token> (the release of
--     the usual Redis lock recipe: delete the key only if it still holds
--     this client's token).
-- WRK_LOCK names the lock. An acquire or release that does not answer as
-- granted or released counts as a failure. done() prints the line of
-- http_bench.lua, with pairs for requests and failures for non-2xx:
--   wrk_result PAIRS DURATION_US FAILURES CONNECT READ WRITE TIMEOUT
local mode = os.getenv("WRK_MODE") or "atrium"
local name = os.getenv("WRK_LOCK") or "bl"
local cas = "if redis.call('get',KEYS[1])==ARGV[1] then " ..
            "return redis.call('del',KEYS[1]) else return 0 end"

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local eval_path = "/EVAL/" .. urlencode(cas) .. "/1/" .. name .. "/"
local acquire_atrium = wrk.format("POST", "/v1/locks/" .. name .. "/acquire?ttl=10")
local json = { ["Content-Type"] = "application/json" }

local step, token, seq = "acquire", nil, 0
pairs_done, failures = 0, 0

function request()
  if step == "acquire" then
    if mode == "webdis" then
      seq = seq + 1
      token = string.format("t%d-%d", math.random(1, 1e9), seq)
      return wrk.format("GET", "/SET/" .. name .. "/" .. token .. "/NX/PX/10000")
    end
    return acquire_atrium
  end
  if mode == "webdis" then
    return wrk.format("GET", eval_path .. token)
  end
  return wrk.format("POST", "/v1/locks/" .. name .. "/release", json,
                    '{"token":"' .. token .. '"}')
end

function response(status, headers, body)
  if step == "acquire" then
    local ok
    if mode == "webdis" then
      ok = status == 200 and body:find('"OK"', 1, true) ~= nil
    else
      token = body:match('"token":"(%x+)"')
      ok = status == 200 and token ~= nil
    end
    if ok then
      step = "release"
    else
      failures = failures + 1
    end
  else
    local ok
    if mode == "webdis" then
      ok = status == 200 and body:find('"EVAL":1', 1, true) ~= nil
    else
      ok = status == 200
    end
    if ok then
      pairs_done = pairs_done + 1
    else
      failures = failures + 1
    end
    step = "acquire"
  end
end

function done(summary, latency, requests)
  -- One thread: its counters are the run's.
  local t = threads_all[1]
  local e = summary.errors
  io.write(string.format("wrk_result %d %d %d %d %d %d %d\n",
                         t:get("pairs_done"), summary.duration,
                         t:get("failures"), e.connect, e.read, e.write,
                         e.timeout))
end

function setup(thread)
  threads_all = threads_all or {}
  table.insert(threads_all, thread)
end
