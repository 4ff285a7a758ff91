#!/bin/sh
# bench/events_bench.sh BUILD - the change events of atriumd: latency from
# a change made by a local process (libatrium) to its receipt by an nng
# subscriber and by an SSE client, beside a bare nng pub -> sub on the
# same transport at the same rate (bench/events_bench.c); and HTTP add
# throughput (wrk -t2 -c50) with and without an SSE client that has
# stopped reading; and a pop parked in atriumd woken by a put from another
# local process, beside Redis's BLPOP woken by an LPUSH from another
# client (a redis-server of its own on a free loopback port).
#
# Runs atriumd on its own store under /dev/shm, HTTP and events on free
# loopback ports; both are removed on exit. Prints `name: value unit`
# lines, then ratios against the targets. Informational: a number off its
# target is reported, never a failure; a run that does not work is.
#   ATRIUM_EVENTS_BENCH_TIME=SECONDS   duration of each run (default 5)
#   ATRIUM_EVENTS_BENCH_RATE=N         changes a second (default 10000)
set -eu

build=${1:-build}
here=$(dirname "$0")
dur=${ATRIUM_EVENTS_BENCH_TIME:-5}
rate=${ATRIUM_EVENTS_BENCH_RATE:-10000}
atriumd=$build/atriumd
bench=$build/bench/events_bench

for tool in wrk curl redis-server python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "events_bench: $tool not found (make bench installs it)" >&2
    exit 1
  }
done
for bin in "$atriumd" "$bench"; do
  [ -x "$bin" ] || {
    echo "events_bench: $bin not built (run make bench)" >&2
    exit 1
  }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atrium-evbench.XXXXXX")
store=/dev/shm/atrium-evbench-$$
gw_pid=
stall_pid=
redis_pid=
cleanup() {
  [ -n "$stall_pid" ] && kill "$stall_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  if [ -n "$gw_pid" ]; then
    kill "$gw_pid" 2>/dev/null
    wait "$gw_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  rm -f "$store"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$atriumd" --store "$store" --listen 127.0.0.1:0 --events tcp://127.0.0.1:0 \
  2>"$tmp/atriumd.err" &
gw_pid=$!
# The ready line names the ports; wait for it (10 s at most).
i=0
until grep -q '^atriumd: listening on' "$tmp/atriumd.err" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 200 ] || ! kill -0 "$gw_pid" 2>/dev/null; then
    echo "events_bench: atriumd did not start:" >&2
    cat "$tmp/atriumd.err" >&2
    exit 1
  fi
  sleep 0.05
done
ready=$(grep '^atriumd: listening on' "$tmp/atriumd.err")
port=$(echo "$ready" | sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\),.*|\1|p')
events=$(echo "$ready" | sed -n 's|.*events on \(.*\)$|\1|p')
base=http://127.0.0.1:$port

results=$tmp/results
echo "# events: latency at $rate changes/s, from a local set to its receipt"
"$bench" latency "$events" "$port" "$store" "$rate" 3 | tee "$results"

# until_ready WHY COMMAND...: runs COMMAND (quietly) until it succeeds,
# 10 s at most; then fails the run, saying WHY.
until_ready() {
  why=$1
  shift
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -le 200 ] || {
      echo "events_bench: $why" >&2
      exit 1
    }
    sleep 0.05
  done
}

# wrk_add NAME: one wrk run of POST .../add; prints NAME: req/s.
wrk_add() {
  out=$(wrk -t2 -c50 -d"${dur}s" -s "$here/events_add.lua" "$base/")
  if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
    echo "events_bench: $1: errors:" >&2
    echo "$out" >&2
    exit 1
  fi
  rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
  printf '%s: %.0f req/s\n' "$1" "$rps"
}

curl -sf -X PUT -H 'Content-Type: application/json' -d '{"type":"q"}' \
  "$base/v1/values/evbench.add" >/dev/null
echo "# events: HTTP add throughput, wrk -t2 -c50, ${dur}s"
# One SSE client of every topic that reads nothing (also a healthy one
# would not change much: the point is the stalled one costs nothing).
wrk_add http_value_add | tee -a "$results"
"$bench" stall "$port" >"$tmp/stall.out" &
stall_pid=$!
until_ready "the stalled client did not connect" \
  grep -q stalled "$tmp/stall.out"
wrk_add http_value_add_stalled_sub | tee -a "$results"
kill "$stall_pid"
wait "$stall_pid" 2>/dev/null || true
stall_pid=

# A parked pop woken by another process's put: atriumd (HTTP, the put
# through libatrium) beside Redis (RESP, BLPOP woken by an LPUSH).
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  >"$tmp/redis.log" 2>&1 &
redis_pid=$!
until_ready "redis-server did not start" \
  "$bench" wake redis "$redis_port" 1
echo "# events: a parked pop woken by a put from another process (2000 times)"
"$bench" wake atrium "$port" "$store" 2000 | tee -a "$results"
"$bench" wake redis "$redis_port" 2000 | tee -a "$results"

echo "# events: ratios (targets are goals, not tests)"
awk -f "$here/ratios.awk" "$results" - <<'EOF'
event_latency_nng_p99      nng_raw_latency_p99 <= 2
event_latency_sse_p99      nng_raw_latency_p99 <= 2
http_value_add_stalled_sub http_value_add      >= 0.95
http_pop_parked_wake_p50   redis_blpop_wake_p50 <= 2
EOF
exit 0
