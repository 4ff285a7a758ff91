"""make soak: SOAK_S seconds (default 600) of everything at once on one
store, then every invariant checked and one table printed.

Local C processes (soak_worker: adders, putters, getters, a slice writer)
and HTTP clients (adds, puts, pops, slice writes and reads, long-polls, an
SSE reader, a stalled SSE reader, abandoned pops) run while a chaos loop
kill -9s C processes (restarted), kill -9s atriumd (restarted on the same
store) and SIGSTOPs / SIGCONTs C processes (so the gateway meets locks
held by stopped processes: 503 busy, which must change nothing).

The invariants, at the end:
- every acknowledged add is in its value, and nothing else but adds whose
  acknowledgement a kill (C) or a lost connection (HTTP) cut off;
- every acknowledged put was taken exactly once (by a C getter, an HTTP
  pop or the final drain), no item was taken twice, and items missing are
  no more than what killed getters and cut-off pops may have taken;
- no torn slice (every read of the array shows one number);
- no unexpected HTTP answer (5xx but 503 busy);
- atriumd's memory back near where it started, a clean SIGTERM at the end,
  no sanitizer report from any process.
Exits 1 if one fails.

The C putters are paced (SOAK_PUT_RATE puts a second each, default 2000)
and the driver keeps no item as a string: items are "PREFIX-n", so per
prefix a bytearray of take counts indexed by n (the Takes class) is all an
hour needs, about a byte per item put. Getter logs are read line by line,
HTTP pops counted as they come. The table shows the driver's own peak RSS.
"""
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gateway"))
import gw  # noqa: E402

SOAK_S = float(os.environ.get("SOAK_S", "600"))
WORKER = os.path.join(gw.BUILD, "tests", "soak", "soak_worker")
SLICE = 64
ASAN_QUARANTINE_MB = 16
MIB = 1 << 20
SAN_MARKS = gw.SANITIZER

lock = threading.Lock()
stop = threading.Event()
stats = {k: 0 for k in (
    "http_adds", "http_adds_unknown", "http_puts", "http_puts_full", "http_puts_unknown",
    "http_pops", "http_popped", "http_pops_unknown", "http_slices", "http_reads",
    "http_busy", "http_unexpected", "torn_http", "longpolls", "sse_events",
    "sse_reconnects", "stalled_streams", "abandoned", "c_kills", "c_stops",
    "gw_kills", "conn_errors", "conn_refused")}
unexpected = []


class Takes:
    """How many times each item "PREFIX-n" was taken: per prefix a
    bytearray indexed by n (counts stop at 255, still "twice"). It grows as
    items come, by doubling; an item that fits nowhere (unknown prefix, n
    far beyond what was seen, not a string) is kept whole in `stray`, as
    such items are rare and all of them are found out by the checks."""

    def __init__(self):
        self.counts = {}
        self.stray = {}
        self.total = 0

    def expect(self, prefix):
        self.counts.setdefault(prefix, bytearray(1024))

    def take(self, item):
        self.total += 1
        arr = None
        if isinstance(item, str) and "-" in item:
            prefix, _, digits = item.rpartition("-")
            arr = self.counts.get(prefix)
        if arr is not None and digits.isdigit() and digits.isascii():
            n = int(digits)
            if n >= len(arr) and n < 2 * len(arr) + (1 << 20):
                arr.extend(bytes(max(n + 1, 2 * len(arr)) - len(arr)))
            if n < len(arr):
                if arr[n] < 255:
                    arr[n] += 1
                return
        key = json.dumps(item)
        self.stray[key] = self.stray.get(key, 0) + 1

    def get(self, prefix):
        return self.counts.get(prefix, bytearray())

    def settle(self, prefix, size):
        """The prefix's array made `size` long (all its n that may have been
        put), with the stray items of that prefix under `size` folded in."""
        arr = self.counts.setdefault(prefix, bytearray())
        if len(arr) < size:
            arr.extend(bytes(size - len(arr)))
        for key in list(self.stray):
            item = json.loads(key)
            if not isinstance(item, str):
                continue
            pre, _, digits = item.rpartition("-")
            if pre == prefix and digits.isdigit() and digits.isascii() and int(digits) < size:
                arr[int(digits)] = min(255, arr[int(digits)] + self.stray.pop(key))
        return arr


