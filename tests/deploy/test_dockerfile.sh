#!/bin/sh
# tests/deploy/test_dockerfile.sh - checks the Dockerfile without a Docker
# engine: (1) its build stage builds from exactly the files it copies,
# (2) its runtime stage installs a Debian package for every shared library
# atriumd links, (3) every package it names is a Debian package, (4) its
# entry point is a file the build stage makes.
# Env: BUILD (unused; the build runs in a scratch copy). Prints one final
# "N passed, N failed" line.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
df=$top/Dockerfile
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/atrium-docker.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Stage n's lines (0 = build, 1 = runtime).
stage() { awk -v n="$1" '/^FROM /{s++} s == n + 1' "$df"; }
# The packages an apt-get install in stage n names.
packages() {
  stage "$1" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' |
    grep 'apt-get install' | sed 's/.*apt-get install//; s/&&.*//' |
    tr ' ' '\n' | grep -v '^-' | grep -v '^$'
}

# (1) Copy what the build stage copies, run its make line there.
stage 0 | awk '$1 == "COPY" && $2 !~ /^--/ {print $2}' | while read -r src; do
  cp -r "$top/$src" "$scratch/" || exit 1
done
make_cmd=$(stage 0 | awk '$1 == "RUN" && $2 == "make" {sub(/^RUN /, ""); print}')
# A make of its own, as in the image: not the variables of a make check
# around us (BUILD=build/san or SANITIZER=... would build elsewhere).
# What is checked is that every file the build needs is copied, not the
# code: make check builds it without optimisation, in half the
# time; make check-long (ATRIUM_CHECK_LONG=1) with the image's flags.
case ${ATRIUM_CHECK_LONG:-0} in 0 | '') opt=-O0 ;; *) opt= ;; esac
if [ -n "$make_cmd" ] && (cd "$scratch" &&
  unset MAKEFLAGS MFLAGS MAKELEVEL BUILD SANITIZER OPT &&
  if [ -n "$opt" ]; then export OPT="$opt"; fi &&
  eval "$make_cmd") >"$scratch/build.log" 2>&1 &&
  [ -x "$scratch/build/atriumd" ] && [ -x "$scratch/build/atrium" ]; then
  ok "build stage builds from the files it copies ($make_cmd)"
else
  tail -20 "$scratch/build.log" 2>/dev/null
  bad "build stage: '$make_cmd' in a copy of its COPY sources"
fi

# (2) Every library atriumd needs comes from a package the runtime stage
# installs (or from libc6, which every Debian image has).
runtime=$(packages 1 | tr '\n' ' ')
missing=
for lib in $(readelf -d "$scratch/build/atriumd" 2>/dev/null |
  sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
  case " $runtime libc6 " in
  *" $pkg "*) ;;
  *) missing="$missing $lib($pkg)" ;;
  esac
done
if [ -n "$runtime" ] && [ -z "$missing" ] && [ -x "$scratch/build/atriumd" ]; then
  ok "runtime stage installs the libraries atriumd links ($runtime)"
else
  bad "runtime stage lacks:$missing"
fi

# (3) Every package named is known to Debian (installed here, or in apt's
# lists).
unknown=
for pkg in $(packages 0) $(packages 1); do
  dpkg-query -W "$pkg" >/dev/null 2>&1 || apt-cache show "$pkg" >/dev/null 2>&1 ||
    unknown="$unknown $pkg"
done
[ -z "$unknown" ] && ok "every package is a Debian package" ||
  bad "unknown packages:$unknown"

# (4) The entry point is copied from the build stage's output.
entry=$(sed -n 's/^ENTRYPOINT \["\([^"]*\)".*/\1/p' "$df")
if grep -q "^COPY --from=build .*build/$(basename "$entry")" "$df"; then
  ok "entry point $entry comes from the build stage"
else
  bad "entry point $entry is not copied from the build stage"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
