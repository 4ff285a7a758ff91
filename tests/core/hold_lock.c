/*
 * hold_lock.c - a test helper (white-box: it includes core/internal.h) that
 * takes one of the store's internal locks as the library does, says so,
 * and stops itself while holding it, as a process paused by SIGSTOP,
 * `docker pause` or a debugger would. The gateway's tests
 * (tests/gateway/test_busy.py, test_sync.py) use it; it is no part of
 * the library.
 *
 *   hold_lock STORE array|midcopy|put|get|barrier|dict|store NAME
 *
 * Prints "held" once the lock is held, raises SIGSTOP, and after SIGCONT
 * lets go, prints "released" and exits 0. midcopy holds an array's lock
 * with its sequence odd, as a writer stopped in the middle of copying a
 * slice into place: then even lock-free readers need the lock. barrier
 * holds a barrier's record lock (every arrival, poll and leave needs
 * it). Exits 2 on a bad argument or a failed open.
 */
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  atr_store_opts opts;
  atr_store *s;
  atr_handle h;
  pthread_mutex_t *m;
  _Atomic uint64_t *seq = NULL;
  int rc;

  if (argc != 4) {
    fprintf(stderr,
            "usage: hold_lock STORE array|midcopy|put|get|barrier|dict|store "
            "NAME\n");
    return 2;
  }
  atr_store_opts_init(&opts);
  opts.open_only = 1;
  if ((rc = atr_store_open(argv[1], &opts, &s)) != 0) {
    fprintf(stderr, "hold_lock: %s: %s\n", argv[1], atr_strerror(rc));
    return 2;
  }
  if (strcmp(argv[2], "store") == 0) {
    m = &s->hdr->lock;
    rc = atr__store_lock(s);
  } else {
    int array =
        strcmp(argv[2], "array") == 0 || strcmp(argv[2], "midcopy") == 0;
    int barrier = strcmp(argv[2], "barrier") == 0;
    int dict = strcmp(argv[2], "dict") == 0;
    rc = array     ? atr_array_open(s, argv[3], 0, 0, 0, NULL, &h)
         : barrier ? atr_barrier_open(s, argv[3], 0, 0, &h)
         : dict    ? atr_dict_open(s, argv[3], 0, &h)
                   : atr_queue_open(s, argv[3], 0, NULL, &h);
    if (rc != 0) {
      fprintf(stderr, "hold_lock: %s: %s\n", argv[3], atr_strerror(rc));
      return 2;
    }
    struct atr__obj *o = h.rec;
    if (strcmp(argv[2], "put") == 0) {
      m = &o->u.q.put_lock;
      rc = atr__mutex_lock(m, NULL, NULL);
    } else if (array || barrier || dict || strcmp(argv[2], "get") == 0) {
      m = &o->lock;
      rc = atr__record_lock(s, o);
      if (rc == 0 && strcmp(argv[2], "midcopy") == 0) {
        seq = &o->u.a.seq;
        atomic_fetch_add(seq, 1); /* odd: a copy in progress */
      }
    } else {
      fprintf(stderr, "hold_lock: no lock kind %s\n", argv[2]);
      return 2;
    }
  }
  if (rc != 0) {
    fprintf(stderr, "hold_lock: %s\n", atr_strerror(rc));
    return 2;
  }
  printf("held\n");
  fflush(stdout);
  raise(SIGSTOP);
  if (seq != NULL)
    atomic_fetch_add(seq, 1); /* the copy is over (nothing changed) */
  atr__mutex_unlock(m);
  printf("released\n");
  fflush(stdout);
  atr_store_close(s);
  return 0;
}
