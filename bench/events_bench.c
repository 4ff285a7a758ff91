/*
 * events_bench.c - how long a change made by a local process (libatrium)
 * takes to reach an nng subscriber and an SSE client of atriumd, beside a
 * bare nng pub -> sub on the same transport at the same rate.
 *
 *   events_bench latency EVENTS_URL HTTP_PORT STORE [RATE] [SECONDS]
 *       sets the value "evbench.lat" (type q) RATE times a second (default
 *       10000) for SECONDS (default 3) to the CLOCK_MONOTONIC time in ns;
 *       an nng subscriber of EVENTS_URL and an SSE client of
 *       http://127.0.0.1:HTTP_PORT/v1/events read the time back from each
 *       event's "value" and note how old it is. Then a bare pub socket of
 *       this process sends the same kind of message at the same rate to a
 *       sub socket over the same transport. Prints p50 and p99 in ms, and
 *       how many events arrived (the change feed may coalesce a run of
 *       sets that the gateway has not read yet into one event: each
 *       receipt is timed from the newest set it carries).
 *   events_bench stall HTTP_PORT
 *       opens an SSE stream of every topic with a tiny receive buffer,
 *       prints "stalled" and never reads it, until killed.
 *   events_bench wake atrium HTTP_PORT STORE [N]
 *   events_bench wake redis REDIS_PORT [N]
 *       a pop parked in the server, woken by a put from another process,
 *       N times (default 2000): this process sends POST /v1/queues/
 *       evbench.wake/pop?timeout=5 (or BLPOP evbench.wake 5), waits 2 ms
 *       for it to park, then tells a child, which notes the time and puts
 *       it as the item through libatrium (or LPUSHes it on a connection
 *       of its own); the answer is timed from that note. Prints p50 and
 *       p99 in microseconds.
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atrium.h"

#define BENCH_NAME "evbench.lat"
#define MAX_SAMPLES (1 << 20)

/* One receiver's latencies (ns), filled by its thread. */
struct samples {
  int64_t *ns;
  size_t n;
  atomic_int seen; /* got anything at all (warm-up) */
};

static atomic_int bench_stop;
static atomic_llong bench_from; /* only values from here on count */

static int bench_fail(const char *what, const char *why) {
  fprintf(stderr, "events_bench: %s: %s\n", what, why);
  return 1;
}

static int64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The number after "value": in p[0..len), or -1. */
static int64_t parse_value(const char *p, size_t len) {
  const char *v = memmem(p, len, "\"value\":", 8);
  int64_t x = 0;

  if (v == NULL)
    return -1;
  v += 8;
  while (v < p + len && *v >= '0' && *v <= '9')
    x = x * 10 + (*v++ - '0');
  return x;
}

static void note(struct samples *s, int64_t sent) {
  int64_t from = atomic_load(&bench_from);

  atomic_store(&s->seen, 1);
  if (from == 0 || sent < from || s->n == MAX_SAMPLES)
    return;
  s->ns[s->n++] = now_ns() - sent;
}

/* ------------------------------------------------------------ receivers */

struct nng_rx {
  nng_socket sock;
  struct samples *s;
};

static void *nng_reader(void *arg) {
  struct nng_rx *rx = arg;

  while (!atomic_load(&bench_stop)) {
    char *msg = NULL;
    size_t len = 0;
    int rv = nng_recv(rx->sock, &msg, &len, NNG_FLAG_ALLOC);
    if (rv == NNG_ETIMEDOUT)
      continue;
    if (rv != 0)
      break;
    int64_t sent = parse_value(msg, len);
    if (sent > 0)
      note(rx->s, sent);
    nng_free(msg, len);
  }
  return NULL;
}

static int sub_open(nng_socket *s, const char *url, const char *topic) {
  int rv;

  if ((rv = nng_sub0_open(s)) != 0 ||
      (rv = nng_socket_set(*s, NNG_OPT_SUB_SUBSCRIBE, topic, strlen(topic))) !=
          0 ||
      (rv = nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, 100)) != 0 ||
      (rv = nng_socket_set_int(*s, NNG_OPT_RECVBUF, 8192)) != 0 ||
      (rv = nng_dial(*s, url, NULL, 0)) != 0)
    return bench_fail(url, nng_strerror(rv));
  return 0;
}

