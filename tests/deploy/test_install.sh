#!/bin/sh
# tests/deploy/test_install.sh - `make install` with PREFIX and DESTDIR
# puts the header, the libraries, the tools, atrium.pc, the systemd unit
# and its sysusers.d file in place; a program built with `pkg-config
# --cflags --libs atrium` against that tree (the README's C example) runs;
# `systemd-analyze verify` finds nothing to say about the installed unit.
# Env: BUILD, SANITIZER as for make.
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
    lib/libatrium.so.1 lib/pkgconfig/atrium.pc bin/atrium bin/atriumd \
    lib/systemd/system/atriumd.service lib/sysusers.d/atrium.conf; do
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

# The unit as installed, but for its ExecStart, which points into DESTDIR
# (verify wants the program there). A warning (an unknown or misspelt
# directive) is a failure too; the exposure is systemd's own score of the
# hardening (0 best, 10 worst; 2 or less is "OK").
unit=$dest$prefix/lib/systemd/system/atriumd.service
sed "s|^ExecStart=$prefix/bin/|ExecStart=$dest$prefix/bin/|" "$unit" >"$dest/atriumd.service" 2>/dev/null
said=$(systemd-analyze verify "$dest/atriumd.service" 2>&1)
exposure=$(systemd-analyze security --offline=yes --no-pager "$dest/atriumd.service" 2>/dev/null |
  sed -n 's/.*Overall exposure level for atriumd.service: \([0-9.]*\).*/\1/p')
writable=$(sed -n 's/^ReadWritePaths=//p' "$unit")
hardened=yes
for d in ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes ReadWritePaths=/run/atrium; do
  grep -qx "$d" "$unit" || hardened="no $d"
done
if [ -f "$unit" ] && [ -z "$said" ] && [ "$hardened" = yes ] &&
  awk -v e="${exposure:-10}" 'BEGIN { exit !(e <= 2) }'; then
  ok "systemd-analyze verify: the unit is clean; exposure $exposure, writable $writable only"
else
  echo "$said"
  bad "systemd unit: verify said the above; hardening: $hardened; exposure ${exposure:-?}"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
