/*
 * growth_fill.c - the helper of bench/growth_bench.py: makes a store of
 * SIZE bytes at PATH holding N values (type 'q') called PREFIX0000000 to
 * PREFIX<N-1>, as a user with a counter per customer would, so the
 * gateway can be measured on a store that large. Prints "made N in S s".
 *
 *   growth_fill PATH SIZE N PREFIX
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atrium.h"

static double now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  atr_store_opts opts;
  atr_store *store = NULL;
  char name[ATR_NAME_MAX + 1];
  unsigned long n;
  double t0;
  int rv;

  if (argc != 5) {
    fprintf(stderr, "usage: growth_fill PATH SIZE N PREFIX\n");
    return 2;
  }
  memset(&opts, 0, sizeof(opts));
  opts.size = (size_t)strtoull(argv[2], NULL, 10);
  n = strtoul(argv[3], NULL, 10);
  if ((rv = atr_store_open(argv[1], &opts, &store)) != 0) {
    fprintf(stderr, "growth_fill: %s: %s\n", argv[1], atr_strerror(rv));
    return 1;
  }
  t0 = now();
  for (unsigned long i = 0; i < n; i++) {
    atr_handle h;
    snprintf(name, sizeof(name), "%s%07lu", argv[4], i);
    if ((rv = atr_value_open(store, name, 'q', ATR_CREATE, NULL, &h)) < 0) {
      fprintf(stderr, "growth_fill: %s: %s\n", name, atr_strerror(rv));
      atr_store_close(store);
      return 1;
    }
  }
  printf("made %lu in %.2f s\n", n, now() - t0);
  atr_store_close(store);
  return 0;
}
