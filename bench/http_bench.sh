#!/bin/sh
# bench/http_bench.sh BUILD - atriumd's HTTP API beside Webdis+Redis (the
# nearest thing: a small C HTTP/JSON gateway in front of a shared store)
# and beside nginx answering a fixed body (the machine's HTTP ceiling).
#
# Everything runs here and now, on loopback, as plain child processes with
# their own configs in a temp dir and on free ports (never the system
# services): Redis, Webdis, nginx and atriumd (on its own store under
# /dev/shm). All are stopped, and the store and temp dir removed, on exit.
# Load: wrk -t2 -c50 keep-alive (-t1 -c1 for the one-connection pair);
# POST bodies come from bench/http_bench.lua.
#
# Prints `name: value unit` lines (req/s unless said), each run's servers'
# CPU time per request, a `check` line per run (the store or Redis changed
# by exactly what the server says it answered, and wrk counted that many
# less at most one request per connection in flight when it stopped), then
# ratios against the targets. Informational: a number below its target is reported, never a
# failure; a run with any non-2xx answer, socket error or count that does
# not add up is a failed benchmark, and the script exits 1.
#   ATRIUM_HTTP_BENCH_TIME=SECONDS   duration of each wrk run (default 5)
set -eu

build=${1:-build}
here=$(dirname "$0")
dur=${ATRIUM_HTTP_BENCH_TIME:-5}
atriumd=$build/atriumd
parked_n=10000
item='{"id":12345,"task":"resize"}'
item_url='%7B%22id%22%3A12345%2C%22task%22%3A%22resize%22%7D' # the same
pop_fill=1500000 # items put in before the pop run: far more than it drains
lease_fill=400000 # the same for the leased take+ack runs (two requests each)

PATH=$PATH:/usr/sbin:/sbin # nginx
# Loopback only: curl never through a proxy the environment names.
curl() { command curl --noproxy '*' "$@"; }
for tool in wrk redis-server redis-cli webdis nginx curl python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "http_bench: $tool not found (make bench installs it)" >&2
    exit 1
  }
