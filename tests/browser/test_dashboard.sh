#!/bin/sh
# tests/browser/test_dashboard.sh - the dashboard (web/) in a real browser:
# Debian's Chromium, driven by playwright-core (pinned by package-lock.json,
# installed here with `npm ci` when missing; it never downloads a browser),
# against a real atriumd on a fresh store (test_dashboard.mjs says what it
# checks). Screenshots go to build/artifacts/ (ARTIFACTS overrides).
#
#   BUILD=build sh tests/browser/test_dashboard.sh
#
# Ends with one line "N passed, N failed"; exits non-zero on a failure.
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$root/$BUILD ;;
esac
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
ARTIFACTS=${ARTIFACTS:-$root/build/artifacts}
export BUILD CHROMIUM ARTIFACTS

fail() {
	echo "test_dashboard: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

command -v node >/dev/null 2>&1 || fail "node is missing (sh deploy/install-deps.sh)"
command -v curl >/dev/null 2>&1 || fail "curl is missing (sh deploy/install-deps.sh)"
[ -x "$CHROMIUM" ] || fail "no Chromium at $CHROMIUM (sh deploy/install-deps.sh)"
[ -x "$BUILD/atriumd" ] && [ -x "$BUILD/atrium" ] ||
	fail "no $BUILD/atriumd or $BUILD/atrium: run make first"
[ -x "$BUILD/tests/gateway/sync_tool" ] ||
	fail "no $BUILD/tests/gateway/sync_tool: run make tests first"

cd "$here" || fail "cannot enter $here"
# The pinned playwright-core, unless node_modules has it already.
want=$(sed -n 's/^ *"playwright-core": "\([^"]*\)".*/\1/p' package.json)
have=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' \
	node_modules/playwright-core/package.json 2>/dev/null)
if [ -z "$want" ] || [ "$want" != "$have" ]; then
	npm ci --no-audit --no-fund >&2 || fail "npm ci failed"
fi

exec node test_dashboard.mjs