/* An HTTP/1.0 GET of an event stream on 127.0.0.1:port (the answer comes
 * unchunked and ends when the connection does); rcvbuf > 0 sets
 * SO_RCVBUF first. Returns the socket or -1. */
static int sse_open(unsigned port, const char *path, int rcvbuf) {
  struct sockaddr_in a;
  char req[256];
  int fd = socket(AF_INET, SOCK_STREAM, 0), n;

  if (fd < 0)
    return -1;
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
               path);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  return fd;
}

struct sse_rx {
  int fd;
  struct samples *s;
};

static void *sse_reader(void *arg) {
  struct sse_rx *rx = arg;
  static char buf[1 << 16];
  size_t len = 0;

  while (!atomic_load(&bench_stop)) {
    struct pollfd p = {rx->fd, POLLIN, 0};
    ssize_t n;
    char *line, *end;
    if (poll(&p, 1, 100) <= 0)
      continue;
    n = read(rx->fd, buf + len, sizeof(buf) - len - 1);
    if (n <= 0)
      break;
    len += (size_t)n;
    /* Whole lines only; "data: " lines carry the JSON. */
    line = buf;
    while ((end = memchr(line, '\n', len - (size_t)(line - buf))) != NULL) {
      if (end - line > 6 && memcmp(line, "data: ", 6) == 0) {
        int64_t sent = parse_value(line, (size_t)(end - line));
        if (sent > 0)
          note(rx->s, sent);
      }
      line = end + 1;
    }
    len -= (size_t)(line - buf);
    memmove(buf, line, len);
    if (len == sizeof(buf) - 1)
      len = 0; /* a line longer than the buffer: not ours */
  }
  return NULL;
}

/* ------------------------------------------------------------- pacing */

/* Calls send(arg) rate times a second for seconds, from now. */
static void paced(double rate, double seconds, void (*send)(void *),
                  void *arg) {
  int64_t step = (int64_t)(1e9 / rate), start = now_ns();
  int64_t end = start + (int64_t)(seconds * 1e9), next = start;

  while (next < end) {
    struct timespec ts = {next / 1000000000, next % 1000000000};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    send(arg);
    next += step;
    if (now_ns() - next > 10 * step)
      next = now_ns(); /* fell behind (descheduled): no burst to catch up */
  }
}

/* Repeats send until every samples in list has seen something (10 s). */
static int warm_up(void (*send)(void *), void *arg, struct samples **list,
                   size_t n) {
  int64_t deadline = now_ns() + 10000000000LL;

  for (;;) {
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
      ok += (size_t)atomic_load(&list[i]->seen);
    if (ok == n)
      return 0;
    if (now_ns() > deadline)
      return -1;
    send(arg);
    usleep(20000);
  }
}

static int by_value(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return x < y ? -1 : x > y;
}

static void report(const char *name, struct samples *s, uint64_t sent) {
  double p50 = 0, p99 = 0;

  if (s->n > 0) {
    qsort(s->ns, s->n, sizeof(*s->ns), by_value);
    p50 = (double)s->ns[s->n / 2] / 1e6;
    p99 = (double)s->ns[(s->n * 99) / 100] / 1e6;
  }
  printf("%s_p50: %.3f ms\n", name, p50);
  printf("%s_p99: %.3f ms\n", name, p99);
  printf("%s_received: %zu of %llu\n", name, s->n, (unsigned long long)sent);
}

/* ------------------------------------------------------------ latency */

struct setter {
  atr_handle h;
  uint64_t sent;
};

static void set_now(void *arg) {
  struct setter *st = arg;
  atr_scalar v = {.i = now_ns()};

  if (atr_value_set(&st->h, v, 0, NULL) == 0)
    st->sent++;
}

struct raw_pub {
  nng_socket sock;
  uint64_t sent;
};

