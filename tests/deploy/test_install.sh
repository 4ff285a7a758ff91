#!/bin/sh
# tests/deploy/test_install.sh - `make install` with PREFIX and DESTDIR
# puts the header, the libraries, the tools and atrium.pc in place, and a
# program built with `pkg-config --cflags --libs atrium` against that tree
# (the README's C example) runs. Env: BUILD, SANITIZER as for make.
# Prints one final "N passed, N failed" line.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
dest=$(mktemp -d "${TMPDIR:-/tmp}/atrium-install.XXXXXX")
store=/dev/shm/atrium-install-$$
trap 'rm -rf "$dest"; rm -f "$store"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

prefix=/usr/local
if make -s -C "$top" install BUILD="$BUILD" SANITIZER="${SANITIZER:-}" \
  DESTDIR="$dest" PREFIX="$prefix" >"$dest/log" 2>&1; then
  missing=
  for f in include/atrium.h lib/libatrium.a lib/libatrium.so \
    lib/libatrium.so.1 lib/pkgconfig/atrium.pc bin/atrium bin/atriumd; do
    [ -e "$dest$prefix/$f" ] || missing="$missing $f"
  done
  [ -z "$missing" ] && ok "make install PREFIX DESTDIR" || bad "not installed:$missing"
else
  cat "$dest/log"
  bad "make install failed"
fi

san=
[ -z "${SANITIZER:-}" ] || san="-fsanitize=$SANITIZER"
awk '/^```c$/ {on = 1; next} /^```$/ {on = 0} on' "$top/README.md" >"$dest/example.c"
flags=$(PKG_CONFIG_PATH=$dest$prefix/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest \
  pkg-config --cflags --libs atrium)
if cc -std=c11 $san "$dest/example.c" $flags -o "$dest/example" &&
  LD_LIBRARY_PATH=$dest$prefix/lib "$dest/example" "$store" | grep -q 'hits = 1'; then
  ok "README example built with pkg-config against the installed tree"
else
  bad "README example with pkg-config ($flags)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
