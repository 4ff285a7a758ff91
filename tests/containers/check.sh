#!/bin/bash
# tests/containers/check.sh - make check-containers: the image built from
# the Dockerfile as it is, and the sidecar run as users run it, under real
# engines: Docker (with deploy/compose.yaml as it is) and podman (with
# deploy/kubernetes.yaml, through `podman kube play`).
#
# Needs root and the packages of `deploy/install-deps.sh --containers`
# (make check-containers installs them). It starts an engine of its own
# and touches no other: a dockerd with its own data root, exec root and
# socket, without iptables rules or a default bridge (builds use the host's
# network; the sidecar needs loopback only), and podman with its own
# storage, run and volume folders and its own containers.conf. Their state
# lives in ATRIUM_CT_STATE (default /var/tmp/atrium-containers) and is kept
# between runs, so a second run reuses the base image and the build
# cache. When it ends, even on a failure or a signal, it removes every
# container, pod and volume it made and stops its dockerd by its pid.
#
# Env: BUILD (where make built the C programs, build/tests/containers/adder
# and locker),
# IMAGE_BUDGET_MB (the image's size budget, from the Makefile). Each check
# prints one line; the last line is "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
BUILD=${BUILD:-build}
budget=${IMAGE_BUDGET_MB:-90}
state=${ATRIUM_CT_STATE:-/var/tmp/atrium-containers}
adder=$top/$BUILD/tests/containers/adder
locker=$top/$BUILD/tests/containers/locker
http=$top/tests/containers/http.sh
image=atrium:latest
project=atriumct
base=$(sed -n 's/^ARG BASE=//p' Dockerfile)
started=$(date +%s)

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# check WHAT COMMAND...: one line for whether COMMAND succeeds.
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds; 1 if it
# never did within SECONDS (a bound on a hang, not a measure of speed).
wait_for() {
  local end=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}
# stop_pid PID: SIGTERM, then SIGKILL if it is still there after 30 s.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  wait_for 30 sh -c "! kill -0 $1" || kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
# give_up WHAT: a failure after which nothing further can be checked; it
# counts as one, prints the closing line and ends (the cleanup runs).
give_up() {
  bad "$1"
  echo "$pass passed, $fail failed"
  exit 1
}

[ "$(id -u)" -eq 0 ] || give_up "make check-containers needs root (an engine of its own)"
[ -n "$base" ] || give_up "no ARG BASE= in the Dockerfile"
for prog in "$adder" "$locker"; do
  [ -x "$prog" ] || give_up "$prog is missing: run make check-containers"
done
for tool in dockerd docker docker-compose podman runc catatonit mmdebstrap; do
  command -v $tool >/dev/null || give_up "$tool is missing: sh deploy/install-deps.sh --containers"
done
mkdir -p "$state" || exit 2
log=$state/log
mkdir -p "$log"

# ------------------------------------------------------------ cleanup
dockerd_pid=
podman_up=
# The group-shared store's check: its application, its atriumd, its volume.
gvol=${project}_group
group_down() {
  docker rm --force ${project}-gapp ${project}-gatriumd >/dev/null 2>&1
  docker volume rm --force $gvol >/dev/null 2>&1
}
# The lock's check: its holder's and its waiter's containers.
locks_down() {
  docker rm --force ${project}-locka ${project}-lockb >/dev/null 2>&1
}
compose() { docker-compose --project-name $project --file deploy/compose.yaml "$@"; }
podman_own() {
  podman --root "$state/podman/root" --runroot "$state/podman/run" \
    --tmpdir "$state/podman/tmp" --volumepath "$state/podman/volumes" "$@"
}
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$podman_up" ]; then
    podman_own pod rm --force --all >/dev/null 2>&1
    podman_own volume prune --force >/dev/null 2>&1
    umount "$state/podman/volumes" 2>/dev/null
  fi
  if [ -n "$dockerd_pid" ]; then
    locks_down
    compose down --volumes --timeout 5 >/dev/null 2>&1
    docker rm --force ${project}-other >/dev/null 2>&1
    group_down
    stop_pid "$dockerd_pid"
    # What dockerd leaves mounted (its default network namespace).
    awk -v root="$state/exec/" 'index($2, root) == 1 {print $2}' /proc/mounts |
      while read -r m; do umount "$m"; done
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ------------------------------------------------------------ dockerd
export DOCKER_HOST=unix://$state/docker.sock
# A dockerd of ours that a killed run left behind: its pid file names a
# dockerd started on our socket.
if [ -f "$state/dockerd.pid" ]; then
  old=$(cat "$state/dockerd.pid")
  [ "$(cat /proc/"$old"/comm 2>/dev/null)" = dockerd ] &&
    tr '\0' ' ' <"/proc/$old/cmdline" | grep -qF "$state/docker.sock" &&
    stop_pid "$old"
