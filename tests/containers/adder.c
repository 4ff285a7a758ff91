/* adder.c - the application's C program of make check-containers: it
 * adds to a value through libatrium, directly on the store file that the
 * application container shares with atriumd's.
 *
 *   adder STORE NAME COUNT [PAUSE_MS [UNTIL_FILE]]
 *
 * Opens STORE (it must exist: atriumd made it), gets or creates the 64-bit
 * integer NAME, adds 1 to it COUNT times, PAUSE_MS milliseconds apart, then
 * goes on adding until UNTIL_FILE exists, if one is named, and prints
 * "NAME = VALUE after N adds". On the first failure it prints
 * atrium's message (and errno's, for a failed system call) and exits 1;
 * so exit 0 means that not one add failed, whatever happened to atriumd
 * meanwhile. */
#include <atrium.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int adder_fail(const char *what, int rv, int err) {
  if (rv == ATR_ESYS && err != 0)
    fprintf(stderr, "adder: %s: %s: %s\n", what, atr_strerror(rv),
            strerror(err));
  else
    fprintf(stderr, "adder: %s: %s\n", what, atr_strerror(rv));
  return 1;
}

int main(int argc, char **argv) {
  atr_store_opts opts;
  atr_store *store = NULL;
  atr_handle value;
  atr_scalar one = {.i = 1}, now = {.i = 0};
  struct timespec pause = {0, 0};
  const char *until = argc > 5 ? argv[5] : NULL;
  long count, i, pause_ms = 0;
  int rv;

  if (argc < 4 || argc > 6) {
    fprintf(stderr, "usage: adder STORE NAME COUNT [PAUSE_MS [UNTIL_FILE]]\n");
    return 2;
  }
  count = strtol(argv[3], NULL, 10);
  if (argc > 4)
    pause_ms = strtol(argv[4], NULL, 10);
  pause.tv_sec = pause_ms / 1000;
  pause.tv_nsec = (pause_ms % 1000) * 1000000L;

  atr_store_opts_init(&opts);
  opts.open_only = 1;
  /* A store of another user (the group-shared deployment) is opened
   * only when the program says it trusts those who may write it. */
  opts.shared = getenv("ADDER_SHARED") != NULL;
  errno = 0;
  if ((rv = atr_store_open(argv[1], &opts, &store)) < 0)
    return adder_fail(argv[1], rv, errno);
  if ((rv = atr_value_open(store, argv[2], 'q', ATR_CREATE, NULL, &value)) <
      0) {
    atr_store_close(store);
    return adder_fail(argv[2], rv, errno);
  }
  for (i = 0; i < count || (until != NULL && access(until, F_OK) != 0); i++) {
    errno = 0;
    if ((rv = atr_value_add(&value, one, &now, NULL)) < 0) {
      atr_store_close(store);
      return adder_fail("add", rv, errno);
    }
    if (pause_ms > 0)
      nanosleep(&pause, NULL);
  }
  printf("%s = %" PRId64 " after %ld adds\n", argv[2], now.i, i);
  atr_store_close(store);
  return 0;
}
