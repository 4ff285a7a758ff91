# atriumd as a container image: built on Debian 12 from this tree, run on
# Debian 12 slim with only the runtime libraries. No downloads besides
# Debian's packages.
#
#   docker build -t atrium .
#   docker run --rm -v atrium:/run/atrium atrium        (loopback only)
#
# As a sidecar, share the store's folder (an in-memory emptyDir or a
# tmpfs volume) with the application: see deploy/.

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libmicrohttpd-dev libcjson-dev libnng-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY include include
COPY core core
COPY gateway gateway
COPY web web
RUN make -j2 all

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libcjson1 libnng1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent atrium \
 && install -d -o atrium -g atrium -m 0700 /run/atrium
COPY --from=build /src/build/atriumd /src/build/atrium /usr/local/bin/
USER 10001
ENV ATRIUM_STORE=/run/atrium/store \
    ATRIUM_LISTEN=127.0.0.1:7450 \
    ATRIUM_EVENTS=tcp://127.0.0.1:7451
VOLUME /run/atrium
EXPOSE 7450 7451
ENTRYPOINT ["/usr/local/bin/atriumd"]