fi
dockerd --data-root "$state/docker" --exec-root "$state/exec" \
  --pidfile "$state/dockerd.pid" --host "$DOCKER_HOST" \
  --bridge none --iptables=false --ip-masq=false >"$log/dockerd.log" 2>&1 &
dockerd_pid=$!
wait_for 60 docker version || {
  tail -5 "$log/dockerd.log"
  give_up "dockerd (its log: $log/dockerd.log)"
}
# Containers and the store's volume of a run that was killed: its
# restart policy would even have started atriumd again.
locks_down
compose down --volumes --timeout 5 >/dev/null 2>&1
group_down

# ------------------------------------------------------------ image
if ! docker image inspect "$base" >/dev/null 2>&1; then
  if sh deploy/base-image.sh docker >"$log/base.log" 2>&1; then
    ok "$(grep '^base-image: made' "$log/base.log" | sed 's/^base-image: //') from Debian's archive"
    grep 'note:' "$log/base.log"
  else
    tail -5 "$log/base.log"
    give_up "base image $base (log: $log/base.log)"
  fi
fi

version=$(git describe --always --dirty 2>/dev/null || echo unknown)
source=$(git config --get remote.origin.url 2>/dev/null || echo atrium)
t0=$(date +%s)
if docker build --network host --build-arg VERSION="$version" \
  --build-arg SOURCE="$source" --tag "$image" . >"$log/build.log" 2>&1; then
  secs=$(($(date +%s) - t0))
  bytes=$(docker image inspect --format '{{.Size}}' "$image")
  mb=$(((bytes + 999999) / 1000000))
  check "image $image: $mb MB (budget $budget MB), built in $secs s" [ "$mb" -le "$budget" ]
else
  tail -20 "$log/build.log"
  give_up "docker build (log: $log/build.log)"
fi

label() { docker image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$1\"}}" "$image"; }
check "labels: source $(label source), version $(label version), base $(label base.name)" \
  [ "$(label version)" = "$version" -a -n "$(label source)" -a "$(label base.name)" = "$base" ]
check "the image runs as $(docker image inspect --format '{{.Config.User}}' "$image"), not root" \
  [ "$(docker run --rm --network none --entrypoint id "$image" -u)" = 10001 ]
# Runtime libraries only: no compiler, no headers; the atrium tool is in.
check "no compiler or headers in the image; the atrium tool is" \
  docker run --rm --network none --entrypoint sh "$image" -c \
  '! command -v cc >/dev/null && ! ls /usr/include/*.h >/dev/null && atrium --help >/dev/null' 2>/dev/null
for f in deploy/compose.yaml deploy/kubernetes.yaml; do
  check "$f's application runs the pinned base $base" \
    grep -q "image: $base\$" $f
done

# ------------------------------------------------------------ compose
# The compose file as it is, with the image just built.
if ! compose up --detach --no-build >"$log/compose.log" 2>&1; then
  cat "$log/compose.log"
  give_up "docker-compose up"
fi
app=$(compose ps -q app)
gw=$(compose ps -q atriumd)
# gw_is TEMPLATE WANT: the atriumd container's inspect TEMPLATE gives WANT.
gw_is() { [ "$(docker inspect --format "$1" "$gw")" = "$2" ]; }
check "HEALTHCHECK passes (atrium-healthz)" wait_for 90 gw_is '{{.State.Health.Status}}' healthy
gw_pid=$(docker inspect --format '{{.State.Pid}}' "$gw")
confined() {
  grep -q '^Uid:[[:space:]]*10001[[:space:]]' "/proc/$gw_pid/status" &&
    gw_is '{{.HostConfig.ReadonlyRootfs}}' true &&
    ! docker exec "$gw" touch /probe 2>/dev/null
}
check "atriumd runs as uid 10001 on a read-only root filesystem" confined

