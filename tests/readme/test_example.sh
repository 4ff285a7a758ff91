#!/bin/sh
# tests/readme/test_example.sh - the README's promises, checked:
#   1. its one ```c block is a complete program: it compiles against the
#      library, runs twice on a fresh store and counts 1, then 2;
#   2. the atrium tool: set c q 5, add c 2, get c prints 7.
# BUILD names the build directory (default build); SANITIZER, when set as
# for make, is passed to the compiler (else it is read off the library).
# Prints one closing line: "N passed, M failed"; exits 1 if any failed.
set -u

BUILD=${BUILD:-build}
here=$(dirname "$0")
root=$(cd "$here/../.." && pwd)
readme=$root/README.md
lib=$BUILD/libatrium.a
cli=$BUILD/atrium
CC=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/atrium-readme.XXXXXX")
store=/dev/shm/atrium-readme-$$
trap 'rm -rf "$work"; rm -f "$store" "$store.cli"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok: $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAILED: $1" >&2
  [ ! -s "$work/log" ] || sed 's/^/  | /' "$work/log" >&2
}

# A sanitized library needs the same sanitizers at link time.
sanflags=
if [ -n "${SANITIZER:-}" ]; then
  sanflags="-fsanitize=$SANITIZER -fno-omit-frame-pointer"
elif [ -f "$lib" ] && command -v nm >/dev/null 2>&1; then
  syms=$(nm "$lib" 2>/dev/null | grep -oE '__(asan|ubsan)_' | sort -u)
  san=
  case $syms in *__asan_*) san=address ;; esac
  case $syms in *__ubsan_*) san=${san:+$san,}undefined ;; esac
  [ -z "$san" ] || sanflags="-fsanitize=$san -fno-omit-frame-pointer"
fi

# 1. The C example.
example() {
  blocks=$(grep -c '^```c$' "$readme")
  if [ "$blocks" -ne 1 ]; then
    echo "README.md has $blocks \`\`\`c blocks; it must have exactly one" >"$work/log"
    return 1
  fi
  awk '/^```c$/ { inside = 1; next } inside && /^```$/ { exit } inside' \
    "$readme" >"$work/example.c"
  # shellcheck disable=SC2086 # sanflags is a list of flags
  $CC -std=c11 -Wall -Wextra $sanflags -I"$root/include" -o "$work/example" \
    "$work/example.c" "$lib" -pthread >"$work/log" 2>&1 || return 1
  rm -f "$store"
  "$work/example" "$store" >"$work/out1" 2>"$work/log" || return 1
  "$work/example" "$store" >"$work/out2" 2>"$work/log" || return 1
  grep -q '^hits = 1 ' "$work/out1" && grep -q '^hits = 2 ' "$work/out2" &&
    grep -q 'hello' "$work/out1" || {
    { echo "unexpected output:"; cat "$work/out1" "$work/out2"; } >"$work/log"
    return 1
  }
  [ -e "$store" ] || {
    echo "the example did not use the store given as argv[1]" >"$work/log"
    return 1
  }
}
: >"$work/log"
if example; then pass "README C example"; else fail "README C example"; fi
rm -f "$store"

# 2. The CLI.
cli_test() {
  s=$store.cli
  rm -f "$s"
  # info on a store with no objects (under UBSan: no qsort of NULL)
  "$cli" --store "$s" info >"$work/out" 2>"$work/log" || return 1
  grep -q '(no objects)' "$work/out" || {
    echo "atrium info on an empty store did not say (no objects)" >"$work/log"
    return 1
  }
  "$cli" --store "$s" set c q 5 >"$work/log" 2>&1 || return 1
  "$cli" --store "$s" add c 2 >"$work/log" 2>&1 || return 1
  got=$("$cli" --store "$s" get c 2>"$work/log") || return 1
  [ "$got" = 7 ] || {
    echo "atrium get c printed '$got', not 7" >"$work/log"
    return 1
  }
}
: >"$work/log"
if cli_test; then pass "atrium info/set/add/get"; else fail "atrium info/set/add/get"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
