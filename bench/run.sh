#!/bin/sh
# bench/run.sh BUILD - runs the core benchmarks and their multiprocessing
# peers, and the Python client's (bench/py_bench.py) beside multiprocessing
# and Webdis, then prints how they compare with the targets; then the gateway's
# HTTP benchmarks (bench/http_bench.sh). Informational only: a number below
# its target is reported, never a failure.
#   ATRIUM_BENCH_TIME=SECONDS   time per repetition (default 1.2)
#   ATRIUM_BENCH_GROW=N         objects of the growth section (1000000)
set -eu

build=${1:-build}
bench=$build/bench/core_bench
here=$(dirname "$0")
[ -x "$bench" ] || {
  echo "bench: $bench not built (run make bench)" >&2
  exit 1
}

results=$(mktemp "${TMPDIR:-/tmp}/atrium-bench.XXXXXX")
trap 'rm -f "$results" "$results.failed"' EXIT
trap 'exit 130' INT TERM

# run TITLE CMD...: shows CMD's lines as they come and keeps them; a
# benchmark that fails (not one that is slow) fails the run.
run() {
  echo "# $1 (best of 3)"
  shift
  { "$@" || echo "$*" >"$results.failed"; } | tee -a "$results"
  if [ -e "$results.failed" ]; then
    echo "bench: failed: $(cat "$results.failed")" >&2
    exit 1
  fi
}
run "libatrium" "$bench" raw_atomic_add_1p core_value_add_1p \
  raw_atomic_add_2p core_value_add_2p core_queue_2p core_queue_batch_2p \
  core_lqueue_2p core_lock_1p posix_sem_1p core_lock_2p robust_mutex_2p \
  core_sem_1p core_barrier_4p core_dict_setget_1p
run "Python multiprocessing" python3 "$here/mp_bench.py"
run "Python client (clients/python)" python3 "$here/py_bench.py" "$build"

echo "# ratios (targets are goals, not tests)"
awk -f "$here/ratios.awk" "$results" - <<'EOF'
core_value_add_1p   mp_value_add_1p   >= 100 x
core_value_add_1p   raw_atomic_add_1p >= 0.4
core_value_add_2p   mp_value_add_2p   >= 100 x
core_value_add_2p   raw_atomic_add_2p >= 0.4
core_queue_2p       mp_queue_2p       >= 40 x
core_queue_batch_2p mp_queue_2p       >= 40 x
core_lqueue_2p      mp_joinable_2p    >= 20 x
py_value_add_2p      mp_value_add_2p   >= 5 x
py_queue_tuple_2p    mp_queue_tuple_2p >= 2 x
py_http_value_add_c1 webdis_incr_c1_py >= 1.2
core_lock_1p        mp_lock_1p        >= 3 x
core_lock_1p        posix_sem_1p      >= 0.5
core_lock_2p        mp_lock_2p        >= 2 x
core_lock_2p        robust_mutex_2p   >= 0.5
core_sem_1p         mp_sem_1p         >= 1 x
core_barrier_4p     mp_barrier_4p     >= 3 x
core_dict_setget_1p mp_dict_setget_1p >= 100 x
EOF

# Growth: the same work among 10 objects and among 1,000,000
# (ATRIUM_BENCH_GROW), and what a restart and a walk by pages cost there.
run "growth (core)" "$bench" core_add_at_few core_add_at_grown \
  core_create_delete_at_few core_create_delete_at_grown growth_times
echo "# growth ratios (targets are goals, not tests)"
awk -f "$here/ratios.awk" "$results" - <<'EOF'
core_add_at_grown           core_add_at_few           >= 0.9
core_create_delete_at_grown core_create_delete_at_few >= 0.8
limit core_open_at_grown <= 1000 1000 ms
EOF

# The gateway over HTTP, beside Webdis+Redis and nginx: its own servers,
# checks and ratios. A failed benchmark there (not a slow one) fails the run.
sh "$here/http_bench.sh" "$build" || {
  echo "bench: failed: $here/http_bench.sh" >&2
  exit 1
}
exit 0
