/*
 * ev_tool.c - helpers of the event tests: an nng subscriber that prints
 * what it gets, and libatrium writers that make many changes fast.
 *
 *   ev_tool sub URL [--recvbuf N] [PREFIX...]
 *       subscribes to the prefixes (none: everything), prints "ready"
 *       once dialled, then every message on a line of its own (flushed);
 *       runs until killed.
 *   ev_tool mkstore PATH FEED_ENTRIES
 *       creates a store whose change feed has only FEED_ENTRIES slots.
 *   ev_tool burst PATH N
 *       N times creates and deletes a value: 2N events that are never
 *       coalesced.
 *   ev_tool arrays PATH NAME N [PER_SECOND]
 *       N writes of the whole 256-element array NAME (type q; created if
 *       missing), at most PER_SECOND a second if given; prints its last
 *       version.
 *   ev_tool sse-first PATH PORT NAME N
 *       N times: opens GET /v1/events?topics=value/NAME/add on 127.0.0.1
 *       PORT, adds 1 to the value NAME (type q, created if missing) the
 *       moment the response's headers are in, and waits up to 2 s for
 *       that add's event; closes, pokes the value "poke" so the gateway
 *       notices nobody listens, and lets it go idle. Prints "missed M of
 *       N" (exit 0 even when M > 0).
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "atrium.h"

#define ARRAY_LEN 256

static int fail(const char *what, const char *why) {
  fprintf(stderr, "ev_tool: %s: %s\n", what, why);
  return 1;
}

static int sub(int argc, char **argv) {
  nng_socket s;
  int rv, n = 0, recvbuf = 0;

  if (argc < 1)
    return fail("sub", "URL missing");
  if ((rv = nng_sub0_open(&s)) != 0)
    return fail("nng_sub0_open", nng_strerror(rv));
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--recvbuf") == 0 && i + 1 < argc) {
      recvbuf = atoi(argv[++i]);
      continue;
    }
    rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, argv[i], strlen(argv[i]));
    if (rv != 0)
      return fail("subscribe", nng_strerror(rv));
    n++;
  }
  if (n == 0 && (rv = nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0)
    return fail("subscribe", nng_strerror(rv));
  if (recvbuf > 0 &&
      (rv = nng_socket_set_int(s, NNG_OPT_RECVBUF, recvbuf)) != 0)
    return fail("recvbuf", nng_strerror(rv));
  if ((rv = nng_dial(s, argv[0], NULL, 0)) != 0)
    return fail(argv[0], nng_strerror(rv));
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    char *msg = NULL;
    size_t len = 0;
    if ((rv = nng_recv(s, &msg, &len, NNG_FLAG_ALLOC)) != 0)
      return fail("nng_recv", nng_strerror(rv));
    fwrite(msg, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    nng_free(msg, len);
  }
}

static int mkstore(int argc, char **argv) {
  atr_store_opts o;
  atr_store *s;
  int rv;

  if (argc != 2)
    return fail("mkstore", "PATH FEED_ENTRIES");
  atr_store_opts_init(&o);
  o.feed_entries = (uint32_t)strtoul(argv[1], NULL, 10);
  if ((rv = atr_store_open(argv[0], &o, &s)) != 0)
    return fail(argv[0], atr_strerror(rv));
  atr_store_close(s);
  return 0;
}

static int burst(int argc, char **argv) {
  atr_store *s;
  atr_handle h;
  char name[32];
  long n;
  int rv;

  if (argc != 2)
    return fail("burst", "PATH N");
  if ((rv = atr_store_open(argv[0], NULL, &s)) != 0)
    return fail(argv[0], atr_strerror(rv));
  n = strtol(argv[1], NULL, 10);
  for (long i = 0; i < n; i++) {
    snprintf(name, sizeof(name), "burst.%ld", i % 64);
    if ((rv = atr_value_open(s, name, 'i', ATR_CREATE, NULL, &h)) < 0 ||
        (rv = atr_delete(s, name, ATR_VALUE)) != 0) {
      atr_store_close(s);
      return fail(name, atr_strerror(rv));
    }
  }
  atr_store_close(s);
  return 0;
}

static int arrays(int argc, char **argv) {
  atr_scalar vals[ARRAY_LEN];
  atr_store *s;
  atr_handle h;
  uint64_t ver = 0;
  struct timespec next;
  long n, rate = 0;
  int rv;

  if (argc != 3 && argc != 4)
    return fail("arrays", "PATH NAME N [PER_SECOND]");
  if (argc == 4)
    rate = strtol(argv[3], NULL, 10);
  clock_gettime(CLOCK_MONOTONIC, &next);
  if ((rv = atr_store_open(argv[0], NULL, &s)) != 0)
    return fail(argv[0], atr_strerror(rv));
  rv = atr_array_open(s, argv[1], 'q', ARRAY_LEN, ATR_CREATE, NULL, &h);
  if (rv < 0) {
    atr_store_close(s);
    return fail(argv[1], atr_strerror(rv));
  }
  n = strtol(argv[2], NULL, 10);
  for (long i = 0; i < n; i++) {
    if (rate > 0) {
      next.tv_nsec += 1000000000L / rate;
      if (next.tv_nsec >= 1000000000L) {
        next.tv_sec++;
        next.tv_nsec -= 1000000000L;
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    for (int k = 0; k < ARRAY_LEN; k++)
      vals[k].i = i * 1000000007LL + k; /* about 20 digits each */
    if ((rv = atr_array_set(&h, 0, vals, ARRAY_LEN, 0, &ver)) != 0) {
      atr_store_close(s);
      return fail(argv[1], atr_strerror(rv));
    }
  }
  printf("%llu\n", (unsigned long long)ver);
  atr_store_close(s);
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads from fd into buf (NUL-terminated, from *len on) until needle is
 * in it or the deadline passes; 1 if found. */
