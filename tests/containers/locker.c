/* locker.c - the lock holder and the lock waiter of make
 * check-containers: each runs as the first process of a container of its
 * own (so in a PID namespace of its own, usually as pid 1), on the store
 * file that the containers share with atriumd's.
 *
 *   locker STORE NAME hold           takes the lock, then sleeps holding
 *                                    it until it is killed
 *   locker STORE NAME wait TIMEOUT   waits up to TIMEOUT seconds for the
 *                                    lock, then releases it and exits
 *
 * Opens STORE (it must exist: atriumd made it), gets or creates the plain
 * lock NAME, calls atr_lock_acquire once and prints one line:
 *
 *   pid=P tid=T result=R fence=F waited=S end=E
 *
 * P and T are the caller's pid and thread id in its own PID namespace, R
 * is "OK", "ABANDONED" (the last holder died holding the lock) or the
 * error's name (atr_errname), F the acquisition's fence (0 when none), S
 * the seconds the call took (CLOCK_MONOTONIC) and E the wall-clock time
 * it returned (CLOCK_REALTIME: the containers share the host's clock, so
 * the caller can put it beside the instant it killed the holder). Exits 0
 * when the lock was acquired (OK or ABANDONED), 1 otherwise, 2 on a usage
 * error. */
#include <atrium.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double locker_clock(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int locker_fail(const char *what, int rv, int err) {
  if (rv == ATR_ESYS && err != 0)
    fprintf(stderr, "locker: %s: %s: %s\n", what, atr_strerror(rv),
            strerror(err));
  else
    fprintf(stderr, "locker: %s: %s\n", what, atr_strerror(rv));
  return 1;
}

int main(int argc, char **argv) {
  atr_store_opts opts;
  atr_store *store = NULL;
  atr_handle lock;
  atr_grant grant = {0, 0, 0, 0};
  double timeout = -1, start, waited;
  int hold, rv;

  hold = argc == 4 && strcmp(argv[3], "hold") == 0;
  if (!hold && !(argc == 5 && strcmp(argv[3], "wait") == 0)) {
    fprintf(stderr, "usage: locker STORE NAME hold\n"
                    "       locker STORE NAME wait TIMEOUT\n");
    return 2;
  }
  if (!hold)
    timeout = strtod(argv[4], NULL);

  atr_store_opts_init(&opts);
  opts.open_only = 1;
  errno = 0;
  if ((rv = atr_store_open(argv[1], &opts, &store)) < 0)
    return locker_fail(argv[1], rv, errno);
  if ((rv = atr_lock_open(store, argv[2], ATR_CREATE, 0, &lock)) < 0) {
    atr_store_close(store);
    return locker_fail(argv[2], rv, errno);
  }
  start = locker_clock(CLOCK_MONOTONIC);
  rv = atr_lock_acquire(&lock, timeout, &grant);
  waited = locker_clock(CLOCK_MONOTONIC) - start;
  printf("pid=%ld tid=%ld result=%s fence=%" PRIu64 " waited=%.3f end=%.3f\n",
         (long)getpid(), (long)syscall(SYS_gettid),
         rv == ATR_ABANDONED ? "ABANDONED" : atr_errname(rv),
         rv >= 0 ? grant.fence : 0, waited, locker_clock(CLOCK_REALTIME));
  fflush(stdout);
  if (rv < 0) {
    atr_store_close(store);
    return 1;
  }
  if (hold)
    /* Held until SIGKILL: the kernel's robust list gives the lock back
     * (a container's pid 1 ignores the signals it has no handler for, so
     * only SIGKILL ends it, as docker kill sends). */
    for (;;)
      pause();
  /* The store must not be closed while this thread holds a lock of it. */
  if ((rv = atr_lock_release(&lock)) < 0) {
    atr_store_close(store);
    return locker_fail("release", rv, 0);
  }
  atr_store_close(store);
  return 0;
}