TWICE = bytes(max(c - 1, 0) for c in range(256))  # takes beyond the first
takes = Takes()
# What the HTTP putter's n-th put came to, index n (0 unused).
H_NONE, H_ACKED, H_UNKNOWN = 0, 1, 2  # not put (refused, not sent) / 201 / no answer
HTTP_PREFIX = "h1"
http_put_status = bytearray(1)
takes.expect(HTTP_PREFIX)


def count(key, n=1):
    with lock:
        stats[key] += n


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Daemon:
    """atriumd on the soak's store; restarted after a kill -9."""

    def __init__(self, store):
        self.store = store
        self.old_lines = []
        self.gw = None
        self.start()

    def start(self):
        # Under ASan: a smaller quarantine, and freed memory back to the
        # system, so that "memory back near its start" means something.
        asan = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=%d:"
               "allocator_release_to_os_interval_ms=500" % ASAN_QUARANTINE_MB}
        self.gw = gw.Gateway("--busy-wait", "1", "--sse-memory", "8M", "--max-wait", "30",
                             store=self.store, keep_store=True, env=env).start()
        with open("/proc/%d/maps" % self.gw.proc.pid) as f:
            self.asan = "libasan" in f.read()
        self.port = self.gw.port
        self.rss_start = rss(self.gw.proc.pid)

    def kill(self):
        self.gw.proc.kill()
        self.gw.proc.wait()
        self.gw.reader.join(5)
        self.old_lines += self.gw.lines
        self.gw.proc = None
        count("gw_kills")
        self.start()

    def lines(self):
        return self.old_lines + (self.gw.lines if self.gw else [])