static void pub_now(void *arg) {
  struct raw_pub *p = arg;
  char msg[160];
  /* About the size of a gateway event, same topic and shape. */
  int n = snprintf(msg, sizeof(msg),
                   "value/" BENCH_NAME "/set {\"seq\":%" PRIu64
                   ",\"kind\":\"value\",\"name\":\"" BENCH_NAME
                   "\",\"op\":\"set\",\"type\":\"q\",\"value\":%" PRId64
                   ",\"version\":%" PRIu64 "}",
                   p->sent + 1, now_ns(), p->sent + 1);

  if (nng_send(p->sock, msg, (size_t)n, 0) == 0)
    p->sent++;
}

/* The URL of a bare pub socket on the same transport as events_url. */
static void raw_url(const char *events_url, char *out, size_t cap) {
  if (strncmp(events_url, "ipc://", 6) == 0)
    snprintf(out, cap, "ipc:///tmp/atrium-evbench-raw-%d.ipc", (int)getpid());
  else
    snprintf(out, cap, "tcp://127.0.0.1:0");
}

static int latency(int argc, char **argv) {
  const char *url;
  unsigned port;
  double rate = 10000, seconds = 3;
  struct samples nng_s = {0}, sse_s = {0}, raw_s = {0};
  struct samples *both[] = {&nng_s, &sse_s}, *raw_only[] = {&raw_s};
  struct nng_rx nrx, rrx;
  struct sse_rx srx;
  struct setter st;
  struct raw_pub rp;
  atr_store *store = NULL;
  pthread_t t1, t2, t3;
  char rurl[256], bound[300];
  nng_listener l;
  int rv, bp;

  if (argc < 3)
    return bench_fail("latency", "EVENTS_URL HTTP_PORT STORE [RATE] [SECONDS]");
  url = argv[0];
  port = (unsigned)atoi(argv[1]);
  if (argc > 3)
    rate = atof(argv[3]);
  if (argc > 4)
    seconds = atof(argv[4]);
  nng_s.ns = calloc(MAX_SAMPLES, sizeof(int64_t));
  sse_s.ns = calloc(MAX_SAMPLES, sizeof(int64_t));
  raw_s.ns = calloc(MAX_SAMPLES, sizeof(int64_t));
  if (!nng_s.ns || !sse_s.ns || !raw_s.ns)
    return bench_fail("latency", "out of memory");

  if ((rv = atr_store_open(argv[2], NULL, &store)) != 0)
    return bench_fail(argv[2], atr_strerror(rv));
  rv = atr_value_open(store, BENCH_NAME, 'q', ATR_CREATE, NULL, &st.h);
  if (rv < 0)
    return bench_fail(BENCH_NAME, atr_strerror(rv));
  st.sent = 0;

  /* Through atriumd. */
  if (sub_open(&nrx.sock, url, "value/" BENCH_NAME "/") != 0)
    return 1;
  nrx.s = &nng_s;
  srx.fd = sse_open(port, "/v1/events?topics=value/" BENCH_NAME "/", 0);
  if (srx.fd < 0)
    return bench_fail("SSE", strerror(errno));
  srx.s = &sse_s;
  pthread_create(&t1, NULL, nng_reader, &nrx);
  pthread_create(&t2, NULL, sse_reader, &srx);
  if (warm_up(set_now, &st, both, 2) != 0)
    return bench_fail("latency", "no events came through atriumd");
  st.sent = 0;
  atomic_store(&bench_from, now_ns());
  paced(rate, seconds, set_now, &st);
  usleep(300000); /* the last events' way through */
  atomic_store(&bench_stop, 1);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  nng_close(nrx.sock);
  close(srx.fd);
  report("event_latency_nng", &nng_s, st.sent);
  report("event_latency_sse", &sse_s, st.sent);
  fflush(stdout);

  /* Bare nng, same transport, same rate. */
  atomic_store(&bench_stop, 0);
  atomic_store(&bench_from, 0);
  raw_url(url, rurl, sizeof(rurl));
  if ((rv = nng_pub0_open(&rp.sock)) != 0 ||
      (rv = nng_socket_set_int(rp.sock, NNG_OPT_SENDBUF, 1024)) != 0 ||
      (rv = nng_listener_create(&l, rp.sock, rurl)) != 0 ||
      (rv = nng_listener_start(l, 0)) != 0)
    return bench_fail(rurl, nng_strerror(rv));
  if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &bp) == 0)
    snprintf(bound, sizeof(bound), "tcp://127.0.0.1:%d", bp);
  else
    snprintf(bound, sizeof(bound), "%s", rurl);
  rp.sent = 0;
  if (sub_open(&rrx.sock, bound, "value/" BENCH_NAME "/") != 0)
    return 1;
  rrx.s = &raw_s;
  pthread_create(&t3, NULL, nng_reader, &rrx);
  if (warm_up(pub_now, &rp, raw_only, 1) != 0)
    return bench_fail("latency", "no message came through bare nng");
  rp.sent = 0;
  atomic_store(&bench_from, now_ns());
  paced(rate, seconds, pub_now, &rp);
  usleep(300000);
  atomic_store(&bench_stop, 1);
  pthread_join(t3, NULL);
  nng_close(rrx.sock);
  nng_close(rp.sock);
  if (strncmp(rurl, "ipc://", 6) == 0)
    unlink(rurl + 6);
  report("nng_raw_latency", &raw_s, rp.sent);

  atr_store_close(store);
  free(nng_s.ns);
  free(sse_s.ns);
  free(raw_s.ns);
  return 0;
}