docker cp "$adder" "$app:/tmp/adder" && docker cp "$http" "$app:/tmp/http" ||
  give_up "copying the C program and the HTTP client into the application container"
# in_app COMMAND...: runs it in the application container.
in_app() { docker exec "$app" "$@"; }
# value NAME: the value's number, read over HTTP from the application.
value() {
  in_app /tmp/http GET "/v1/values/$1" | sed -n 's/.*"value":\([-0-9]*\).*/\1/p'
}
# add NAME DELTA: adds over HTTP from the application; 0 when acknowledged.
add() {
  in_app /tmp/http POST "/v1/values/$1/add" "{\"delta\":$2}" | head -1 | grep -q '^200$'
}
acked=0 # the sum of every acknowledged add to "hits", HTTP and C

http_create_add_get() {
  in_app /tmp/http PUT /v1/values/hits '{"type":"q"}' | head -1 | grep -q '^201$' &&
    in_app /tmp/http POST /v1/values/hits/add '{"delta":5}' | grep -q '"value":5' &&
    [ "$(value hits)" = 5 ]
}
check "from the application: HTTP create, add and get" http_create_add_get
acked=5
out=$(in_app /tmp/adder /run/atrium/store hits 1 2>&1)
check "a C program in the application adds through the shared volume ($out); HTTP sees it" \
  [ "$out" = "hits = 6 after 1 adds" -a "$(value hits)" = 6 ]
acked=6
dashboard() {
  in_app /tmp/http GET / | grep -q '<title>atrium</title>' &&
    in_app /tmp/http GET /web/app.js | head -1 | grep -q '^200$'
}
check "the dashboard page and its script load from the application" dashboard

# A stream from the application; then a change by the C program.
in_app timeout 60 /tmp/http GET '/v1/events?topics=value/hits' >"$log/sse.out" 2>&1 &
sse=$!
wait_for 30 grep -q '"op":"snapshot"' "$log/sse.out"
out=$(in_app /tmp/adder /run/atrium/store hits 1 2>&1)
acked=7
check "an SSE stream in the application sees the C program's add" \
  wait_for 30 grep -q '"name":"hits",.*"op":"add".*"value":7' "$log/sse.out"
kill "$sse" 2>/dev/null
wait "$sse" 2>/dev/null

# ------------------------------------------------------------ kill -9
# Before the crash: a queue with three items, all acknowledged.
in_app /tmp/http PUT /v1/queues/jobs '{"maxsize":100}' >/dev/null
queued=0
for item in 1 2 3; do
  in_app /tmp/http POST /v1/queues/jobs/items "\"job$item\"" | head -1 | grep -q '^201$' &&
    queued=$((queued + 1))
done
add hits 10 && acked=$((acked + 10))
# The C program adds, 5 ms apart, until told to stop, across the crash.
in_app rm -f /run/atrium/adder.stop
in_app /tmp/adder /run/atrium/store hits 1 5 /run/atrium/adder.stop >"$log/adder.out" 2>&1 &
adder_job=$!
above() { [ "$(value hits)" -gt "$acked" ]; }
wait_for 30 above
restarts=$(docker inspect --format '{{.RestartCount}}' "$gw")
kill -KILL "$(docker inspect --format '{{.State.Pid}}' "$gw")"
back() {
  gw_is '{{.RestartCount}} {{.State.Health.Status}}' "$((restarts + 1)) healthy" &&
    in_app /tmp/http GET /healthz | head -1 | grep -q '^200$'
}
check "kill -9 of atriumd: its restart policy brings it back, healthy, on the application's loopback" \
  wait_for 90 back