done
[ -x "$atriumd" ] || {
  echo "http_bench: $atriumd not built (run make bench)" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/atrium-httpbench.XXXXXX")
store=/dev/shm/atrium-httpbench-$$
pids= # children still to stop
status=0

# alive PID: the child runs (exists and is not a zombie yet).
alive() {
  [ -e "/proc/$1" ] &&
    [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}
# stop PID: SIGTERM, SIGKILL after 5 s, then reap it. Returns its status.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  n=0
  while [ $n -lt 50 ] && alive "$1"; do
    sleep 0.1
    n=$((n + 1))
  done
  kill -KILL "$1" 2>/dev/null || true
  rc=0
  wait "$1" 2>/dev/null || rc=$?
  pids=$(echo "$pids" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ' || true)
  return $rc
}
# shellcheck disable=SC2317 # (run by the EXIT trap)
cleanup() {
  for pid in $pids; do stop "$pid" || true; done
  rm -rf "$tmp"
  rm -f "$store"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# (In the foreground only: a function run with & is a subshell, and $! its
# pid, not the helper's.)
helper() { python3 "$here/http_bench_helper.py" "$@"; }

# wait_for WHAT CMD...: retries CMD for 10 s.
wait_for() {
  what=$1
  shift
  n=0
  until "$@" >/dev/null 2>&1; do
    n=$((n + 1))
    if [ $n -gt 100 ]; then
      echo "http_bench: $what did not start; its log:" >&2
      cat "$tmp"/*.log >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
}

# ------------------------------------------------------------ the servers
# shellcheck disable=SC2046 # (three words)
set -- $(helper ports 3)
redis_port=$1 webdis_port=$2 nginx_port=$3
ncpu=$(nproc)

cat >"$tmp/redis.conf" <<EOF
bind 127.0.0.1
port $redis_port
protected-mode yes
daemonize no
save ""
appendonly no
dir $tmp
logfile $tmp/redis.log
EOF
redis-server "$tmp/redis.conf" </dev/null >/dev/null 2>&1 &
redis_pid=$!
pids="$pids $redis_pid"
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
wait_for Redis rcli ping

# Webdis with as many threads as atriumd has (one per CPU), quiet log.
cat >"$tmp/webdis.json" <<EOF
{
  "redis_host": "127.0.0.1", "redis_port": $redis_port, "redis_auth": null,
  "http_host": "127.0.0.1", "http_port": $webdis_port, "threads": $ncpu,
  "daemonize": false, "database": 0,
  "verbosity": 1, "logfile": "$tmp/webdis.log"
}
EOF
webdis "$tmp/webdis.json" </dev/null >/dev/null 2>&1 &
webdis_pid=$!
pids="$pids $webdis_pid"
webdis=http://127.0.0.1:$webdis_port
wait_for Webdis curl -sf "$webdis/PING"

# nginx: one worker per CPU, a fixed 60-byte JSON answer, no log, no limit
# on the requests per keep-alive connection.
fixed='{"name":"c","type":"q","value":1234567890,"version":1234568}'
[ ${#fixed} -eq 60 ] || { echo "http_bench: fixed body is not 60 bytes" >&2; exit 1; }
cat >"$tmp/nginx.conf" <<EOF
daemon off;
worker_processes $ncpu;
pid $tmp/nginx.pid;
error_log $tmp/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx-body;
  proxy_temp_path $tmp/nginx-proxy;
  fastcgi_temp_path $tmp/nginx-fastcgi;
  uwsgi_temp_path $tmp/nginx-uwsgi;
  scgi_temp_path $tmp/nginx-scgi;
  keepalive_requests 1000000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { default_type application/json; return 200 '$fixed'; }
  }
}
EOF
nginx -e "$tmp/nginx.log" -p "$tmp" -c "$tmp/nginx.conf" </dev/null >/dev/null 2>&1 &
nginx_pid=$!
pids="$pids $nginx_pid"
nginx=http://127.0.0.1:$nginx_port
wait_for nginx curl -sf "$nginx/"

# atriumd, with its default thread pool (one per CPU). The store is sized
# for the pre-filled pop queue; events go to a socket file in the temp dir.
"$atriumd" --store "$store" --store-size 256M --listen 127.0.0.1:0 \
  --events "ipc://$tmp/events.ipc" </dev/null >/dev/null 2>"$tmp/atriumd.log" &
atriumd_pid=$!
pids="$pids $atriumd_pid"
wait_for atriumd grep -q '^atriumd: listening on http://' "$tmp/atriumd.log"
gw_port=$(sed -n 's|^atriumd: listening on http://127\.0\.0\.1:\([0-9]*\),.*|\1|p' \
  "$tmp/atriumd.log")
gw=http://127.0.0.1:$gw_port

api() { # api METHOD PATH [BODY]
  if [ $# -gt 2 ]; then
    curl -sSf -X "$1" -H 'Content-Type: application/json' -d "$3" "$gw$2"
  else
    curl -sSf -X "$1" "$gw$2"
  fi
}
field() { sed -n "s/.*\"$1\":\([0-9-]*\).*/\1/p"; } # field NAME < JSON
metric() { # metric NAME: a sample of /metrics, 0 if absent
  curl -sSf "$gw/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v == "" ? 0 : v }'
}
served() { metric "atrium_http_requests_total{route=\"$1\",status=\"$2\"}"; }

# ------------------------------------------------------------ measuring
results=$tmp/results
: >"$results"
: >"$tmp/failed"

emit() { # emit NAME VALUE UNIT
  printf '%s: %s %s\n' "$1" "$2" "$3"
  echo "$1 $2" >>"$results"
}
emit_run() { # emit_run NAME VALUE UNIT: emit, then the CPU comment of the run
  emit "$@"
  echo "$cpu"
}
fail() { # fail NAME WHY
  echo "check $1: FAILED: $2"
  echo "$1" >>"$tmp/failed"
  status=1
}
runs=0
wrk_script=http_bench.lua

# CPU time (utime + stime, in clock ticks) of the processes named by
# $servers (for nginx, its workers too): the server's own cost per request,
# which other load on the machine disturbs less than the rate.
tick_us=$((1000000 / $(getconf CLK_TCK)))
cpu_ticks() {
  for pid in $servers $(for p in $servers; do pgrep -P "$p" || true; done); do
    sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null || true
  done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# wrk_run NAME THREADS CONNS METHOD BODY URL: one wrk run (its script:
# $wrk_script, http_bench.lua unless a run says otherwise). Sets reqs (as
# wrk counted them), rate (req/s), conns and cpu (a comment line: the
# servers' CPU time per request); a non-2xx answer or a socket error fails
# NAME.
wrk_run() {
  log=$tmp/wrk-$1.log
  conns=$3
  runs=$((runs + 1))
  cpu0=$(cpu_ticks)
  if ! WRK_METHOD=$4 WRK_BODY=$5 wrk -t"$2" -c"$3" -d"${dur}s" \
    -s "$here/$wrk_script" "$6" >"$log" 2>&1; then
    fail "$1" "wrk failed: $(tail -n 2 "$log" | tr '\n' ' ')"
    reqs=0 rate=0
    return 0
  fi
  # shellcheck disable=SC2046 # (seven numbers)
  set -- "$1" $(sed -n 's/^wrk_result //p' "$log")
  if [ $# -ne 8 ]; then
    fail "$1" "no result from wrk: $(tail -n 2 "$log" | tr '\n' ' ')"
    reqs=0 rate=0
    return 0
  fi
  reqs=$2
  rate=$(awk -v n="$2" -v us="$3" 'BEGIN { printf "%.0f", n * 1e6 / us }')
  cpu=$(awk -v t=$(($(cpu_ticks) - cpu0)) -v us="$tick_us" -v n="$2" -v who="$servers_name" \
    'BEGIN { printf "# %s: %.1f us of CPU per request", who, n ? t * us / n : 0 }')
  if [ "$4" -ne 0 ]; then
    fail "$1" "$4 failed answers of $2 (non-2xx; locks: not granted or released)"
  fi
  if [ $(($5 + $6 + $7 + $8)) -ne 0 ]; then
    fail "$1" "socket errors: connect $5, read $6, write $7, timeout $8"
  fi
}

# counts NAME WHAT CHANGED ANSWERED: the object changed (WHAT CHANGED, e.g.
# "c grew by" 1234; WHAT empty: no object to look at) by exactly what the
# server answered (atriumd's /metrics, Redis' commandstats), which is
# wrk's count plus at most one request in flight per connection when wrk
# stopped.
counts() {
  if [ -n "$2" ] && [ "$3" -ne "$4" ]; then
    fail "$1" "$2 $3, but $4 requests were answered"
  elif [ "$4" -lt "$reqs" ] || [ "$4" -gt $((reqs + conns)) ]; then
    fail "$1" "$4 requests answered, but wrk counted $reqs"
  else
    echo "check $1: ${2:+$2 $3, }$4 answered; wrk counted $reqs (+$(($4 - reqs)) in flight at its stop): ok"
  fi
}
calls() { # calls CMD: how many CMD Redis has run
  rcli info commandstats | tr -d '\r' |
    awk -F'[:=,]' -v k="cmdstat_$1" '$1 == k { v = $3 } END { print v == "" ? 0 : v }'
}

# Other load on the machine moves the rates (not so much the CPU time per
# request): the load average is printed with them.
echo "# HTTP: atriumd beside Webdis+Redis and nginx (wrk -t2 -c50 -d${dur}s keep-alive, loopback, $ncpu CPUs, load average $(cut -d' ' -f1 /proc/loadavg))"

# Idle memory first: after start-up and a little traffic on every route.
# gateway_idle_rss is the daemon's own resident memory: Rss summed over
# every mapping in /proc/PID/smaps except the store's. The store is a
# MAP_SHARED mapping of a tmpfs file: its pages belong to the store, which
# every attached process shares and whose size the user picks, so counting
# it would measure the store, not the daemon. What is left is the heap,
# the thread stacks and the resident pages of the binary and its libraries
# (RssAnon + RssFile in /proc/PID/status: RSS as ps shows it, less the
# store).
rss_kib() {
  awk -v store="$store" '
    /^[0-9a-f]+-[0-9a-f]+ / { skip = ($6 == store) }
    /^Rss:/ && !skip { kib += $2 }
    END { print kib + 0 }' "/proc/$atriumd_pid/smaps"
}
rss_parts() {
  awk '/^Rss(Anon|File|Shmem):/ { printf "%s%s %s KiB", sep, $1, $2; sep = ", " }' \
    "/proc/$atriumd_pid/status"
}
helper traffic "$gw_port" 100
sleep 1
emit gateway_idle_rss "$(rss_kib)" KiB
echo "# gateway_idle_rss: $(rss_parts) (RssShmem is the store, left out)"

gw_servers() { servers=$atriumd_pid servers_name=atriumd; }
webdis_servers() { servers="$webdis_pid $redis_pid" servers_name=webdis+redis; }

# Value add, then Redis INCR through Webdis.
api PUT /v1/values/c '{"type":"q","value":0}' >/dev/null
c0=$(api GET /v1/values/c | field value)
a0=$(served value_add 200)
gw_servers
wrk_run http_value_add 2 50 POST '{"delta":1}' "$gw/v1/values/c/add"
emit_run http_value_add "$rate" req/s
c1=$(api GET /v1/values/c | field value)
counts http_value_add "c grew by" $((c1 - c0)) $(($(served value_add 200) - a0))

rcli set k 0 >/dev/null
r0=$(calls incr)
webdis_servers
wrk_run webdis_incr 2 50 GET '' "$webdis/INCR/k"
emit_run webdis_incr "$rate" req/s
counts webdis_incr "k grew by" "$(rcli get k)" $(($(calls incr) - r0))

# Value get (c must not change).
g0=$(served value_get 200)
gw_servers
wrk_run http_value_get 2 50 GET '' "$gw/v1/values/c"
emit_run http_value_get "$rate" req/s
counts http_value_get "" 0 $(($(served value_get 200) - g0))
[ "$(api GET /v1/values/c | field value)" -eq "$c1" ] ||
  fail http_value_get "c changed during the get run"

r0=$(calls get)
webdis_servers
wrk_run webdis_get 2 50 GET '' "$webdis/GET/k"
emit_run webdis_get "$rate" req/s
counts webdis_get "" 0 $(($(calls get) - r0))

# Dict: set one key (PUT, a small JSON value), then Redis HSET through
# Webdis; get it, then HGET. Each set is one commit: the dict's version
# grows by one per set answered.
api PUT /v1/dicts/dd '{}' >/dev/null
api PUT /v1/dicts/dd/keys/k '1' >/dev/null
v0=$(api GET /v1/dicts/dd | field version)
d0=$(served dict_key_put 200)
gw_servers
wrk_run http_dict_set 2 50 PUT '{"n":1}' "$gw/v1/dicts/dd/keys/k"
emit_run http_dict_set "$rate" req/s
v1=$(api GET /v1/dicts/dd | field version)
counts http_dict_set "dd's version grew by" $((v1 - v0)) $(($(served dict_key_put 200) - d0))

rcli hset h k 1 >/dev/null
r0=$(calls hset)
webdis_servers
wrk_run webdis_hset 2 50 GET '' "$webdis/HSET/h/k/1"
emit_run webdis_hset "$rate" req/s
counts webdis_hset "" 0 $(($(calls hset) - r0))

d0=$(served dict_key_get 200)
gw_servers
wrk_run http_dict_get 2 50 GET '' "$gw/v1/dicts/dd/keys/k"
emit_run http_dict_get "$rate" req/s
counts http_dict_get "" 0 $(($(served dict_key_get 200) - d0))
[ "$(api GET /v1/dicts/dd | field version)" -eq "$v1" ] ||
  fail http_dict_get "dd changed during the get run"

r0=$(calls hget)
webdis_servers
wrk_run webdis_hget 2 50 GET '' "$webdis/HGET/h/k"
emit_run webdis_hget "$rate" req/s
counts webdis_hget "" 0 $(($(calls hget) - r0))

# Queue put (one small JSON item per POST), then LPUSH of the same text.
api PUT /v1/queues/q '{}' >/dev/null
s0=$(api GET /v1/queues/q | field size)
p0=$(served queue_push 201)
gw_servers
wrk_run http_queue_put 2 50 POST "$item" "$gw/v1/queues/q/items"
emit_run http_queue_put "$rate" req/s
s1=$(api GET /v1/queues/q | field size)
counts http_queue_put "q grew by" $((s1 - s0)) $(($(served queue_push 201) - p0))

r0=$(calls lpush)
webdis_servers
wrk_run webdis_lpush 2 50 GET '' "$webdis/LPUSH/lq/$item_url"
emit_run webdis_lpush "$rate" req/s
webdis_lpush_rate=$rate
counts webdis_lpush "lq grew by" "$(rcli llen lq)" $(($(calls lpush) - r0))
[ "$(rcli lindex lq 0)" = "$item" ] || fail webdis_lpush "lq holds $(rcli lindex lq 0), not $item"

# Queue pop. The queue qp is filled beforehand with far more items than
# the run can take (pop_fill), so every pop returns an item; checked: no
# 204 (empty) answer, the queue is not empty afterwards, and it shrank by
# exactly the 200s answered.
helper fill "$gw_port" qp "$pop_fill" "$item" >/dev/null
s0=$(api GET /v1/queues/qp | field size)
o0=$(served queue_pop 200)
e0=$(served queue_pop 204)
gw_servers
wrk_run http_queue_pop 2 50 POST '' "$gw/v1/queues/qp/pop"
emit_run http_queue_pop "$rate" req/s
s1=$(api GET /v1/queues/qp | field size)
e1=$(served queue_pop 204)
if [ "$e1" -ne "$e0" ] || [ "$s1" -eq 0 ]; then
  fail http_queue_pop "$((e1 - e0)) pops found the queue empty (204); $s1 left of $s0"
else
  counts http_queue_pop "qp ($s0 items, $s1 left, no 204) shrank by" $((s0 - s1)) \
    $(($(served queue_pop 200) - o0))
fi
got=$(api POST /v1/queues/qp/pop)
[ "$got" = "{\"items\":[$item]}" ] || fail http_queue_pop "a pop answered $got"

# RPOP from a Redis list filled the same way (RPOP of an empty list would
# answer 200 {"RPOP":null}, so the list must not run dry either).
rcli eval "for i = 1, tonumber(ARGV[1]) do redis.call('RPUSH', KEYS[1], ARGV[2]) end" \
  1 pq "$pop_fill" "$item" >/dev/null
s0=$(rcli llen pq)
r0=$(calls rpop)
webdis_servers
wrk_run webdis_rpop 2 50 GET '' "$webdis/RPOP/pq"
emit_run webdis_rpop "$rate" req/s
s1=$(rcli llen pq)
if [ "$s1" -eq 0 ]; then
  fail webdis_rpop "the list ran dry"
else
  counts webdis_rpop "pq ($s0 items, $s1 left) shrank by" $((s0 - s1)) $(($(calls rpop) - r0))
fi

# One connection: the latency of one request, end to end.
c0=$(api GET /v1/values/c | field value)
a0=$(served value_add 200)
gw_servers
wrk_run http_value_add_c1 1 1 POST '{"delta":1}' "$gw/v1/values/c/add"
emit_run http_value_add_c1 "$rate" req/s
c1=$(api GET /v1/values/c | field value)
counts http_value_add_c1 "c grew by" $((c1 - c0)) $(($(served value_add 200) - a0))

k0=$(rcli get k)
r0=$(calls incr)
webdis_servers
wrk_run webdis_incr_c1 1 1 GET '' "$webdis/INCR/k"
emit_run webdis_incr_c1 "$rate" req/s
counts webdis_incr_c1 "k grew by" $(($(rcli get k) - k0)) $(($(calls incr) - r0))

# Locks on one connection: acquire (a 10 s lease) and release in turns,
# each release carrying its acquire's token, against the usual Redis lock
# through Webdis: SET key token NX PX 10000, then a Lua compare-and-delete.
# Rates are acquire+release pairs a second (wrk's "requests" here are
# pairs). Checked: every acquire and release answered as granted and
# released; the server granted exactly as many as the pairs wrk counted
# (+1 in flight at its stop): atriumd's lock_acquire 200s, Redis' SETs.
export WRK_MODE WRK_LOCK=bl
wrk_script=lock_bench.lua
api PUT /v1/locks/bl '{}' >/dev/null
l0=$(served lock_acquire 200)
gw_servers
WRK_MODE=atrium
wrk_run http_lock_c1 1 1 POST '' "$gw"
emit_run http_lock_c1 "$rate" "acquire+release/s"
counts http_lock_c1 "" 0 $(($(served lock_acquire 200) - l0))
rcli del bl >/dev/null
r0=$(calls set)
webdis_servers
WRK_MODE=webdis
wrk_run webdis_lock_c1 1 1 GET '' "$webdis"
emit_run webdis_lock_c1 "$rate" "acquire+release/s"
counts webdis_lock_c1 "" 0 $(($(calls set) - r0))
wrk_script=http_bench.lua

# Leased items, one connection per thread: a pop under a 30 s lease and
# the ack of its receipt, in turns, against Redis Streams through Webdis
# (XREADGROUP of one entry, then XACK of its id). Both are filled first
# with more items than a run takes. Rates are take+ack pairs a second.
# Checked: every take handed out an item and every ack acknowledged one;
# the server acked exactly the pairs wrk counted (+1 per connection in
# flight): atriumd's queue_ack 200s, Redis' XACKs.
export WRK_QUEUE=lp
wrk_script=lqueue_bench.lua
api PUT /v1/queues/lp '{}' >/dev/null
helper fill "$gw_port" lp "$lease_fill" "$item" >/dev/null
k0=$(served queue_ack 200)
gw_servers
WRK_MODE=atrium
wrk_run http_lqueue 2 2 POST '' "$gw"
emit_run http_lqueue "$rate" "take+ack/s"
counts http_lqueue "" 0 $(($(served queue_ack 200) - k0))
rcli eval "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'item', ARGV[2]) end" \
  1 lp "$lease_fill" "$item" >/dev/null
rcli xgroup create lp g 0 >/dev/null
r0=$(calls xack)
webdis_servers
WRK_MODE=webdis
wrk_run webdis_xack 2 2 GET '' "$webdis"
emit_run webdis_xack "$rate" "take+ack/s"
counts webdis_xack "" 0 $(($(calls xack) - r0))
wrk_script=http_bench.lua

# Batches of 100 items. At millions of items/s the queue would outgrow
# any reasonable store in 5 s, so a helper empties it ten times a second
# (DELETE /v1/queues/qb/items, one cheap request each time). Checked: the
# queue's version grew by one per batch answered 201 plus one per clear.
batch=$(awk -v it="$item" 'BEGIN { printf "["; for (i = 0; i < 100; i++) printf "%s%s", (i ? "," : ""), it; printf "]" }')
api PUT /v1/queues/qb '{}' >/dev/null
v0=$(api GET /v1/queues/qb | field version)
b0=$(served queue_batch 201)
python3 "$here/http_bench_helper.py" clear "$gw_port" qb 0.1 >"$tmp/clear.out" &
clear_pid=$!
pids="$pids $clear_pid"
gw_servers
wrk_run http_queue_batch100 2 50 POST "$batch" "$gw/v1/queues/qb/batch"
stop "$clear_pid" || true
emit_run http_queue_batch100_items "$((rate * 100))" items/s
clears=$(sed -n 's/^clears //p' "$tmp/clear.out")
v1=$(api GET /v1/queues/qb | field version)
counts http_queue_batch100 "qb's version grew by $((v1 - v0)), less ${clears:-?} clears:" \
  $((v1 - v0 - ${clears:-0})) $(($(served queue_batch 201) - b0))

# The batch's peer: LPUSH through Webdis, one item a request (the run
# above; items/s = req/s). For comparison only, no target: LPUSH of 100
# items in one Webdis request.
emit webdis_lpush_items "$webdis_lpush_rate" "items/s (the peer: webdis_lpush above, one item per GET /LPUSH)"
l0=$(rcli llen lq100)
r0=$(calls lpush)
path=/LPUSH/lq100
i=0
while [ $i -lt 100 ]; do
  path=$path/$item_url
  i=$((i + 1))
done
webdis_servers
wrk_run webdis_lpush100 2 50 GET '' "$webdis$path"
emit_run webdis_lpush100_items "$((rate * 100))" "items/s (informational: 100 items per GET /LPUSH)"
l1=$(rcli llen lq100)
counts webdis_lpush100 "lq100 grew by 100 x" $(((l1 - l0) / 100)) $(($(calls lpush) - r0))

# The machine's ceiling: nginx answering a fixed 60-byte body.
servers=$nginx_pid servers_name="nginx (all workers)"
wrk_run nginx_fixed 2 50 GET '' "$nginx/"
emit_run nginx_fixed "$rate" req/s

# Adds while 10,000 long-polls wait on another value (w). A helper opens
# the connections (it needs one descriptor each: ulimit -n), and says
# "parked" once the gateway's atrium_parked_requests gauge counts them all.
# After the run the gauge must still say so; then one add to w must answer
# every one of them (200 with the new version), and the gauge drop to 0.
api PUT /v1/values/w '{"type":"q","value":0}' >/dev/null
: >"$tmp/park.out"
(
  # shellcheck disable=SC3045 # (dash and bash have it)
  ulimit -n $((parked_n + 256)) || exit 1
  exec python3 "$here/http_bench_helper.py" park "$gw_port" w "$parked_n" 60
) >"$tmp/park.out" 2>&1 &
park_pid=$!
pids="$pids $park_pid"
n=0
until grep -q '^parked ' "$tmp/park.out" || ! alive "$park_pid" ||
  [ $n -gt 600 ]; do
  sleep 0.1
  n=$((n + 1))
done
if ! grep -q '^parked ' "$tmp/park.out"; then
  fail http_value_add_parked "the long-polls did not park: $(tr '\n' ' ' <"$tmp/park.out")"
  stop "$park_pid" || true
else
  before=$(metric atrium_parked_requests)
  emit gateway_rss_parked "$(rss_kib)" "KiB (informational: the same, with $parked_n requests parked)"
  c0=$(api GET /v1/values/c | field value)
  a0=$(served value_add 200)
  gw_servers
  wrk_run http_value_add_parked 2 50 POST '{"delta":1}' "$gw/v1/values/c/add"
  emit_run http_value_add_parked "$rate" req/s
  c1=$(api GET /v1/values/c | field value)
  during=$(metric atrium_parked_requests)
  counts http_value_add_parked "c grew by" $((c1 - c0)) $(($(served value_add 200) - a0))
  kill -USR1 "$park_pid"
  n=0
  while alive "$park_pid" && [ $n -lt 900 ] &&
    ! grep -q '^released ' "$tmp/park.out"; do
    sleep 0.1
    n=$((n + 1))
  done
  stop "$park_pid" || true
  after=$(metric atrium_parked_requests)
  released=$(sed -n 's/^released //p' "$tmp/park.out")
  ms=$(echo "$released" | sed -n 's/.* in \([0-9]*\) ms.*/\1/p')
  first=$(echo "$released" | sed -n 's/.* first after \([0-9]*\) ms.*/\1/p')
  good=$(echo "$released" | sed -n 's/^\([0-9]*\) of.*/\1/p')
  if [ "$before" != "$parked_n" ] || [ "$during" != "$parked_n" ] ||
    [ "${good:-0}" != "$parked_n" ] || [ "$after" != 0 ]; then
    fail http_value_add_parked "parked gauge $before before the run, $during after it, $after after the release; released: ${released:-nothing} $(tr '\n' ' ' <"$tmp/park.out")"
  else
    echo "check http_value_add_parked: $parked_n parked (gauge) before and after the run; one add to w answered $good of $parked_n (200, newer version); gauge now 0: ok"
    emit http_parked_release "$ms" "ms (informational: one add to w until the last of the $parked_n answers is read, the first after $first ms; the Python client's reading included)"
  fi
fi

sleep 1
emit gateway_rss_after "$(rss_kib)" "KiB (informational: the same, idle after all the runs)"

if [ -s "$tmp/failed" ]; then
  echo "check wrk: $runs runs; FAILED: $(sort -u "$tmp/failed" | tr '\n' ' ')"
else
  echo "check wrk: $runs runs, no non-2xx answer, no socket error, every count adds up: ok"
fi

# Stop everything now, so that a daemon that does not stop cleanly shows.
for pid in $pids; do
  if [ "$pid" = "$atriumd_pid" ]; then
    stop "$pid" || {
      echo "check atriumd: exit status $? on SIGTERM: FAILED"
      status=1
    }
  else
    stop "$pid" || true
  fi
done

echo "# ratios (targets are goals, not tests)"
sort -u "$tmp/failed" | sed 's/^/failed /' >>"$results"
awk -f "$here/ratios.awk" "$results" - <<'EOF'
http_value_add    webdis_incr    >= 2 x
http_value_get    webdis_get     >= 2 x
http_dict_set     webdis_hset    >= 1.5 x
http_dict_get     webdis_hget    >= 1.5 x
http_queue_put    webdis_lpush   >= 2 x
http_queue_pop    webdis_rpop    >= 2 x
http_value_add    nginx_fixed    >= 0.8
http_value_add_c1 webdis_incr_c1 >= 3 x
http_lock_c1      webdis_lock_c1 >= 1.5 x
http_lqueue       webdis_xack    >= 1.5 x
http_queue_batch100_items webdis_lpush_items >= 20 x http_queue_batch100 webdis_lpush
http_value_add_parked http_value_add >= 0.8
limit gateway_idle_rss <= 8 1024 MiB
EOF
[ $status -eq 0 ] || echo "http_bench: failed benchmarks: $(sort -u "$tmp/failed" | tr '\n' ' ')" >&2
exit $status
