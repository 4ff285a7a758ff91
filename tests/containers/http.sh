#!/bin/bash
# tests/containers/http.sh - the HTTP client of the application container
# in make check-containers, whose image (plain Debian) has bash but no
# curl: one HTTP/1.0 request to atriumd on the container's loopback.
#
#   http.sh METHOD PATH [JSON_BODY]
#
# Prints the status code on a line of its own, then the body as it comes
# (an SSE stream too, until the connection closes or `timeout` ends it).
# Exits 1 when it cannot connect. ATRIUM_PORT: atriumd's port (7450).
set -u
export LC_ALL=C
method=$1
path=$2
body=${3-}
exec 3<>"/dev/tcp/127.0.0.1/${ATRIUM_PORT:-7450}" || exit 1
{
  printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n' "$method" "$path"
  [ -z "$body" ] || printf 'Content-Type: application/json\r\n'
  [ "$method" = GET ] || printf 'Content-Length: %d\r\n' "${#body}"
  printf '\r\n%s' "$body"
} >&3
IFS=' ' read -r _ status _ <&3 || exit 1
echo "$status"
# The headers end at the first empty line.
while IFS= read -r line <&3; do
  [ -n "${line%$'\r'}" ] || break
done
exec cat <&3
