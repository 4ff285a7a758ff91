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

/* The longest wait the kernel is asked for: a century. */
#define OS_WAIT_MAX (100.0 * 365 * 86400)

double atr__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t atr__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * ATR__NS + ts.tv_nsec;
}

int64_t atr__deadline_ns(double timeout) {
  if (timeout < 0)
    return -1;
  if (timeout > OS_WAIT_MAX)
    timeout = OS_WAIT_MAX;
  return atr__now_ns() + (int64_t)(timeout * 1e9);
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

/* An absolute CLOCK_MONOTONIC time for the kernel. A wait for ever still
 * gets one (a century ahead): a futex wait with a timeout is never
 * restarted after a signal handler ran, SA_RESTART or not, so every wait
 * of the library can answer ATR_EINTR. */
static struct timespec os_abs_time(int64_t deadline_ns) {
  struct timespec ts;
  if (deadline_ns < 0)
    deadline_ns = atr__now_ns() + (int64_t)OS_WAIT_MAX * ATR__NS;
  ts.tv_sec = (time_t)(deadline_ns / ATR__NS);
  ts.tv_nsec = (long)(deadline_ns % ATR__NS);
  return ts;
}

static int os_wait_result(long rv) {
  if (rv >= 0 || errno == EAGAIN)
    return 0;
  if (errno == EINTR)
    return ATR_EINTR;
  if (errno == ETIMEDOUT)
    return ATR_ETIMEDOUT;
  return 0; /* anything else: look again */
}

int atr__futex_wait_until(_Atomic uint32_t *word, uint32_t val,
                          int64_t deadline_ns) {
  struct timespec ts = os_abs_time(deadline_ns);
  long rv = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, val, &ts,
                    NULL, FUTEX_BITSET_MATCH_ANY);
  return os_wait_result(rv);
}

int atr__futex_wait(_Atomic uint32_t *word, uint32_t val, double timeout) {
  if (timeout == 0)
    return ATR_ETIMEDOUT;
  return atr__futex_wait_until(word, val, atr__deadline_ns(timeout));
}

void atr__futex_wake(_Atomic uint32_t *word) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void atr__futex_wake_one(_Atomic uint32_t *word) {
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* struct futex_waitv of Linux 5.16, spelt out: older headers lack it. */
struct os_waitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
#define OS_SYS_FUTEX_WAITV 449
#define OS_FUTEX2_SIZE_U32 0x02u /* shared: no FUTEX2_PRIVATE */

int atr__futex_waitv(_Atomic uint32_t *const *words, const uint32_t *vals,
                     size_t n, int64_t deadline_ns) {
  struct os_waitv w[ATR__WAITV_MAX];
  int64_t until = deadline_ns;
  bool capped = false;
  if (n == 0)
    return ATR_EINVAL;
  if (n > ATR__WAITV_MAX) {
    /* The kernel takes 128 words at most: watch the first 128 and look
     * again every 20 ms for the deaths of the others. */
    n = ATR__WAITV_MAX;
    int64_t slice = atr__now_ns() + ATR__WAITV_SLICE_NS;
    if (until < 0 || until > slice) {
      until = slice;
      capped = true;
    }
  }
  for (size_t i = 0; i < n; i++)
    w[i] = (struct os_waitv){vals[i], (uint64_t)(uintptr_t)words[i],
                             OS_FUTEX2_SIZE_U32, 0};
  struct timespec ts = os_abs_time(until);
  long rv = syscall(OS_SYS_FUTEX_WAITV, w, (unsigned)n, 0u, &ts,
                    (int)CLOCK_MONOTONIC);
  if (rv < 0 && errno == ENOSYS) {
    /* Before Linux 5.16: the first word only, 20 ms at a time. */
    int64_t slice = atr__now_ns() + ATR__WAITV_SLICE_NS;
    if (until < 0 || until > slice) {
      until = slice;
      capped = true;
    }
    int rc = atr__futex_wait_until(words[0], vals[0], until);
    return rc == ATR_ETIMEDOUT && capped ? 0 : rc;
  }
  int rc = os_wait_result(rv);
  return rc == ATR_ETIMEDOUT && capped ? 0 : rc;
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

int atr__mutex_lock_for(pthread_mutex_t *m, double seconds,
                        void (*recover)(void *), void *arg) {
  return os_mutex_lock(m, seconds, recover, arg);
}

int atr__mutex_try(pthread_mutex_t *m, void (*recover)(void *), void *arg) {
  return os_mutex_lock(m, 0, recover, arg);
}

void atr__mutex_unlock(pthread_mutex_t *m) {
  pthread_mutex_unlock(m);
}
