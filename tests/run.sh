#!/bin/sh
# Runs every test: the cmocka binaries given as arguments, then every
# tests/*/test_*.py (python3) and tests/*/test_*.sh (sh), with BUILD passed
# on. Sums their counts, prints every test's time (the slowest first), and
# ends with one line "N passed, N failed"; exits non-zero if anything
# failed, crashed or timed out.
#   BUILD=build sh tests/run.sh build/tests/test_*
tests_dir=$(dirname "$0")
passed=0
failed=0
start=$(date +%s%N)
log=$(mktemp) || exit 2
times=$(mktemp) || exit 2
trap 'rm -f "$log" "$log.rc" "$times"' EXIT INT TERM

# Seconds since $1 (date +%s%N), with tenths.
since() {
	awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

# The last number matching the sed pattern in the log, or 0.
count() {
	n=$(sed -n "s/$1/\\1/p" "$log" | tail -n 1)
	echo "${n:-0}"
}

# run KIND COMMAND...: runs it under a timeout, shows its output as it
# comes, and adds its counts.
run() {
	kind=$1
	shift
	echo "== $*"
	t0=$(date +%s%N)
	{ timeout 600 "$@" 2>&1; echo $? >"$log.rc"; } | tee "$log"
	rc=$(cat "$log.rc")
	if [ "$kind" = cmocka ]; then
		p=$(count '^\[  PASSED  \] \([0-9]*\) test(s)\..*')
		f=$(count '^\[  FAILED  \] \([0-9]*\) test(s).*')
	else
		p=$(count '^\([0-9]*\) passed, [0-9]* failed$')
		f=$(count '^[0-9]* passed, \([0-9]*\) failed$')
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# Crashed, timed out (124) or failed without saying how much.
		echo "== $1: exit status $rc, counted as one failure"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	secs=$(since "$t0")
	echo "== ${*##*/}: ${secs} s"
	echo "$secs ${*##*/}" >>"$times"
}

export BUILD
case ${ATRIUM_CHECK_LONG:-0} in
0 | '') echo "== short loops (ATRIUM_CHECK_LONG=1, make check-long: full length)" ;;
*) echo "== ATRIUM_CHECK_LONG=$ATRIUM_CHECK_LONG: every loop at full length" ;;
esac
for bin in "$@"; do
	run cmocka "$bin"
done
for script in "$tests_dir"/*/test_*.py; do
	[ -e "$script" ] && run script python3 "$script"
done
for script in "$tests_dir"/*/test_*.sh; do
	[ -e "$script" ] && run script sh "$script"
done

echo "== time per test (s), slowest first; $(since "$start") s in all"
sort -rn "$times" | awk '{ printf "%7.1f  %s\n", $1, $2 }'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