/* -------------------------------------------------------------- stall */

static int stall(int argc, char **argv) {
  int fd;

  if (argc != 1)
    return bench_fail("stall", "HTTP_PORT");
  fd = sse_open((unsigned)atoi(argv[0]), "/v1/events", 2048);
  if (fd < 0)
    return bench_fail("SSE", strerror(errno));
  printf("stalled\n");
  fflush(stdout);
  for (;;)
    pause(); /* never reads; ends when killed */
}

/* --------------------------------------------------------------- wake */

#define WAKE_NAME "evbench.wake"

/* A connected TCP socket to 127.0.0.1:port, or -1. */
static int tcp_open(unsigned port) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Reads one whole answer into buf (NUL-terminated): an HTTP response
 * with its Content-Length body, or a RESP reply of BLPOP (an array of
 * two bulk strings, the item last). Returns its length or -1. */
static ssize_t read_answer(int fd, char *buf, size_t cap, int http) {
  size_t len = 0;

  for (;;) {
    ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
    if (k <= 0)
      return -1;
    len += (size_t)k;
    buf[len] = 0;
    if (http) {
      const char *end = strstr(buf, "\r\n\r\n");
      const char *cl = strcasestr(buf, "content-length:");
      if (end != NULL && cl != NULL &&
          len >= (size_t)(end + 4 - buf) + strtoull(cl + 15, NULL, 10))
        return (ssize_t)len;
    } else if (len >= 4 && strcmp(buf + len - 2, "\r\n") == 0) {
      /* *2 $len key $len item: five CRLF-ended lines */
      int lines = 0;
      for (size_t i = 0; i + 1 < len; i++)
        lines += buf[i] == '\r' && buf[i + 1] == '\n';
      if (lines >= 5)
        return (ssize_t)len;
    }
    if (len + 1 >= cap)
      return -1;
  }
}

/* The child: on each byte from go, notes the time and puts it. */
static int wake_putter(int go, int redis, unsigned port, const char *store) {
  atr_store *st = NULL;
  atr_handle h;
  int fd = -1;
  char c, text[32], cmd[128], reply[64];

  if (redis) {
    if ((fd = tcp_open(port)) < 0)
      return bench_fail("wake", "cannot reach redis");
  } else {
    atr_store_opts o;
    atr_store_opts_init(&o);
    o.open_only = 1;
    if (atr_store_open(store, &o, &st) != 0 ||
        atr_queue_open(st, WAKE_NAME, ATR_CREATE, NULL, &h) < 0)
      return bench_fail("wake", "cannot open the queue");
  }
  while (read(go, &c, 1) == 1) {
    int n = snprintf(text, sizeof text, "%" PRId64, now_ns());
    if (redis) {
      int m = snprintf(cmd, sizeof cmd,
                       "*3\r\n$5\r\nLPUSH\r\n$%zu\r\n%s\r\n$%d\r\n%s\r\n",
                       strlen(WAKE_NAME), WAKE_NAME, n, text);
      if (send_all(fd, cmd, (size_t)m) != 0 ||
          recv(fd, reply, sizeof reply, 0) <= 0)
        return bench_fail("wake", "LPUSH failed");
    } else if (atr_queue_put(&h, text, (size_t)n, 0) != 0) {
      return bench_fail("wake", "put failed");
    }
  }
  atr_store_close(st);
  return 0;
}

