#!/bin/sh
# tests/fuzz/test_fuzz.sh - a short run of the request fuzz target
# (tests/fuzz/fuzz_request.c) in make check: builds it if needed (make
# fuzz-build, clang with libFuzzer, ASan and UBSan), then runs it
# FUZZ_SECONDS (default 20) on a copy of the seeds in tests/fuzz/corpus.
# The run fails on any crash, sanitizer report or failed check; the input
# that did it is kept in the fuzz build folder (crash-*) and shown.
# make fuzz runs the same target for five minutes.
# Prints one closing line: "N passed, M failed"; exits 1 if it failed.
set -u

here=$(dirname "$0")
root=$(cd "$here/../.." && pwd)
seconds=${FUZZ_SECONDS:-20}
fuzz_build=${FUZZ_BUILD:-build/fuzz} # as the Makefile's FUZZ_BUILD
case $fuzz_build in /*) dir=$fuzz_build ;; *) dir=$root/$fuzz_build ;; esac
bin=$dir/fuzz_request

work=$(mktemp -d "${TMPDIR:-/tmp}/atrium-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

finish() {
	if [ "$1" -eq 0 ]; then
		echo "1 passed, 0 failed"
		exit 0
	fi
	echo "0 passed, 1 failed"
	exit 1
}

# A fresh make: not the jobserver or the variables of a make check around
# us (SANITIZER would change what the fuzz build means). -Werror as in
# make check.
if ! (unset MAKEFLAGS MFLAGS MAKELEVEL BUILD SANITIZER &&
	make -C "$root" --no-print-directory WERROR=-Werror \
		FUZZ_BUILD="$fuzz_build" fuzz-build) >"$work/build.log" 2>&1; then
	echo "FAILED: building the fuzz target:" >&2
	tail -n 30 "$work/build.log" >&2
	finish 1
fi

# What the run learns goes to a scratch copy: the seeds stay as they are.
mkdir "$work/corpus"
cp "$root"/tests/fuzz/corpus/* "$work/corpus/"
nseeds=$(ls "$work/corpus" | wc -l)
if [ "$nseeds" -lt 20 ]; then
	echo "FAILED: only $nseeds seeds in tests/fuzz/corpus" >&2
	finish 1
fi

"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$dir/" \
	"$work/corpus" >"$work/run.log" 2>&1
rc=$?
grep -E '^(INFO: seed corpus|#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units)' \
	"$work/run.log"
if [ "$rc" -ne 0 ]; then
	echo "FAILED: fuzz_request exited $rc:" >&2
	grep -vE '^(#[0-9]+|INFO:|MS:|	NEW_FUNC)' "$work/run.log" | tail -n 40 >&2
	finish 1
fi
# A run that did not even get through its seeds proves nothing.
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/run.log")
if [ "${runs:-0}" -lt "$nseeds" ]; then
	echo "FAILED: only ${runs:-0} inputs ran" >&2
	finish 1
fi
echo "ok: $runs inputs in ${seconds}s, no failure"
finish 0
