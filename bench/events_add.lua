-- wrk script of bench/events_bench.sh: add 1 to one value, keep-alive.
wrk.method = "POST"
wrk.path = "/v1/values/evbench.add/add"
wrk.body = '{"delta":1}'
wrk.headers["Content-Type"] = "application/json"
