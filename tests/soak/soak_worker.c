/*
 * soak_worker.c - the local C processes of `make soak` (tests/soak/soak.py),
 * on the public API only. Each runs until SIGTERM (then exits 0) and keeps
 * what it has had acknowledged in a ledger the driver reads even after a
 * kill -9: a small file mapped MAP_SHARED (the page cache keeps what was
 * stored), or for a getter a log with one line per item taken.
 *
 *   soak_worker STORE add VALUE LEDGER          adds 1; [0] acked adds
 *   soak_worker STORE put QUEUE LEDGER PREFIX   puts "PREFIX-<n>", n from
 *                                               1; [0] the last acked n;
 *                                               SOAK_PUT_RATE puts a second
 *                                               at most (default 2000, 0:
 *                                               no limit)
 *   soak_worker STORE get QUEUE LOG             takes up to 16 at a time;
 *                                               a line per item, written
 *                                               after the get returned
 *   soak_worker STORE slice ARRAY LEDGER        writes the whole array as
 *                                               one number k, k = 1, 2, ..
 *                                               and reads it back; [0]
 *                                               writes, [1] torn reads
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "atrium.h"

#define SLICE_LEN 64
#define SW_PUT_RATE 2000.0

static double sw_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until *next, then moves it one period on. A putter that fell
 * behind (SIGSTOPped, or a full queue) starts over from now rather than
 * catching up in a burst. */
static void sw_pace(double *next, double period) {
  double now = sw_now();
  if (now < *next) {
    double d = *next - now;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL); /* EINTR: SIGTERM, the loop sees sw_stop */
  } else if (now > *next + 0.1) {
    *next = now;
  }
  *next += period;
}

/* SOAK_PUT_RATE (puts a second per putter), SW_PUT_RATE if unset; 0 or
 * less: no pace (period 0). */
static double sw_put_period(void) {
  const char *env = getenv("SOAK_PUT_RATE");
  double rate = env && *env ? strtod(env, NULL) : SW_PUT_RATE;
  return rate > 0 ? 1.0 / rate : 0;
}

static volatile sig_atomic_t sw_stop;

static void sw_on_term(int sig) {
  (void)sig;
  sw_stop = 1;
}

static int sw_fail(const char *what, int rc) {
  fprintf(stderr, "soak_worker: %s: %s\n", what, atr_strerror(rc));
  return 1;
}

/* The ledger file, mapped: counters that survive a kill -9. */
static volatile uint64_t *sw_ledger(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  void *p;
  if (fd < 0 || ftruncate(fd, 4096) != 0)
    return NULL;
  p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return p == MAP_FAILED ? NULL : p;
}

static int sw_add(atr_store *s, const char *name, volatile uint64_t *ledger) {
  atr_handle h;
  int rc = atr_value_open(s, name, 0, 0, NULL, &h);
  if (rc != 0)
    return sw_fail(name, rc);
  while (!sw_stop) {
    if ((rc = atr_value_add(&h, (atr_scalar){.i = 1}, NULL, NULL)) != 0)
      return sw_fail("add", rc);
    ledger[0]++; /* acknowledged */
  }
  return 0;
}

static int sw_put(atr_store *s, const char *name, volatile uint64_t *ledger,
                  const char *prefix) {
  atr_handle h;
  char item[128];
  double period = sw_put_period(), next = sw_now();
  int rc = atr_queue_open(s, name, 0, NULL, &h);
  if (rc != 0)
    return sw_fail(name, rc);
  while (!sw_stop) {
    uint64_t n = ledger[0] + 1;
    if (period > 0)
      sw_pace(&next, period);
    int len = snprintf(item, sizeof item, "\"%s-%llu\"", prefix,
                       (unsigned long long)n);
    rc = atr_queue_put(&h, item, (size_t)len, 0.5);
    if (rc == ATR_EFULL || rc == ATR_EINTR)
      continue;
    if (rc != 0)
      return sw_fail("put", rc);
    ledger[0] = n;
  }
  return 0;
}

static int sw_get(atr_store *s, const char *name, const char *log_path) {
  atr_handle h;
  atr_items items = {0};
  int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  int rc = atr_queue_open(s, name, 0, NULL, &h);
  if (fd < 0)
    return sw_fail(log_path, ATR_ESYS);
  if (rc != 0)
    return sw_fail(name, rc);
  while (!sw_stop) {
    items.count = 0;
    rc = atr_queue_get_batch(&h, 16, 0.5, &items);
    if (rc == ATR_EEMPTY || rc == ATR_EINTR)
      continue;
    if (rc != 0)
      return sw_fail("get", rc);
    for (size_t i = 0; i < items.count; i++) {
      char line[160];
      size_t n = items.len[i] < 150 ? items.len[i] : 150;
      memcpy(line, items.data + items.off[i], n);
      line[n] = '\n';
      if (write(fd, line, n + 1) != (ssize_t)(n + 1))
        return sw_fail("log", ATR_ESYS);
    }
  }
  atr_items_free(&items);
  close(fd);
  return 0;
}

static int sw_slice(atr_store *s, const char *name, volatile uint64_t *ledger) {
  atr_scalar vals[SLICE_LEN], got[SLICE_LEN];
  atr_handle h;
  uint64_t n;
  int rc = atr_array_open(s, name, 0, 0, 0, NULL, &h);
  if (rc != 0)
    return sw_fail(name, rc);
  while (!sw_stop) {
    uint64_t k = ledger[0] + 1;
    for (int i = 0; i < SLICE_LEN; i++)
      vals[i].i = (int64_t)k;
    if ((rc = atr_array_set(&h, 0, vals, SLICE_LEN, 0, NULL)) != 0)
      return sw_fail("set", rc);
    ledger[0] = k;
    if ((rc = atr_array_get(&h, 0, SLICE_LEN, got, SLICE_LEN, &n, NULL)) != 0)
      return sw_fail("get", rc);
    for (int i = 1; i < SLICE_LEN; i++)
      if (got[i].i != got[0].i) {
        ledger[1]++;
        break;
      }
  }
  return 0;
}

int main(int argc, char **argv) {
  atr_store_opts opts;
  atr_store *s;
  volatile uint64_t *ledger = NULL;
  int rc;

  if (argc < 5) {
    fprintf(stderr, "usage: soak_worker STORE add|put|get|slice NAME FILE "
                    "[PREFIX]\n");
    return 2;
  }
  signal(SIGTERM, sw_on_term);
  atr_store_opts_init(&opts);
  opts.open_only = 1;
  if ((rc = atr_store_open(argv[1], &opts, &s)) != 0)
    return sw_fail(argv[1], rc);
  if (strcmp(argv[2], "get") != 0 && (ledger = sw_ledger(argv[4])) == NULL)
    return sw_fail(argv[4], ATR_ESYS);
  if (strcmp(argv[2], "add") == 0)
    rc = sw_add(s, argv[3], ledger);
  else if (strcmp(argv[2], "put") == 0 && argc == 6)
    rc = sw_put(s, argv[3], ledger, argv[5]);
  else if (strcmp(argv[2], "get") == 0)
    rc = sw_get(s, argv[3], argv[4]);
  else if (strcmp(argv[2], "slice") == 0)
    rc = sw_slice(s, argv[3], ledger);
  else
    rc = 2;
  atr_store_close(s);
  return rc;
}