static int wake(int argc, char **argv) {
  int redis, go[2], fd, status;
  unsigned port;
  size_t n;
  pid_t child;
  struct samples s = {0};
  char req[256], buf[4096];
  int reqlen;

  if (argc < 2 || (strcmp(argv[0], "redis") != 0 && argc < 3))
    return bench_fail("wake",
                      "usage: wake atrium PORT STORE [N] | redis PORT [N]");
  redis = strcmp(argv[0], "redis") == 0;
  port = (unsigned)atoi(argv[1]);
  n = (size_t)(argc > 3 - redis ? atol(argv[3 - redis]) : 2000);
  if (n == 0 || n > MAX_SAMPLES || (s.ns = calloc(n, sizeof *s.ns)) == NULL)
    return bench_fail("wake", "bad count");
  if (redis)
    reqlen = snprintf(req, sizeof req,
                      "*3\r\n$5\r\nBLPOP\r\n$%zu\r\n%s\r\n$1\r\n5\r\n",
                      strlen(WAKE_NAME), WAKE_NAME);
  else
    reqlen = snprintf(req, sizeof req,
                      "POST /v1/queues/" WAKE_NAME "/pop?timeout=5 HTTP/1.1\r\n"
                      "Host: 127.0.0.1:%u\r\nContent-Length: 0\r\n\r\n",
                      port);
  if ((fd = tcp_open(port)) < 0 || pipe(go) != 0)
    return bench_fail("wake", "cannot connect");
  if (!redis) { /* the queue, before the child opens it */
    const char put[] = "PUT /v1/queues/" WAKE_NAME " HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
    if (send_all(fd, put, sizeof put - 1) != 0 ||
        read_answer(fd, buf, sizeof buf, 1) < 0)
      return bench_fail("wake", "cannot create the queue");
  }
  if ((child = fork()) < 0)
    return bench_fail("wake", "fork failed");
  if (child == 0) {
    close(go[1]);
    _exit(wake_putter(go[0], redis, port, redis ? NULL : argv[2]));
  }
  close(go[0]);
  for (size_t i = 0; i < n; i++) {
    struct timespec park = {0, 2000000};
    const char *item;
    if (send_all(fd, req, (size_t)reqlen) != 0)
      return bench_fail("wake", "send failed");
    nanosleep(&park, NULL);
    if (write(go[1], "", 1) != 1 ||
        read_answer(fd, buf, sizeof buf, !redis) < 0)
      return bench_fail("wake", "no answer");
    int64_t t1 = now_ns();
    /* the item is the last number of the answer */
    item = buf + strlen(buf);
    while (item > buf && (item[-1] < '0' || item[-1] > '9'))
      item--;
    while (item > buf && item[-1] >= '0' && item[-1] <= '9')
      item--;
    int64_t t0 = strtoll(item, NULL, 10);
    if (t0 <= 0 || t0 > t1)
      return bench_fail("wake", "answer without the item");
    s.ns[s.n++] = t1 - t0;
  }
  close(go[1]);
  close(fd);
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return bench_fail("wake", "the putter failed");
  qsort(s.ns, s.n, sizeof *s.ns, by_value);
  printf("%s_wake_p50: %.1f us\n", redis ? "redis_blpop" : "http_pop_parked",
         (double)s.ns[s.n / 2] / 1e3);
  printf("%s_wake_p99: %.1f us\n", redis ? "redis_blpop" : "http_pop_parked",
         (double)s.ns[(s.n * 99) / 100] / 1e3);
  free(s.ns);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "latency") == 0)
    return latency(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "stall") == 0)
    return stall(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "wake") == 0)
    return wake(argc - 2, argv + 2);
  fprintf(stderr, "usage: events_bench latency|stall|wake ...\n");
  return 2;
}