add hits 100 && acked=$((acked + 100))
running=no
kill -0 "$adder_job" 2>/dev/null && running=yes
in_app touch /run/atrium/adder.stop
wait "$adder_job"
adder_rc=$?
out=$(cat "$log/adder.out")
c_adds=$(echo "$out" | sed -n 's/.* after \([0-9]*\) adds$/\1/p')
check "the C program never noticed: still adding after the restart, no add failed ($out)" \
  [ "$running" = yes -a "$adder_rc" -eq 0 -a -n "$c_adds" ]
acked=$((acked + ${c_adds:-0}))
now=$(value hits)
items=$(in_app /tmp/http POST '/v1/queues/jobs/pop?max=10' | tail -n +2)
check "every acknowledged change survived: hits = $now (acknowledged $acked), queue $items" \
  [ "$now" = "$acked" -a "$queued" = 3 -a "$items" = '{"items":["job1","job2","job3"]}' ]

# ------------------------------------------------------------ users
# The compose file runs the application as atriumd's uid: it opened the
# store above. Another uid cannot, and is told why: the C program, and the
# atrium tool as the README shows it.
other() {
  docker run --rm --name ${project}-other --network none --user 10002:10002 \
    --volume ${project}_store:/run/atrium "$@" 2>&1
}
out=$(other --volume "$adder:/adder:ro" "$base" /adder /run/atrium/store hits 1)
rc=$?
tool=$(other --entrypoint atrium "$image" info)
tool_rc=$?
refused() {
  [ "$rc" -eq 1 ] && [[ $out == *"Permission denied"* ]] && [ "$tool_rc" -eq 1 ] &&
    [ "$tool" = "atrium: /run/atrium/store: system call failed (see errno) (Permission denied)" ] &&
    grep -qxF "$tool" README.md
}
check "another uid (10002) is refused the store with a clear error: $out; $tool" refused

# ------------------------------------------------------------ locks
# A lock held in one container and awaited in another: each its own PID
# namespace, where the locker is the first process (pid 1 in both), so
# the pid in the lock's word names no process the other side can see.
# What tells B that A died is the kernel's robust list, walked when A's
# thread exits, whatever its namespace. Both run as atriumd's uid on the
# compose volume, as the application does.
lock=crosslock
# locker_run NAME DOCKER_OPTION MODE...: the locker in a container.
locker_run() {
  docker run --name "${project}-$1" "$2" --network none --user 10001:10001 \
    --volume ${project}_store:/run/atrium --volume "$locker:/locker:ro" \
    "$base" /locker /run/atrium/store $lock "${@:3}"
}
# field KEY LINE: KEY's value in a line the locker printed.
field() { echo "$2" | sed -n "s/.*\<$1=\([^ ]*\).*/\1/p"; }
lock_json() { in_app /tmp/http GET /v1/locks/$lock | tail -n +2; }
# lock_is JSON_FRAGMENT...: the lock's state over HTTP has every fragment.
lock_is() {
  local json f
  json=$(lock_json)
  for f in "$@"; do [[ $json == *"$f"* ]] || return 1; done
}
holder_says() { docker logs ${project}-locka 2>/dev/null | grep -q 'result='; }
locker_run locka --detach hold >/dev/null &&
  wait_for 30 holder_says || give_up "container A taking the lock $lock"
a_line=$(docker logs ${project}-locka 2>&1 | grep 'result=')
a_pid=$(field pid "$a_line")
a_fence=$(field fence "$a_line")
a_host=$(docker inspect --format '{{.State.Pid}}' ${project}-locka)
json=$(lock_json)
check "container A (pid $a_pid in its namespace, $a_host on the host) holds $lock, fence $a_fence; HTTP: $json" \
  lock_is '"held":true' "\"fence\":$a_fence," '"holder":{"type":"process"}'
# B waits up to 20 s. A's pid is B's own: were the pid what named the
# holder, B would take the lock as its own or at once.
locker_run lockb --rm wait 20 >"$log/lockb.out" 2>&1 &
lockb_job=$!
wait_for 30 lock_is '"waiters":1'
b_host=$(docker inspect --format '{{.State.Pid}}' ${project}-lockb 2>/dev/null)
# Not at once: B is seen waiting, and still is 2 s later.
b_waits() {
  lock_is '"waiters":1' && ! wait_for 2 grep -q result= "$log/lockb.out" &&
    lock_is '"held":true' '"waiters":1'
}
check "container B (pid $b_host on the host) waits in atr_lock_acquire while A holds $lock, not returned 2 s later" \
  b_waits
