#!/bin/sh
# tests/fuzz/test_fuzz.sh - a short run of both fuzz targets in make check:
# the request target (tests/fuzz/fuzz_request.c, seeds in
# tests/fuzz/corpus) and the store-image target (tests/fuzz/fuzz_store.c,
# whose seeds are real stores it writes itself with FUZZ_STORE_SEEDS, and
# the stores it once crashed on, in tests/fuzz/store_corpus).
# Builds them if needed (make fuzz-build, clang with libFuzzer, ASan and
# UBSan; make check has built them already, beside its other builds),
# then runs each FUZZ_SECONDS (default 5; 20 in make check-long,
# ATRIUM_CHECK_LONG=1) on a scratch copy of its seeds: every seed runs
# (a run that did not get through them fails), then mutations of them. A run fails on any crash, sanitizer report, timeout or failed
# check; the input that did it is kept in the fuzz build folder (crash-*,
# timeout-*) and shown. make fuzz runs the same targets for five minutes.
# Prints one closing line: "N passed, M failed"; exits 1 if one failed.
set -u

here=$(dirname "$0")
root=$(cd "$here/../.." && pwd)
case ${ATRIUM_CHECK_LONG:-0} in 0 | '') full=5 ;; *) full=20 ;; esac
seconds=${FUZZ_SECONDS:-$full}
fuzz_build=${FUZZ_BUILD:-build/fuzz} # as the Makefile's FUZZ_BUILD
case $fuzz_build in /*) dir=$fuzz_build ;; *) dir=$root/$fuzz_build ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/atrium-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# A fresh make: not the jobserver or the variables of a make check around
# us (SANITIZER would change what the fuzz build means). -Werror as in
# make check.
if ! (unset MAKEFLAGS MFLAGS MAKELEVEL BUILD SANITIZER &&
	make -C "$root" --no-print-directory WERROR=-Werror \
		FUZZ_BUILD="$fuzz_build" fuzz-build) >"$work/build.log" 2>&1; then
	echo "FAILED: building the fuzz targets:" >&2
	tail -n 30 "$work/build.log" >&2
	failed=2
	finish
fi

# run NAME MIN_SEEDS: runs $dir/fuzz_NAME on $work/NAME (its seeds).
run() {
	name=$1
	bin=$dir/fuzz_$name
	nseeds=$(ls "$work/$name" | wc -l)
	if [ "$nseeds" -lt "$2" ]; then
		echo "FAILED: only $nseeds seeds for fuzz_$name" >&2
		failed=$((failed + 1))
		return
	fi
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$dir/" \
		"$work/$name" >"$work/$name.log" 2>&1
	rc=$?
	grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units)' \
		"$work/$name.log"
	if [ "$rc" -ne 0 ]; then
		echo "FAILED: fuzz_$name exited $rc:" >&2
		grep -vE '^(#[0-9]+|INFO:|MS:|	NEW_FUNC)' "$work/$name.log" | tail -n 40 >&2
		failed=$((failed + 1))
		return
	fi
	# A run that did not even get through its seeds proves nothing.
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
	if [ "${runs:-0}" -lt "$nseeds" ]; then
		echo "FAILED: fuzz_$name: only ${runs:-0} inputs ran" >&2
		failed=$((failed + 1))
		return
	fi
	echo "ok: fuzz_$name, $runs inputs in ${seconds}s, no failure"
	passed=$((passed + 1))
}

# What a run learns goes to a scratch copy: the seeds stay as they are.
mkdir "$work/request" "$work/store"
cp "$root"/tests/fuzz/corpus/* "$work/request/"
run request 20
if ! FUZZ_STORE_SEEDS="$work/store" "$dir/fuzz_store" >"$work/seeds.log" 2>&1; then
	echo "FAILED: writing the store seeds:" >&2
	tail -n 30 "$work/seeds.log" >&2
	failed=$((failed + 1))
else
	# Stores the fuzzer once crashed on, kept beside the written seeds.
	cp "$root"/tests/fuzz/store_corpus/* "$work/store/"
	run store 6
fi
finish
