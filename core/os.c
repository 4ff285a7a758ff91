/*
 * os.c - the operating system underneath: monotonic time, futexes on the
 * shared mapping (never the private flag: waiters and wakers are in
 * different processes), and robust process-shared mutexes.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

double atr__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double atr__deadline(double timeout) {
  return timeout < 0 ? -1.0 : atr__now() + timeout;
}

double atr__remaining(double deadline) {
  if (deadline < 0)
    return -1.0;
  double left = deadline - atr__now();
  return left > 0 ? left : 0;
}

void atr__futex_wait(_Atomic uint32_t *word, uint32_t val, double timeout) {
  struct timespec ts, *tsp = NULL;
  if (timeout == 0)
    return;
  if (timeout > 0) {
    if (timeout > 1e9)
      timeout = 1e9;
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    tsp = &ts;
  }
  /* EINTR, EAGAIN (the word moved) and ETIMEDOUT all mean: look again. */
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, tsp, NULL, 0);
}

void atr__futex_wake(_Atomic uint32_t *word) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

uint32_t atr__ec_prepare(_Atomic uint32_t *ec) {
  return atomic_fetch_or(ec, ATR__EC_WAITERS) | ATR__EC_WAITERS;
}

void atr__ec_signal(_Atomic uint32_t *ec, bool force) {
  uint32_t old = atomic_load_explicit(ec, memory_order_relaxed);
  for (;;) {
    if (!force && !(old & ATR__EC_WAITERS))
      return;
    uint32_t next = (old + 1) & ~ATR__EC_WAITERS;
    if (atomic_compare_exchange_weak(ec, &old, next))
      break;
  }
  atr__futex_wake(ec);
}

int atr__mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t attr;
  int rc = ATR_ESYS;
  if (pthread_mutexattr_init(&attr) != 0)
    return ATR_ESYS;
  /* NORMAL, not ERRORCHECK or RECURSIVE: those compare thread ids, which
   * differ across PID namespaces (containers sharing a store). */
  if (pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_NORMAL) == 0 &&
      pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
      pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
      pthread_mutex_init(m, &attr) == 0)
    rc = 0;
  pthread_mutexattr_destroy(&attr);
  return rc;
}

/* This thread's patience with a store lock's holder (seconds, < 0: for
 * ever); see atr_set_lock_patience. Per thread, so that one server thread
 * that must not hang sets it without changing what a library user's
 * other threads do. */
static _Thread_local double os_patience = -1.0;

ATR__EXPORT void atr_set_lock_patience(double seconds) {
  os_patience = seconds != seconds ? -1.0 : seconds; /* NaN: for ever */
}

/* Takes m within patience p: 0, EOWNERDEAD, or EBUSY / ETIMEDOUT when
 * the holder keeps it. */
static int os_lock_patiently(pthread_mutex_t *m, double p) {
  struct timespec until;

  if (p < 0)
    return pthread_mutex_lock(m);
  if (p == 0)
    return pthread_mutex_trylock(m);
  if (p > 1e9)
    p = 1e9;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)p;
  until.tv_nsec += (long)((p - (double)(time_t)p) * 1e9);
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  /* CLOCK_MONOTONIC: a clock step must neither cut nor stretch it. */
  return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &until);
}

/* atr__mutex_lock and atr__mutex_try, with patience p. */
static int os_mutex_lock(pthread_mutex_t *m, double p, void (*recover)(void *),
                         void *arg) {
  int rc = os_lock_patiently(m, p);
  if (rc == EBUSY || rc == ETIMEDOUT)
    return ATR_ELOCKED; /* a live holder that does not let go */
  if (rc == EOWNERDEAD) {
    /* The owner died inside its critical section: repair what it
     * guarded first, then declare the lock usable again. */
    if (recover != NULL)
      recover(arg);
    pthread_mutex_consistent(m);
    return 0;
  }
  return rc == 0 ? 0 : ATR_ESYS;
}

int atr__mutex_lock(pthread_mutex_t *m, void (*recover)(void *), void *arg) {
  return os_mutex_lock(m, os_patience, recover, arg);
}

int atr__mutex_try(pthread_mutex_t *m, void (*recover)(void *), void *arg) {
  return os_mutex_lock(m, 0, recover, arg);
}

void atr__mutex_unlock(pthread_mutex_t *m) {
  pthread_mutex_unlock(m);
}