killed_at=$(date +%s.%N)
docker kill ${project}-locka >/dev/null
wait_for 20 grep -q result= "$log/lockb.out"
b_line=$(grep 'result=' "$log/lockb.out")
b_pid=$(field pid "$b_line")
b_fence=$(field fence "$b_line")
b_after=$(awk -v end="$(field end "$b_line")" -v kill="$killed_at" \
  'BEGIN { if (end == "") print "never"; else printf "%.3f", end - kill }')
abandoned() {
  [ "$(field result "$b_line")" = ABANDONED ] && [ "$b_after" != never ] &&
    awk -v t="$b_after" 'BEGIN { exit !(t <= 5) }' &&
    [ -n "$a_fence" ] && [ -n "$b_fence" ] && [ "$b_fence" -gt "$a_fence" ]
}
check "docker kill of A: B's acquire returns $(field result "$b_line") $b_after s later (bound 5 s; it waited $(field waited "$b_line") s), fence $a_fence -> $b_fence" \
  abandoned
wait "$lockb_job" # B's timeout bounds it
lockb_rc=$?
check "the same pid in both namespaces (A $a_pid, B $b_pid; on the host $a_host and $b_host) confused no one: B released the lock (exit $lockb_rc)" \
  [ -n "$a_pid" -a "$a_pid" = "$b_pid" -a "$a_host" != "$b_host" -a "$lockb_rc" -eq 0 ]
json=$(lock_json)
check "after A's death and B's release, HTTP: $json" \
  lock_is '"held":false' "\"fence\":$b_fence," '"waiters":0'
locks_down
compose down --volumes --timeout 5 >/dev/null 2>&1

# ------------------------------------------------------------ group
# The other way the README shows: atriumd creates the store with
# ATRIUM_STORE_MODE=0660, and the application keeps a uid of its own in
# atriumd's group. A fresh tmpfs volume, its folder mode 0751: the group
# lists it, anyone else may only pass through, so what refuses another
# group below is the store file's own mode. atriumd mounts it with
# nocopy: else Docker gives an empty volume the image's /run/atrium
# (0700) on the first mount, and the group could not get in.
docker volume create --opt type=tmpfs --opt device=tmpfs \
  --opt o=size=64m,uid=10001,gid=10001,mode=0751 $gvol >/dev/null &&
  docker run --detach --name ${project}-gapp --network none --init \
    --user 10002:10001 --volume $gvol:/run/atrium "$base" sleep infinity >/dev/null &&
  docker run --detach --name ${project}-gatriumd --read-only \
    --network container:${project}-gapp --env ATRIUM_STORE_SIZE=32M \
    --env ATRIUM_STORE_MODE=0660 --volume $gvol:/run/atrium:nocopy "$image" >/dev/null &&
  docker cp "$adder" ${project}-gapp:/tmp/adder >/dev/null &&
  docker cp "$http" ${project}-gapp:/tmp/http >/dev/null ||
  give_up "atriumd with ATRIUM_STORE_MODE=0660 and an application in its group"
in_gapp() { docker exec ${project}-gapp "$@"; }
gvalue() {
  in_gapp /tmp/http GET "/v1/values/$1" | sed -n 's/.*"value":\([-0-9]*\).*/\1/p'
}
gready() { in_gapp /tmp/http GET /healthz | head -1 | grep -q '^200$'; }
wait_for 60 gready
mode=$(in_gapp stat -c '%a %u:%g' /run/atrium/store 2>&1)
check "ATRIUM_STORE_MODE=0660: atriumd creates the store mode $mode" \
  [ "$mode" = "660 10001:10001" ]