static int read_until(int fd, char *buf, size_t cap, size_t *len,
                      const char *needle, double deadline) {
  while (strstr(buf, needle) == NULL) {
    struct pollfd p = {fd, POLLIN, 0};
    double left = deadline - now_s();
    if (left <= 0 || *len + 1 >= cap)
      return 0;
    if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
      continue;
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    if (n <= 0)
      return 0;
    *len += (size_t)n;
    buf[*len] = 0;
  }
  return 1;
}

/* One trial of sse-first; 1 if the add's event came. */
static int sse_first_once(int port, const char *name, const atr_handle *v) {
  static char buf[1 << 16];
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  char req[256];
  size_t len = 0;
  atr_scalar one = {.i = 1}, got;
  int fd = socket(AF_INET, SOCK_STREAM, 0), hit = 0;

  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  buf[0] = 0;
  snprintf(req, sizeof req,
           "GET /v1/events?topics=value/%s/add HTTP/1.1\r\n"
           "Host: 127.0.0.1\r\n\r\n",
           name);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      write(fd, req, strlen(req)) == (ssize_t)strlen(req) &&
      read_until(fd, buf, sizeof buf, &len, "\r\n\r\n", now_s() + 5) &&
      strncmp(buf, "HTTP/1.1 200", 12) == 0 &&
      atr_value_add(v, one, &got, NULL) == 0) {
    char want[64];
    snprintf(want, sizeof want, "\"value\":%lld", (long long)got.i);
    hit = read_until(fd, buf, sizeof buf, &len, want, now_s() + 2);
  }
  if (fd >= 0)
    close(fd);
  return hit;
}

static int sse_first(int argc, char **argv) {
  atr_store *s;
  atr_handle v, poke;
  atr_scalar one = {.i = 1};
  struct timespec idle = {0, 30 * 1000 * 1000};
  long n, missed = 0;
  int rv;

  if (argc != 4)
    return fail("sse-first", "PATH PORT NAME N");
  if ((rv = atr_store_open(argv[0], NULL, &s)) != 0)
    return fail(argv[0], atr_strerror(rv));
  if ((rv = atr_value_open(s, argv[2], 'q', ATR_CREATE, NULL, &v)) < 0 ||
      (rv = atr_value_open(s, "poke", 'q', ATR_CREATE, NULL, &poke)) < 0) {
    atr_store_close(s);
    return fail(argv[2], atr_strerror(rv));
  }
  n = strtol(argv[3], NULL, 10);
  for (long i = 0; i < n; i++) {
    missed += !sse_first_once(atoi(argv[1]), argv[2], &v);
    nanosleep(&idle, NULL);
    atr_value_add(&poke, one, NULL, NULL);
    nanosleep(&idle, NULL);
  }
  printf("missed %ld of %ld\n", missed, n);
  atr_store_close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "sub") == 0)
    return sub(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "mkstore") == 0)
    return mkstore(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "burst") == 0)
    return burst(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "arrays") == 0)
    return arrays(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "sse-first") == 0)
    return sse_first(argc - 2, argv + 2);
  fprintf(stderr, "usage: ev_tool sub|mkstore|burst|arrays|sse-first ...\n");
  return 2;
}