class Worker:
    def __init__(self, tmp, store, role, name, idx):
        self.tmp, self.store, self.role, self.name, self.idx = tmp, store, role, name, idx
        self.inc = 0
        self.files = []  # (ledger or log path, prefix)
        self.kills = 0
        self.failures = []
        self.proc = None
        self.start()

    def start(self):
        self.inc += 1
        path = os.path.join(self.tmp, "%s%d.%d" % (self.role, self.idx, self.inc))
        prefix = "c%d.%d" % (self.idx, self.inc)
        args = [WORKER, self.store, self.role, self.name, path]
        if self.role == "put":
            args.append(prefix)
        self.files.append((path, prefix))
        if self.role == "put":
            with lock:
                takes.expect(prefix)
        self.err = open(path + ".err", "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)

    def check_exit(self):
        rc = self.proc.poll()
        if rc is not None and rc != 0 and rc != -signal.SIGKILL:
            self.failures.append("%s%d exited %s" % (self.role, self.idx, rc))
            self.start()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.kills += 1
        count("c_kills")
        self.start()

    def finish(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        rc = self.proc.wait(30)
        if rc != 0:
            self.failures.append("%s%d ended %s" % (self.role, self.idx, rc))

    def ledger(self, path):
        try:
            with open(path, "rb") as f:
                data = f.read(16)
        except FileNotFoundError:
            return (0, 0)
        data = data.ljust(16, b"\0")
        return int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")


# ------------------------------------------------------------ HTTP clients

def request(daemon, method, path, body=None, timeout=10):
    """(status, json or None); None when the answer never came."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=timeout)
    try:
        conn.connect()
    except OSError:
        # Not sent (a restart): not an unknown outcome; try again soon.
        count("conn_refused")
        conn.close()
        time.sleep(0.05)
        return 0, None
    try:
        hdrs = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, None
    except (OSError, http.client.HTTPException):
        count("conn_errors")
        return None, None
    finally:
        conn.close()


def judge(status, body, ok, path):
    """Counts a 503 busy; notes an unexpected answer."""
    if status in ok or status is None or status == 0:
        return
    if status == 503 and body and body.get("error", {}).get("code") == "busy":
        count("http_busy")
        return
    with lock:
        stats["http_unexpected"] += 1
        if len(unexpected) < 20:
            unexpected.append((path, status, body))


def http_adder(d):
    while not stop.is_set():
        st, body = request(d, "POST", "/v1/values/hv/add", {"delta": 1})
        if st == 200:
            count("http_adds")
        elif st is None:
            count("http_adds_unknown")
        judge(st, body, (200,), "add")


def http_putter(d):
    n = 0
    while not stop.is_set():
        n += 1
        item = "%s-%d" % (HTTP_PREFIX, n)
        st, body = request(d, "POST", "/v1/queues/q/items", item)
        with lock:
            http_put_status.append(H_ACKED if st == 201 else H_UNKNOWN if st is None
                                   else H_NONE)
            if st == 201:
                stats["http_puts"] += 1
            elif st is None:
                stats["http_puts_unknown"] += 1
            elif st == 409:
                stats["http_puts_full"] += 1
        judge(st, body, (201, 409), "put")
        if st == 409:
            time.sleep(0.01)


def http_popper(d):
    while not stop.is_set():
        st, body = request(d, "POST", "/v1/queues/q/pop?max=8&timeout=1")
        if st == 200:
            with lock:
                for item in body["items"]:
                    takes.take(item)
                stats["http_pops"] += 1
                stats["http_popped"] += len(body["items"])
        elif st is None:
            count("http_pops_unknown")
        judge(st, body, (200, 204), "pop")


def http_slicer(d):
    k = 0
    while not stop.is_set():
        k -= 1  # HTTP writes negative numbers, the C writer positive ones
        st, body = request(d, "PATCH", "/v1/arrays/arr", {"start": 0, "values": [k] * SLICE})
        if st == 200:
            count("http_slices")
        judge(st, body, (200,), "patch")
        st, body = request(d, "GET", "/v1/arrays/arr")
        if st == 200:
            count("http_reads")
            if len(set(body["values"])) != 1:
                count("torn_http")
        judge(st, body, (200,), "get array")


def http_longpoll(d):
    version = 0
    while not stop.is_set():
        st, body = request(d, "GET", "/v1/values/cv?wait=%d&timeout=2" % version)
        if st == 200:
            version = body["version"]
            count("longpolls")
        judge(st, body, (200,), "watch")


def sse_reader(d, stalled):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            s.sendall(b"GET /v1/events?topics=value/hv/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if stalled:
                count("stalled_streams")
                port = d.port
                while not stop.is_set() and d.port == port:
                    time.sleep(0.2)
                continue
            count("sse_reconnects")
            while not stop.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                count("sse_events", chunk.count(b"\ndata: "))
        except OSError:
            pass
        finally:
            s.close()


def abandoner(d):
    """Pops that wait on the empty queue aq and whose clients leave at
    once; at the end items put there while some still wait must stay."""
    req = (b"POST /v1/queues/aq/pop?timeout=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Content-Length: 0\r\n\r\n")
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
            s.sendall(req)
            s.close()
            count("abandoned")
        except OSError:
            pass
        time.sleep(0.2)


# ------------------------------------------------------------------ the run

def cleanup(tmp, store, procs):
    """Whatever happened: no process, store or ledger left behind."""
    for p in procs():
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(tmp, ignore_errors=True)
    gw.remove(store)


def on_signal(sig, frame):
    raise KeyboardInterrupt("signal %d" % sig)


def main():
    tmp = tempfile.mkdtemp(prefix="atrium-soak-")
    store = "/dev/shm/atrium-soak-%d" % os.getpid()
    state = {"d": None, "workers": []}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        run(tmp, store, state)
    finally:
        stop.set()
        cleanup(tmp, store, lambda: [w.proc for w in state["workers"]] +
                [state["d"].gw.proc if state["d"] and state["d"].gw else None])


def run(tmp, store, state):
    seed = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    d = state["d"] = Daemon(store)
    for path, body in (("/v1/values/cv", {"type": "q"}), ("/v1/values/hv", {"type": "q"}),
                       ("/v1/queues/q", {"maxsize": 2000}), ("/v1/queues/aq", {}),
                       ("/v1/arrays/arr", {"type": "q", "length": SLICE})):
        st, _ = request(d, "PUT", path, body)
        assert st == 201, (path, st)
    workers = [Worker(tmp, store, "add", "cv", i) for i in range(2)]
    workers += [Worker(tmp, store, "put", "q", i) for i in range(2, 4)]
    workers += [Worker(tmp, store, "get", "q", i) for i in range(4, 6)]
    workers += [Worker(tmp, store, "slice", "arr", 6)]
    state["workers"] = workers
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in (
        (http_adder, (d,)), (http_putter, (d,)), (http_popper, (d,)),
        (http_slicer, (d,)), (http_longpoll, (d,)), (sse_reader, (d, False)),
        (sse_reader, (d, True)), (abandoner, (d,)))]  # the abandoner last
    for t in threads:
        t.start()

    t_end = time.monotonic() + SOAK_S
    next_gw_kill = time.monotonic() + min(15, SOAK_S / 3)
    stopped = []  # (worker, when to continue)
    while time.monotonic() < t_end:
        time.sleep(rng.uniform(0.2, 0.8))
        now = time.monotonic()
        for w, at in list(stopped):
            if now >= at:
                os.kill(w.proc.pid, signal.SIGCONT)
                stopped.remove((w, at))
        for w in workers:
            w.check_exit()
        r = rng.random()
        w = rng.choice(workers)
        if r < 0.35 and all(w is not s for s, _ in stopped):
            os.kill(w.proc.pid, signal.SIGSTOP)
            stopped.append((w, now + rng.uniform(0.2, 2.0)))
            count("c_stops")
        elif r < 0.6 and all(w is not s for s, _ in stopped):
            w.kill()
        elif now >= next_gw_kill:
            d.kill()
            next_gw_kill = now + rng.uniform(10, 30)

    # The end: everyone continues, the clients stop, the queue drains.
    for w, _ in stopped:
        os.kill(w.proc.pid, signal.SIGCONT)
    stop.set()
    threads[-1].join(10)  # the abandoner
    # A last burst of abandoned pops, parked on aq until noticed (within a
    # second): what is put there meanwhile must not go to them.
    req = (b"POST /v1/queues/aq/pop?timeout=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Content-Length: 0\r\n\r\n")
    socks = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(20)]
    for so in socks:
        so.sendall(req)
    time.sleep(0.1)
    for so in socks:
        so.close()
    count("abandoned", len(socks))
    parked_then = d.gw.metric("atrium_parked_requests")
    for i in range(5):
        request(d, "POST", "/v1/queues/aq/items", i)
    for t in threads:
        t.join(60)
    time.sleep(1.5)
    aq = request(d, "GET", "/v1/queues/aq")[1]["size"]
    for w in workers:
        w.finish()
    while True:
        st, body = request(d, "POST", "/v1/queues/q/pop?max=10000")
        if st != 200:
            break
        for item in body["items"]:
            takes.take(item)

    # ------------------------------------------------------------ checks
    results = []

    def check(name, ok, detail):
        results.append((name, ok, detail))

    adders = [w for w in workers if w.role == "add"]
    c_acked = sum(w.ledger(p)[0] for w in adders for p, _ in w.files)
    c_kills = sum(w.kills for w in adders)
    cv = request(d, "GET", "/v1/values/cv")[1]["value"]
    check("C adds accounted for", c_acked <= cv <= c_acked + c_kills,
          "value %d, acked %d, cut off by kills <= %d" % (cv, c_acked, c_kills))
    hv = request(d, "GET", "/v1/values/hv")[1]["value"]
    check("HTTP adds accounted for",
          stats["http_adds"] <= hv <= stats["http_adds"] + stats["http_adds_unknown"],
          "value %d, acked %d, answers lost <= %d"
          % (hv, stats["http_adds"], stats["http_adds_unknown"]))

    # Every n that may have been put gets its place, then the getter logs
    # (most of the items) are counted, a line at a time.
    c_puts = [(w.ledger(path)[0], prefix) for w in workers if w.role == "put"
              for path, prefix in w.files]
    for n, prefix in c_puts:
        takes.settle(prefix, n + 2)  # n + 1: put, then killed before the ledger
    takes.settle(HTTP_PREFIX, len(http_put_status))
    getter_kills = 0
    log_bytes = 0
    for w in workers:
        if w.role != "get":
            continue
        getter_kills += w.kills
        for path, _ in w.files:
            try:
                with open(path, "rb") as f:
                    for line in f:
                        line = line.rstrip(b"\n")
                        try:
                            takes.take(json.loads(line))
                        except ValueError:  # a torn line: counted as from nowhere
                            takes.take(line.decode("utf-8", "replace"))
                    log_bytes += f.tell()
            except FileNotFoundError:
                pass
    acked = missing = extra = 0
    for n, prefix in c_puts:  # acked: 1..n; n + 1 maybe; 0 and beyond: nowhere
        arr = takes.get(prefix)
        acked += n
        missing += arr[1:n + 1].count(0)
        extra += (arr[0] != 0) + len(arr) - (n + 2) - arr[n + 2:].count(0)
    arr = takes.get(HTTP_PREFIX)
    acked += http_put_status.count(H_ACKED)
    for status, c in zip(http_put_status, arr):
        if status == H_ACKED and c == 0:
            missing += 1
        elif status == H_NONE and c != 0:
            extra += 1
    # Never put, and beyond the status list: nowhere.
    extra += len(arr) - len(http_put_status) - arr[len(http_put_status):].count(0)
    twice = sum(sum(a.translate(TWICE)) for a in takes.counts.values())
    twice += sum(c - 1 for c in takes.stray.values())
    extra += len(takes.stray)  # what settle left: no putter's
    may_lose = getter_kills * 16 + stats["http_pops_unknown"] * 8
    check("no item taken twice", twice == 0, "%d items taken, %d twice" % (takes.total, twice))
    check("acknowledged puts taken", missing <= may_lose,
          "%d acked, %d missing, killed getters / lost pops may explain %d"
          % (acked, missing, may_lose))
    check("no item from nowhere", not extra, "%d unexplained %s"
          % (extra, list(takes.stray)[:3]))
    check("abandoned pops took nothing", aq == 5,
          "%d abandoned, %s requests parked when 5 items were put there; %d stayed"
          % (stats["abandoned"], parked_then, aq))

    slicer = [w for w in workers if w.role == "slice"][0]
    c_slices = sum(slicer.ledger(p)[0] for p, _ in slicer.files)
    c_torn = sum(slicer.ledger(p)[1] for p, _ in slicer.files)
    final = request(d, "GET", "/v1/arrays/arr")[1]["values"]
    check("no torn slice", c_torn == 0 and stats["torn_http"] == 0 and len(set(final)) == 1,
          "C %d writes %d torn reads, HTTP %d writes %d reads %d torn"
          % (c_slices, c_torn, stats["http_slices"], stats["http_reads"], stats["torn_http"]))
    check("no unexpected HTTP answer", stats["http_unexpected"] == 0,
          "%d (503 busy: %d) %s" % (stats["http_unexpected"], stats["http_busy"], unexpected[:3]))

    time.sleep(2)  # streams and abandoned requests closed: memory back
    end_rss = rss(d.gw.proc.pid)
    room = (24 + (ASAN_QUARANTINE_MB * 2 if d.asan else 0)) * MIB
    check("memory back near its start", end_rss <= d.rss_start + room,
          "atriumd RSS %.1f MiB at its start, %.1f MiB at the end"
          % (d.rss_start / MIB, end_rss / MIB))
    parked = d.gw.metric("atrium_parked_requests")
    check("no request left parked", parked == 0, "%s parked" % parked)

    failures = sum((w.failures for w in workers), [])
    check("C processes ran clean", not failures, "; ".join(failures[:5]) or "none failed")
    try:
        d.gw.stop()
        clean = True
    except AssertionError as e:
        clean = str(e)[:300]
    check("atriumd stopped clean on SIGTERM", clean is True, "exit 0" if clean is True else clean)
    reports = [l for l in d.lines() if any(m in l for m in SAN_MARKS)]
    for w in workers:
        for path, _ in w.files:
            with open(path + ".err", "rb") as f:
                text = f.read().decode("utf-8", "replace")
            reports += [l for l in text.splitlines() if any(m in l for m in SAN_MARKS)]
    check("no sanitizer report", not reports, "; ".join(reports[:3]) or "none")

    # ------------------------------------------------------------ table
    print("\natrium soak: %.0f s, seed %d (SOAK_SEED)" % (SOAK_S, seed))
    print("\n| what it did | count |\n|---|---:|")
    for k in ("c_kills", "c_stops", "gw_kills", "http_adds", "http_puts", "http_puts_full",
              "http_pops", "http_popped", "http_slices", "http_reads", "http_busy",
              "longpolls", "sse_events", "sse_reconnects", "stalled_streams", "abandoned",
              "conn_errors", "conn_refused"):
        print("| %s | %d |" % (k, stats[k]))
    print("| C adds acked | %d |" % c_acked)
    print("| C slice writes | %d |" % c_slices)
    print("| items taken (C getters, HTTP pops, drain) | %d |" % takes.total)
    print("| getter logs read (MiB) | %.1f |" % (log_bytes / MIB))
    # ru_maxrss is in KiB on Linux: the driver's own high-water mark.
    print("| soak.py peak RSS (MiB) | %.1f |"
          % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    print("\n| invariant | holds | found |\n|---|---|---|")
    for name, ok, detail in results:
        print("| %s | %s | %s |" % (name, "yes" if ok else "**NO**", detail))
    bad = [r for r in results if not r[1]]
    print("\n%d invariants hold, %d fail" % (len(results) - len(bad), len(bad)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
