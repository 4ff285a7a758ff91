#!/bin/sh
# deploy/install-deps.sh - the one install step: the Debian 12 packages that
# atrium needs to build, test and run. `make run`, `make check` and
# `make bench` call it (through a stamp file); it can also be run by hand.
#
#   sh deploy/install-deps.sh           build, test and run packages
#   sh deploy/install-deps.sh --bench   those plus the benchmark peers
#   sh deploy/install-deps.sh --containers   those plus the container
#                                       engines of make check-containers
#
# It asks dpkg which packages are missing and exits 0 quietly when none is.
# Otherwise, as root it runs `apt-get update` and installs the missing ones;
# as another user it does the same through sudo if there is one, else it
# prints the command to run and exits 1.
set -eu

# Build and test: compiler and make, pkg-config, the unit test framework,
# the gateway's libraries, curl and python3 for the tests, clang (its
# libFuzzer) for fuzzing, promtool (in prometheus) to check /metrics,
# chromium for the dashboard's browser test, clang-format for the style,
# systemd for systemd-analyze (it checks the unit; nothing starts it),
# Python's own test suite (its multiprocessing tests run against the
# Python client, tests/python/test_cpython.py), python3-dev for Python.h
# (the client's C extension, clients/python/atrium/_fast.c).
BASE_PKGS="build-essential pkg-config libcmocka-dev libmicrohttpd-dev
libcjson-dev libnng-dev nng-utils curl python3 python3-dev clang
libclang-rt-14-dev clang-format prometheus chromium systemd
libpython3.11-testsuite"
# Node.js runs the OpenAPI linter and the browser test (npm packages, pinned
# by their package-lock.json). A machine that has node already keeps it.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  BASE_PKGS="$BASE_PKGS nodejs npm"
# Benchmarks only: the HTTP load generator and the peers we compare with.
BENCH_PKGS="wrk redis-server webdis nginx-light"
# make check-containers only: Docker's engine and compose, podman (with
# runc: crun refuses hybrid cgroups; catatonit for its pods' infra
# container) for the Kubernetes manifest, mmdebstrap for the base image
# when no registry can be reached.
CONTAINER_PKGS="docker.io docker-compose podman runc catatonit mmdebstrap"

usage() {
  echo "usage: sh deploy/install-deps.sh [--bench] [--containers]" >&2
  exit 2
}

pkgs=$BASE_PKGS
for arg in "$@"; do
  case $arg in
  --bench) pkgs="$pkgs $BENCH_PKGS" ;;
  --containers) pkgs="$pkgs $CONTAINER_PKGS" ;;
  -h | --help) usage ;;
  *) usage ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found: this script knows Debian 12 only." >&2
  echo "install-deps: install the equivalents of: $(echo $pkgs)" >&2
  exit 1
fi

missing=
for pkg in $pkgs; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case $status in
  *" ok installed") ;;
  *) missing="$missing $pkg" ;;
  esac
done
[ -n "$missing" ] || exit 0

echo "install-deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    $missing
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update
  sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y \
    --no-install-recommends $missing
else
  echo "install-deps: not root and no sudo; as root, run:" >&2
  echo "  apt-get update && DEBIAN_FRONTEND=noninteractive" \
    "apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