# A store of another user opens only when the program opts in
# (atr_store_opts.shared; the atrium tool's --shared).
out=$(docker exec -e ADDER_SHARED=1 ${project}-gapp /tmp/adder /run/atrium/store shared 3 2>&1)
check "uid 10002, group 10001 (user: 10002:10001): the C program adds through the store ($out); HTTP sees it" \
  [ "$out" = "shared = 3 after 3 adds" -a "$(gvalue shared)" = 3 ]
# group_add's way: a group of its own, atriumd's as a supplementary one.
gother() {
  docker run --rm --name ${project}-other --network none \
    --volume $gvol:/run/atrium "$@" 2>&1
}
tool=$(gother --user 10002:10002 --group-add 10001 --entrypoint atrium "$image" --shared add shared 2)
tool_rc=$?
check "uid 10002, group 10002 plus 10001 (group_add): the atrium tool adds ($tool); HTTP sees it" \
  [ "$tool_rc" -eq 0 -a "$tool" = 5 -a "$(gvalue shared)" = 5 ]
out=$(gother --user 10002:10002 --env ADDER_SHARED=1 --volume "$adder:/adder:ro" "$base" /adder /run/atrium/store shared 1)
rc=$?
tool=$(gother --user 10002:10002 --entrypoint atrium "$image" --shared info)
tool_rc=$?
grefused() {
  [ "$rc" -eq 1 ] && [[ $out == *"Permission denied"* ]] && [ "$tool_rc" -eq 1 ] &&
    [ "$tool" = "atrium: /run/atrium/store: system call failed (see errno) (Permission denied)" ] &&
    [ "$(gvalue shared)" = 5 ]
}
check "another uid in another group (10002:10002) is still refused the 0660 store: $out; $tool" grefused
group_down

# ------------------------------------------------------------ kubernetes
# podman: runc (crun refuses this kind of hybrid cgroup setup), cgroupfs
# and file events (no systemd), and limits no higher than ours, which
# root cannot raise here. podman 4.3 puts an emptyDir on disk whatever its
# medium: its volume folder is a tmpfs, so the store is in memory as a
# kubelet's medium: Memory makes it.
# (runc was refused an nproc limit above 32768 here, below our own.)
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
mkdir -p "$state/podman/volumes" "$state/podman/tmp"
cat >"$state/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$state/containers.conf
podman_up=yes
mountpoint -q "$state/podman/volumes" ||
  mount -t tmpfs -o size=128m,mode=0700 atrium-ct "$state/podman/volumes"
if ! docker save "$image" "$base" | podman_own load >"$log/podman-load.log" 2>&1; then
  cat "$log/podman-load.log"
  give_up "podman load of the image built above"
fi
pod=app-with-atrium
podman_own pod rm --force --all >/dev/null 2>&1 # a killed run's pod
if podman_own kube play --network none deploy/kubernetes.yaml >"$log/kube.log" 2>&1; then
  ok "podman kube play deploy/kubernetes.yaml"
else
  tail -5 "$log/kube.log"
  bad "podman kube play deploy/kubernetes.yaml (log: $log/kube.log)"
fi
# The probes as the manifest writes them: run in the container.
probe() {
  sed -n "/$1:/,/command:/s/.*command: *\[\(.*\)\]/\1/p" deploy/kubernetes.yaml |
    tr -d '",' | head -1
}
for p in readinessProbe livenessProbe; do
  cmd=$(probe $p)
  check "$p ($cmd) passes in the pod" \
    wait_for 60 podman_own exec $pod-atriumd $cmd
done
check "podman's healthcheck made of the liveness probe passes" \
  podman_own healthcheck run $pod-atriumd
check "the emptyDir is a tmpfs" \
  [ "$(podman_own exec $pod-atriumd stat -f -c %T /run/atrium)" = tmpfs ]
podman_own cp "$adder" $pod-app:/tmp/adder &&
  podman_own cp "$http" $pod-app:/tmp/http
out=$(podman_own exec $pod-app /tmp/adder /run/atrium/store k8s 2 2>&1)
pod_read() { podman_own exec $pod-app /tmp/http GET /v1/values/k8s | grep -q '"value":2'; }
check "in the pod, the application adds through the emptyDir ($out) and reads it over the pod's loopback" \
  pod_read

echo "containers: $(($(date +%s) - started)) s in all; logs in $log"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
