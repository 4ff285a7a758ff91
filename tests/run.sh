#!/bin/sh
# Runs every test: the cmocka binaries given as arguments, then every
# tests/*/test_*.py (python3) and tests/*/test_*.sh (sh), with BUILD passed
# on. Sums their counts, prints every test's time (the slowest first), and
# ends with one line "N passed, N failed"; exits non-zero if anything
# failed, crashed or timed out.
#   BUILD=build sh tests/run.sh build/tests/test_*
#   ATRIUM_TESTS="test_lock test_api.py" BUILD=build sh tests/run.sh build/tests/test_*
#
# Tests run in ATRIUM_TEST_JOBS lanes at once (default: the CPUs, nproc;
# 1: one at a time, in the order above). Every test has its own store
# paths and free ports, so they are independent; a test's output is kept
# and printed whole when it ends. Lanes take the slowest tests first, by
# the times of the last run ($BUILD/test-times). A test whose file says
# "tests/run.sh: alone" (a C test: its source tests/core/NAME.c) measures
# how soon something happens, which another test's CPU load would change:
# it runs after the others, with nothing beside it.
tests_dir=$(dirname "$0")
start=$(date +%s%N)
work=$(mktemp -d "${TMPDIR:-/tmp}/atrium-run.XXXXXX") || exit 2
lanes=
# A test still running when we are stopped is stopped too: timeout (its
# own process group) passes the TERM on to it.
stop() {
	for f in "$work"/pid.*; do
		[ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	done
	[ -z "$lanes" ] || kill -TERM $lanes 2>/dev/null
	wait
}
trap 'rm -rf "$work"' EXIT
trap 'stop; exit 130' INT TERM

# Seconds since $1 (date +%s%N), with tenths.
since() {
	awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

# count PATTERN FILE: the last number matching the sed pattern, or 0.
count() {
	n=$(sed -n "s/$1/\\1/p" "$2" | tail -n 1)
	echo "${n:-0}"
}

# Prints the file $1 whole, never in between another lane's lines.
show() {
	until mkdir "$work/print.lock" 2>/dev/null; do sleep 0.05; done
	cat "$1"
	rmdir "$work/print.lock"
}

# run N KIND COMMAND...: runs test N under a timeout with its output kept
# aside, then prints that output with its counts and time, and appends
# "passed failed seconds name" to $work/results.
run() {
	n=$1
	kind=$2
	shift 2
	out=$work/out.$n
	name=${*##*/}
	echo "== $* (started)" >"$out.start"
	show "$out.start"
	t0=$(date +%s%N)
	# A shell of its own waits for the test, so that what it says of a
	# test a signal ended ("Segmentation fault") is in the test's output.
	# (timeout gives the test the default SIGINT, which a background job
	# of sh would otherwise have ignored, and Python with it.)
	(
		timeout 600 "$@" >"$out" 2>&1 </dev/null &
		echo $! >"$work/pid.$n"
		wait $!
		echo $? >"$out.rc"
	) 2>>"$out"
	rc=$(cat "$out.rc")
	rm -f "$work/pid.$n"
	if [ "$kind" = cmocka ]; then
		p=$(count '^\[  PASSED  \] \([0-9]*\) test(s)\..*' "$out")
		f=$(count '^\[  FAILED  \] \([0-9]*\) test(s).*' "$out")
	else
		p=$(count '^\([0-9]*\) passed, [0-9]* failed$' "$out")
		f=$(count '^[0-9]* passed, \([0-9]*\) failed$' "$out")
	fi
	{
		echo "== $*"
		cat "$out"
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			# Crashed, timed out (124) or failed without saying how much.
			echo "== $name: exit status $rc, counted as one failure"
			f=1
		fi
		secs=$(since "$t0")
		echo "== $name: ${secs} s"
		echo "$p $f $secs $name" >>"$work/results"
	} >"$out.all"
	show "$out.all"
}

# The tests, one a line: "KIND ALONE COMMAND" (ALONE is 1 or 0); with
# ATRIUM_TESTS (file names: "test_lock test_api.py"), those only.
alone() {
	grep -qs 'tests/run\.sh: alone' "$1" && echo 1 || echo 0
}
picked() {
	[ -z "${ATRIUM_TESTS:-}" ] && return 0
	case " $ATRIUM_TESTS " in *" ${1##*/} "*) return 0 ;; esac
	return 1
}
for bin in "$@"; do
	picked "$bin" && echo "cmocka $(alone "$tests_dir/core/${bin##*/}.c") $bin"
done >"$work/all"
for script in "$tests_dir"/*/test_*.py; do
	[ -e "$script" ] && picked "$script" &&
		echo "script $(alone "$script") python3 $script"
done >>"$work/all"
for script in "$tests_dir"/*/test_*.sh; do
	[ -e "$script" ] && picked "$script" &&
		echo "script $(alone "$script") sh $script"
done >>"$work/all"

# The order: the slowest of the last run first (a test it did not have,
# first of all: it may be slow; with no last run, the shell tests, then
# Python's, then the C ones); the ones alone at the end.
jobs=${ATRIUM_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
last=${BUILD:-build}/test-times
i=0
while read -r kind solo cmd; do
	i=$((i + 1))
	if [ "$jobs" -le 1 ]; then
		key=$i # one lane: the order above
	else
		# 0 for a test the last run did not have, else 10^6 less its tenths.
		key=$(awk -v t="${cmd##*/}" '$2 == t { k = 1e6 - $1 * 10 }
			END { printf "%d", k }' "$last" 2>/dev/null)
		case ${key:-0}.$cmd in
		0.sh\ *) key=0 ;;
		0.python3\ *) key=1 ;;
		0.*) key=2 ;;
		esac
	fi
	echo "$solo $key $kind $cmd"
done <"$work/all" | sort -k1,1n -k2,2n | awk '{ $2 = ""; print }' >"$work/order"
ntests=$(wc -l <"$work/order")

# A lane takes the next test no lane has taken (mkdir is atomic) until
# none is left; a lane alone takes the tests to run alone too.
lane() {
	k=0
	while read -r solo kind cmd; do
		k=$((k + 1))
		[ "$solo" = 0 ] || [ "$1" = alone ] || continue
		mkdir "$work/claim.$k" 2>/dev/null || continue
		# shellcheck disable=SC2086 # the command's words
		run "$k" "$kind" $cmd
	done <"$work/order"
}

export BUILD
case ${ATRIUM_CHECK_LONG:-0} in
0 | '') echo "== short loops (ATRIUM_CHECK_LONG=1, make check-long: full length)" ;;
*) echo "== ATRIUM_CHECK_LONG=$ATRIUM_CHECK_LONG: every loop at full length" ;;
esac
echo "== $ntests tests in $jobs lanes (ATRIUM_TEST_JOBS); $(grep -c '^1 ' "$work/order") of them alone at the end"
: >"$work/results"
if [ "$jobs" -gt 1 ]; then
	j=0
	while [ "$j" -lt "$jobs" ]; do
		lane shared &
		lanes="$lanes $!"
		j=$((j + 1))
	done
	wait
	lanes=
fi
lane alone

echo "== time per test (s), slowest first; $(since "$start") s in all"
awk '{ print $3, $4 }' "$work/results" | sort -rn >"$work/times"
awk '{ printf "%7.1f  %s\n", $1, $2 }' "$work/times"
# For the next run's order (a test failed or not, its time counts; the
# last run's times of tests this one left out are kept).
if [ -d "${BUILD:-build}" ]; then
	{
		cat "$work/times"
		[ ! -f "$last" ] ||
			awk 'NR == FNR { ran[$2] = 1; next } !($2 in ran)' "$work/times" "$last"
	} >"$work/times.new" && cp "$work/times.new" "$last"
fi
passed=$(awk '{ s += $1 } END { print s + 0 }' "$work/results")
failed=$(awk '{ s += $2 } END { print s + 0 }' "$work/results")
ran=$(wc -l <"$work/results")
if [ "$ran" -ne "$ntests" ]; then
	echo "== only $ran of $ntests tests ran"
	failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
