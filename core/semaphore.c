/*
 * semaphore.c - counting semaphores, optionally bounded, with plain and
 * leased permits.
 *
 * The free permits (value) and the leased permits out share one 64-bit
 * word (struct atr__sem's state): a plain acquire or release is one CAS
 * on it, lock-free, and a bounded release checks value + leased + n
 * against the bound in that same CAS, so an over-release is refused
 * exactly and changes nothing. The low half is the futex word: a waiter
 * sets its bit 31 before it sleeps, and a release that finds it set
 * clears it and wakes every sleeper (the ones still short of a permit
 * set it again), so releases with nobody waiting make no system call.
 */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the futex word is the low half of the state's address");

#define SEM_WAITERS 0x80000000u
#define SEM_VALUE_MAX 0x7fffffffu
#define SEM_LEASED (UINT64_C(1) << 32)
#define SEM_DEAD (UINT64_C(1) << 63)
#define SEM_TABLE_MAX 1024u

static inline uint32_t sem_value(uint64_t state) {
  return (uint32_t)state & SEM_VALUE_MAX;
}
static inline uint32_t sem_leased(uint64_t state) {
  return (uint32_t)((state & ~SEM_DEAD) >> 32);
}
static inline _Atomic uint32_t *sem_word(struct atr__sem *m) {
  return (_Atomic uint32_t *)(void *)&m->state;
}

static struct atr__obj *sem_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_SEMAPHORE ? o : NULL;
}

/* The state with value + delta (delta may be negative) and the waiter
 * bit cleared; the caller checked the range. */
static inline uint64_t sem_with_value(uint64_t state, int64_t delta) {
  uint64_t high = state & ~(uint64_t)UINT32_MAX;
  return high | (uint32_t)((int64_t)sem_value(state) + delta);
}

struct sem_init_arg {
  uint64_t value, bound;
};

static int sem_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct sem_init_arg *si = arg;
  struct atr__sem *m = &o->u.sem;
  (void)s;
  atomic_store(&m->state, si->value);
  atomic_store(&m->pend_rel, 0);
  atomic_store(&m->waiters, 0);
  m->bound = si->bound;
  m->table_cap = 0;
  return 0;
}

ATR__EXPORT int atr_sem_open(atr_store *s, const char *name, int flags,
                             uint64_t value, uint64_t bound, atr_handle *h) {
  struct sem_init_arg si = {value, bound};
  if (value > SEM_VALUE_MAX || bound > SEM_VALUE_MAX ||
      (bound != 0 && value > bound))
    return ATR_EINVAL;
  return atr__open(s, name, ATR_SEMAPHORE, 0, flags, NULL, sem_init, &si, h);
}

/* Sleeps while the futex word is val, up to timeout seconds (< 0: for
 * ever): 0, ATR_EINTR when a signal handler ran, ATR_ETIMEDOUT. */
static int sem_sleep_on(_Atomic uint32_t *word, uint32_t val, double timeout) {
  struct timespec ts, *tsp = NULL;
  if (timeout > 0) {
    if (timeout > 1e9)
      timeout = 1e9;
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    tsp = &ts;
  }
  if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, tsp, NULL, 0) == 0)
    return 0;
  return errno == EINTR ? ATR_EINTR : errno == ETIMEDOUT ? ATR_ETIMEDOUT : 0;
}

/*
 * Called with no permit free (state as read): sets the waiter bit and
 * sleeps until the value moves, up to left seconds. 0 to look again,
 * ATR_EINTR.
 */
static int sem_sleep(struct atr__sem *m, uint64_t state, double left) {
  uint64_t want = state | SEM_WAITERS;
  if (!(state & SEM_WAITERS) &&
      !atomic_compare_exchange_strong(&m->state, &state, want))
    return 0; /* it moved: look again */
  atomic_fetch_add(&m->waiters, 1);
  int rc = sem_sleep_on(sem_word(m), (uint32_t)want, left);
  atomic_fetch_sub(&m->waiters, 1);
  return rc == ATR_EINTR ? rc : 0;
}

