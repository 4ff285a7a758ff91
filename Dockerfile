# atriumd as a container image: built on Debian 12 from this tree, run on
# the same pinned Debian 12 slim base with only the runtime libraries. No
# downloads besides Debian's packages.
#
#   docker build -t atrium .
#   docker run --rm -v atrium:/run/atrium atrium        (loopback only)
#
# As a sidecar, share the store's folder (an in-memory emptyDir or a
# tmpfs volume) with the application: see deploy/ and the README.
#
# The base is pinned to a Debian point release. Where no registry can be
# reached, `sh deploy/base-image.sh` makes it from Debian's archive
# (mmdebstrap) under this very name; make check-containers does so when
# it is missing. A Python application has its own image: there is no
# Python in this one.
ARG BASE=debian:12.15-slim

FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libmicrohttpd-dev libcjson-dev libnng-dev \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
WORKDIR /src
COPY Makefile ./
COPY include include
COPY core core
COPY gateway gateway
COPY web web
RUN make -j2 all

FROM ${BASE}
# Only what atriumd links (and libc, in the base), then its user and the
# store's folder: the one place it writes, so the root filesystem can be
# read-only.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libcjson1 libnng1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
      /var/cache/debconf/*-old /var/log/* \
 && groupadd --system --gid 10001 atrium \
 && useradd --system --uid 10001 --gid atrium --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin atrium \
 && install -d -o atrium -g atrium -m 0700 /run/atrium
COPY --from=build /src/build/atriumd /src/build/atrium /usr/local/bin/
# The probe of the HEALTHCHECK and of Kubernetes' exec probes.
COPY deploy/atrium-healthz /usr/local/bin/
USER 10001:10001
ENV ATRIUM_STORE=/run/atrium/store \
    ATRIUM_LISTEN=127.0.0.1:7450 \
    ATRIUM_EVENTS=tcp://127.0.0.1:7451
VOLUME /run/atrium
EXPOSE 7450 7451
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/atrium-healthz"]
ENTRYPOINT ["/usr/local/bin/atriumd"]
# Last, so that a new version reuses every layer above.
ARG BASE
ARG VERSION=unknown
ARG SOURCE=atrium
LABEL org.opencontainers.image.title="atrium" \
      org.opencontainers.image.description="atriumd, the atrium gateway, and the atrium tool" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE}"
