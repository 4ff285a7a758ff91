/*
 * sync_tool.c - a C process on the other side of the gateway's lock
 * tests: it takes the same locks through libatrium that HTTP clients
 * take through atriumd.
 *
 *   sync_tool hold PATH LOCK
 *       acquires LOCK (created if missing; waits for ever), prints
 *       "held FENCE RESULT" (RESULT: 0, or 2 when abandoned), then waits
 *       for a line on stdin (or its end) and releases; prints "released".
 *   sync_tool acquire PATH LOCK TIMEOUT
 *       acquires LOCK waiting up to TIMEOUT seconds; prints "acquired
 *       FENCE SECONDS_WAITED" and releases, or prints "timeout".
 *   sync_tool incr PATH LOCK ARRAY INDEX N
 *       N times: acquires LOCK, reads ARRAY[INDEX] (type q), writes it
 *       back plus one, releases. Prints "done".
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atrium.h"

static int fail(const char *what, int rv) {
  fprintf(stderr, "sync_tool: %s: %s\n", what, atr_strerror(rv));
  return 1;
}

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int open_lock(const char *path, const char *name, atr_store **s,
                     atr_handle *h) {
  int rv;

  if ((rv = atr_store_open(path, NULL, s)) != 0)
    return fail("atr_store_open", rv);
  if ((rv = atr_lock_open(*s, name, ATR_CREATE, 0, h)) < 0)
    return fail("atr_lock_open", rv);
  return 0;
}

static int hold(const char *path, const char *name) {
  atr_store *s;
  atr_handle h;
  atr_grant g;
  char line[64];
  int rv;

  if (open_lock(path, name, &s, &h) != 0)
    return 1;
  if ((rv = atr_lock_acquire(&h, -1, &g)) < 0)
    return fail("atr_lock_acquire", rv);
  printf("held %llu %d\n", (unsigned long long)g.fence, rv);
  fflush(stdout);
  if (fgets(line, sizeof(line), stdin) == NULL) {
    /* stdin closed: release all the same */
  }
  if ((rv = atr_lock_release(&h)) != 0)
    return fail("atr_lock_release", rv);
  printf("released\n");
  atr_store_close(s);
  return 0;
}

static int acquire(const char *path, const char *name, double timeout) {
  atr_store *s;
  atr_handle h;
  atr_grant g;
  double t0 = now();
  int rv;

  if (open_lock(path, name, &s, &h) != 0)
    return 1;
  rv = atr_lock_acquire(&h, timeout, &g);
  if (rv == ATR_ETIMEDOUT) {
    printf("timeout\n");
  } else if (rv < 0) {
    return fail("atr_lock_acquire", rv);
  } else {
    printf("acquired %llu %.3f\n", (unsigned long long)g.fence, now() - t0);
    if ((rv = atr_lock_release(&h)) != 0)
      return fail("atr_lock_release", rv);
  }
  atr_store_close(s);
  return 0;
}

static int incr(const char *path, const char *name, const char *array,
                int64_t index, long n) {
  atr_store *s;
  atr_handle h, a;
  int rv;

  if (open_lock(path, name, &s, &h) != 0)
    return 1;
  if ((rv = atr_array_open(s, array, 'q', 0, 0, NULL, &a)) < 0)
    return fail("atr_array_open", rv);
  for (long i = 0; i < n; i++) {
    atr_scalar v;
    uint64_t got;
    if ((rv = atr_lock_acquire(&h, -1, NULL)) < 0)
      return fail("atr_lock_acquire", rv);
    if ((rv = atr_array_get(&a, index, index + 1, &v, 1, &got, NULL)) != 0)
      return fail("atr_array_get", rv);
    v.i++;
    if ((rv = atr_array_set(&a, index, &v, 1, 0, NULL)) != 0)
      return fail("atr_array_set", rv);
    if ((rv = atr_lock_release(&h)) != 0)
      return fail("atr_lock_release", rv);
  }
  printf("done\n");
  atr_store_close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "hold") == 0)
    return hold(argv[2], argv[3]);
  if (argc == 5 && strcmp(argv[1], "acquire") == 0)
    return acquire(argv[2], argv[3], atof(argv[4]));
  if (argc == 7 && strcmp(argv[1], "incr") == 0)
    return incr(argv[2], argv[3], argv[4], atoll(argv[5]), atol(argv[6]));
  fprintf(stderr, "usage: sync_tool hold|acquire|incr ...\n");
  return 1;
}