ATR__EXPORT int atr_sem_acquire(const atr_handle *h, double timeout,
                                uint64_t *value) {
  struct atr__obj *o = sem_of(h);
  double deadline = atr__deadline(timeout);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if (isnan(timeout))
    return ATR_EINVAL;
  struct atr__sem *m = &o->u.sem;
  uint64_t state = atomic_load(&m->state);
  for (;;) {
    if ((state & SEM_DEAD) || atomic_load(&o->id) != h->id)
      return ATR_ENOENT;
    if (sem_value(state) > 0) {
      if (!atomic_compare_exchange_weak(&m->state, &state,
                                        sem_with_value(state, -1) |
                                            (state & SEM_WAITERS)))
        continue;
      break;
    }
    double left = atr__remaining(deadline);
    if (left == 0)
      return ATR_ETIMEDOUT;
    if ((rc = sem_sleep(m, state, left)) != 0)
      return rc;
    state = atomic_load(&m->state);
  }
  __atomic_fetch_add(&o->version, 1, __ATOMIC_RELAXED);
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ACQUIRED, &o->pend);
  if (value != NULL)
    *value = sem_value(state) - 1;
  return 0;
}

/* Gives n permits back to value in one CAS, within the bound (free and
 * leased permits count); wakes the sleepers if one said so. */
static int sem_give(struct atr__obj *o, uint64_t n, uint64_t *value) {
  struct atr__sem *m = &o->u.sem;
  uint64_t state = atomic_load(&m->state), next;
  do {
    if (state & SEM_DEAD)
      return ATR_ENOENT;
    uint64_t total = (uint64_t)sem_value(state) + sem_leased(state) + n;
    if (m->bound != 0 && total > m->bound)
      return ATR_EOVERRELEASE;
    if ((uint64_t)sem_value(state) + n > SEM_VALUE_MAX)
      return ATR_EOVERFLOW;
    next = sem_with_value(state, (int64_t)n);
  } while (!atomic_compare_exchange_weak(&m->state, &state, next));
  __atomic_fetch_add(&o->version, 1, __ATOMIC_RELAXED);
  if (state & SEM_WAITERS)
    atr__futex_wake(sem_word(m));
  if (value != NULL)
    *value = sem_value(next);
  return 0;
}

ATR__EXPORT int atr_sem_release(const atr_handle *h, uint64_t n,
                                uint64_t *value) {
  struct atr__obj *o = sem_of(h);
  int rc;
  if (o == NULL || atomic_load(&o->id) != h->id)
    return ATR_ENOENT;
  if (n == 0 || n > SEM_VALUE_MAX)
    return ATR_EINVAL;
  if ((rc = sem_give(o, n, value)) != 0)
    return rc;
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_RELEASED,
                        &o->u.sem.pend_rel);
  return 0;
}

/* Under the store lock: the dead bit stops every further change, and
 * every sleeper wakes to find it. */
static int sem_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  struct atr__sem *m = &o->u.sem;
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  __atomic_store_n(&o->dead, 1, __ATOMIC_SEQ_CST);
  uint64_t state = atomic_fetch_or(&m->state, SEM_DEAD);
  *last = __atomic_load_n(&o->version, __ATOMIC_SEQ_CST);
  /* The futex word must move too, or a sleeper that read it before the
   * dead bit would sleep on. */
  while (!atomic_compare_exchange_weak(
      &m->state, &state, (state & ~(uint64_t)UINT32_MAX) | SEM_DEAD |
                             (uint32_t)(sem_value(state) + 1)))
    ;
  atr__mutex_unlock(&o->lock);
  atr__futex_wake(sem_word(m));
  return 0;
}

static int sem_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  struct atr__sem *m = &o->u.sem;
  uint64_t state = atomic_load(&m->state);
  (void)s;
  if ((state & SEM_DEAD) || __atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  info->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  info->count = sem_value(state);
  info->leased = sem_leased(state);
  info->bound = m->bound;
  info->waiters = atomic_load(&m->waiters);
  info->expires_in = -1;
  return 0;
}

static uint64_t sem_last_version(const struct atr__obj *o) {
  return o->version;
}

/* Releases keep their mark apart, so that acquires and releases taking
 * turns coalesce too. */
static _Atomic uint64_t *sem_mark(struct atr__obj *o, atr_op op) {
  return op == ATR_OP_RELEASED ? &o->u.sem.pend_rel : &o->pend;
}

const struct atr__kind_ops atr__sem_ops = {
    .name = "semaphore",
    .kill = sem_kill,
    .info = sem_info,
    .last_version = sem_last_version,
    .mark = sem_mark,
};
