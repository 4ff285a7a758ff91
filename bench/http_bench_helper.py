#!/usr/bin/env python3
"""http_bench_helper.py - the small jobs of bench/http_bench.sh that want a
real program. Standard library only; every connection is to 127.0.0.1.

  ports N                    print N free TCP ports of 127.0.0.1
  traffic PORT ROUNDS        a little traffic on every hot route (for RSS)
  fill PORT QUEUE N ITEM     put N copies of ITEM (JSON text) into QUEUE,
                             10,000 a batch; prints the queue's size
  clear PORT QUEUE SECONDS   empties QUEUE every SECONDS until SIGTERM, then
                             prints "clears N" (the batch run's sink)
  park PORT VALUE N TIMEOUT  opens N connections, each a long-poll
                             GET /v1/values/VALUE?wait=<version>&timeout=..;
                             prints "parked N" once the gateway's
                             atrium_parked_requests gauge shows them all;
                             on SIGUSR1 adds 1 to VALUE, reads every answer
                             and prints "released GOOD of N in MS ms, ..."
"""
import asyncio
import http.client
import json
import resource
import signal
import socket
import sys
import time

HOST = "127.0.0.1"


def ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def request(conn, method, path, body=None):
    headers = {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise SystemExit("http_bench_helper: %s %s answered %d %r"
                         % (method, path, resp.status, data[:200]))
    ctype = resp.getheader("Content-Type") or ""
    return json.loads(data) if data and ctype.startswith("application/json") \
        else data


def metric(conn, name):
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    for line in resp.read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def traffic(port, rounds):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    request(conn, "PUT", "/v1/values/warmv", '{"type":"q"}')
    request(conn, "PUT", "/v1/queues/warmq", "{}")
    for _ in range(rounds):
        request(conn, "POST", "/v1/values/warmv/add", '{"delta":1}')
        request(conn, "GET", "/v1/values/warmv")
        request(conn, "POST", "/v1/queues/warmq/items", '{"id":1,"task":"warm"}')
        request(conn, "POST", "/v1/queues/warmq/batch", '[1,2,3,4,5,6,7,8,9,10]')
        request(conn, "POST", "/v1/queues/warmq/pop?max=11")
    request(conn, "GET", "/metrics")
    request(conn, "DELETE", "/v1/queues/warmq")
    request(conn, "DELETE", "/v1/values/warmv")
    conn.close()


def fill(port, queue, n, item):
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    request(conn, "PUT", "/v1/queues/" + queue, "{}")
    per = 10000
    body = "[" + ",".join([item] * per) + "]"
    while n > 0:
        if n < per:
            body, per = "[" + ",".join([item] * n) + "]", n
        request(conn, "POST", "/v1/queues/%s/batch" % queue, body)
        n -= per
    print(request(conn, "GET", "/v1/queues/" + queue)["size"])


def clear(port, queue, every):
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    clears = 0
    try:
        while not stop:
            request(conn, "DELETE", "/v1/queues/%s/items" % queue)
            clears += 1
            time.sleep(every)
    except Exception as e:
        raise SystemExit("http_bench_helper: clear: after %d clears: %r"
                         % (clears, e))
    print("clears %d" % clears, flush=True)


async def park(port, value, n, timeout):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        raise SystemExit("http_bench_helper: open-file limit %d is below %d "
                         "(ulimit -n)" % (soft, n + 64))
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    since = request(conn, "GET", "/v1/values/" + value)["version"]
    req = ("GET /v1/values/%s?wait=%d&timeout=%g HTTP/1.1\r\nHost: %s\r\n\r\n"
           % (value, since, timeout, HOST)).encode()
    gate = asyncio.Semaphore(256)

    async def open_one():
        async with gate:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(req)
            await writer.drain()
            return reader, writer

    streams = await asyncio.gather(*(open_one() for _ in range(n)))
    # Parked means the gateway counts them as waiting, not just connected.
    deadline = time.monotonic() + 30
    while True:
        parked = metric(conn, "atrium_parked_requests")
        if parked == n:
            break
        if time.monotonic() > deadline:
            raise SystemExit("http_bench_helper: only %s of %d requests parked"
                             % (parked, n))
        await asyncio.sleep(0.1)
    print("parked %d" % n, flush=True)

    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    await go.wait()

    # Release: one add to VALUE must answer every waiter at once.
    t0 = time.monotonic()
    after = request(conn, "POST", "/v1/values/%s/add" % value, '{"delta":1}')

    first = []

    async def answer(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        if not first:
            first.append(time.monotonic() - t0)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        body = json.loads(await reader.readexactly(length)) if length else None
        writer.close()
        return status == 200 and body is not None and body["version"] > since

    results = await asyncio.wait_for(
        asyncio.gather(*(answer(r, w) for r, w in streams),
                       return_exceptions=True), timeout + 30)
    elapsed = time.monotonic() - t0
    good = sum(1 for r in results if r is True)
    print("released %d of %d in %.0f ms, the first after %.0f ms "
          "(version %d -> %d)" % (good, n, elapsed * 1000,
                                  (first[0] if first else 0) * 1000, since,
                                  after["version"]), flush=True)
    conn.close()


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "ports":
        ports(int(args[0]))
    elif cmd == "traffic":
        traffic(int(args[0]), int(args[1]))
    elif cmd == "fill":
        fill(int(args[0]), args[1], int(args[2]), args[3])
    elif cmd == "clear":
        clear(int(args[0]), args[1], float(args[2]))
    elif cmd == "park":
        asyncio.run(park(int(args[0]), args[1], int(args[2]), float(args[3])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
