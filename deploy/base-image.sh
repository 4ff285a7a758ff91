#!/bin/sh
# deploy/base-image.sh - makes the Debian base image the Dockerfile pins
# (its `ARG BASE=`), from Debian's archive alone, for a machine that cannot
# pull from an image registry: mmdebstrap's minbase of bookworm, with
# merged /usr and without manuals, docs (copyright files stay) or
# translations, as Debian's slim images are, imported into the engine
# under the pinned name. Needs root and mmdebstrap.
#
#   sh deploy/base-image.sh [ENGINE]    ENGINE: docker (default) or podman
#
# It prints the name, the archive's point release and the time it took.
# When the archive has moved past the pinned point release it says so:
# the image then holds the newer release under the pinned name, and the
# pin in the Dockerfile is the thing to bump.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
engine=${1:-docker}
base=$(sed -n 's/^ARG BASE=//p' "$top/Dockerfile")
[ -n "$base" ] || {
  echo "base-image: no ARG BASE= in the Dockerfile" >&2
  exit 1
}
hooks=/usr/share/mmdebstrap/hooks/merged-usr
start=$(date +%s)
# The usrmerge package (and the perl it needs) stays out: the merged-usr
# hook makes the links instead. apt keeps no package cache in the image.
# dpkg skips its fsyncs (force-unsafe-io), here and in the image's own
# installs, as Debian's official images do: an image that dies half-built
# is thrown away anyway.
mmdebstrap --variant=minbase --quiet --hook-dir="$hooks" \
  --dpkgopt='force-unsafe-io' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --aptopt='Acquire::Languages "none"' \
  --aptopt='Dir::Cache::pkgcache ""' --aptopt='Dir::Cache::srcpkgcache ""' \
  bookworm - | "$engine" import --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$base" >/dev/null
release=$("$engine" run --rm "$base" cat /etc/debian_version)
echo "base-image: made $base (Debian $release) in $(($(date +%s) - start)) s"
case $base in
*:"$release"-* | *:"$release") ;;
*) echo "base-image: note: Debian's archive is at $release; $base pins another point release" ;;
esac
