#!/bin/sh
# tests/openapi/test_lint.sh - lints gateway/openapi.json with Redocly's
# linter (@redocly/cli, the version pinned in package-lock.json here):
# its recommended rules, every problem an error (redocly.yaml), the
# config itself checked too. The linter is installed into
# tests/openapi/node_modules with npm ci when it is not there yet (it
# needs node and npm, and the npm registry once).
# Prints one closing line: "N passed, M failed"; exits 1 if it failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp "${TMPDIR:-/tmp}/atrium-lint.XXXXXX") || exit 2
trap 'rm -f "$log"' EXIT
trap 'exit 130' INT TERM

finish() {
	if [ "$1" -eq 0 ]; then
		echo "1 passed, 0 failed"
		exit 0
	fi
	echo "0 passed, 1 failed"
	exit 1
}

cd "$here" || finish 1
for tool in node npm npx; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "FAILED: $tool is missing (deploy/install-deps.sh installs it)" >&2
		finish 1
	fi
done

if [ ! -x node_modules/.bin/redocly ]; then
	echo "installing the linter: npm ci in tests/openapi"
	if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
		echo "FAILED: npm ci:" >&2
		tail -n 30 "$log" >&2
		finish 1
	fi
fi

# No update notice or telemetry from a test run (redocly.yaml says the
# latter too).
REDOCLY_SUPPRESS_UPDATE_NOTICE=true REDOCLY_TELEMETRY=off \
	npx --no-install redocly lint --config redocly.yaml --lint-config=error \
	--format=stylish ../../gateway/openapi.json >"$log" 2>&1
rc=$?
# The linter's own lines, without the boxed notices around them.
grep -vE '^ *[║╔╚]|^npm warn|^ *$' "$log"
if [ "$rc" -ne 0 ]; then
	echo "FAILED: redocly lint exited $rc" >&2
	finish 1
fi
echo "ok: gateway/openapi.json passes redocly lint"
finish 0
