/*
 * flag.c - flags (Python's Event): set, clear, wait for set.
 *
 * The whole state is one 64-bit word (struct atr__flag): its low half,
 * the futex word, is (sets << 1) | set; its high half counts the waiters
 * registered since the last set. A waiter registers with one CAS (only
 * while the flag is clear) and sleeps on the low half; a set moves the
 * low half (a new set count, the set bit) and zeroes the count with the
 * same CAS, and wakes every sleeper if the count said there was one. So
 * a set with nobody waiting makes no system call, a waiter killed while
 * asleep costs one wake, and the count a describe reads never outlives
 * the next set. A clear changes only the set bit: nobody waits on a set
 * flag, so nobody needs waking.
 *
 * Set and clear take the record lock, so that the state change and the
 * version it bumps come in one order and a delete (which takes it too)
 * has the final version; waits and describes take no lock.
 */
#include "internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the futex word is the low half of the state's address");

#define FLAG_SET 1u
#define FLAG_WAITER (UINT64_C(1) << 32)

static inline uint32_t flag_low(uint64_t state) {
  return (uint32_t)state;
}
static inline uint32_t flag_sets(uint64_t state) {
  return flag_low(state) >> 1;
}
static inline uint64_t flag_waiters(uint64_t state) {
  return state >> 32;
}
static inline _Atomic uint32_t *flag_word(struct atr__flag *f) {
  return (_Atomic uint32_t *)(void *)&f->state;
}

static struct atr__obj *flag_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_FLAG ? o : NULL;
}

static bool flag_alive(const atr_handle *h, struct atr__obj *o) {
  return atomic_load_explicit(&o->id, memory_order_acquire) == h->id &&
         !__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE);
}

static int flag_init(atr_store *s, struct atr__obj *o, void *arg) {
  (void)s;
  atomic_store(&o->u.f.state, *(int *)arg ? FLAG_SET : 0);
  return 0;
}

ATR__EXPORT int atr_flag_open(atr_store *s, const char *name, int flags,
                              int set, atr_handle *h) {
  return atr__open(s, name, ATR_FLAG, 0, flags, NULL, flag_init, &set, h);
}

/* Moves the flag to set (1) or clear (0) under the record lock; a flag
 * already so changes nothing (no version, no event). */
static int flag_change(const atr_handle *h, int set) {
  struct atr__obj *o;
  uint64_t old, next;
  int rc;
  if ((rc = atr__handle_lock(h, ATR_FLAG, &o)) != 0)
    return rc;
  struct atr__flag *f = &o->u.f;
  old = atomic_load(&f->state);
  do {
    if ((old & FLAG_SET) == (uint64_t)set)
      break;
    next = set ? (uint64_t)(((flag_sets(old) + 1) << 1) | FLAG_SET)
               : old & ~(uint64_t)FLAG_SET;
  } while (!atomic_compare_exchange_weak(&f->state, &old, next));
  bool changed = (old & FLAG_SET) != (uint64_t)set;
  if (changed)
    __atomic_fetch_add(&o->version, 1, __ATOMIC_SEQ_CST);
  atr__mutex_unlock(&o->lock);
  if (!changed)
    return 0;
  if (set && flag_waiters(old) != 0)
    atr__futex_wake(flag_word(f));
  atr__feed_push(h->store, o, h->slot, set ? ATR_OP_SET : ATR_OP_CLEAR,
                 &o->pend);
  return 0;
}

ATR__EXPORT int atr_flag_set(const atr_handle *h) {
  return flag_change(h, 1);
}

ATR__EXPORT int atr_flag_clear(const atr_handle *h) {
  return flag_change(h, 0);
}

/*
 * A waiter returns 0 once it sees the flag set, or once a set happened
 * since it registered even if a clear followed at once (as
 * threading.Event: a set releases everyone waiting at that moment).
 */
ATR__EXPORT int atr_flag_wait(const atr_handle *h, double timeout, int *set) {
  struct atr__obj *o = flag_of(h);
  double deadline = atr__deadline(timeout);
  if (set != NULL)
    *set = 0;
  if (o == NULL)
    return ATR_ENOENT;
  struct atr__flag *f = &o->u.f;
  uint64_t state = atomic_load(&f->state);
  for (;;) {
    if (!flag_alive(h, o))
      return ATR_ENOENT;
    if (state & FLAG_SET)
      break;
    double left = atr__remaining(deadline);
    if (left == 0)
      return ATR_ETIMEDOUT;
    if (!atomic_compare_exchange_strong(&f->state, &state, state + FLAG_WAITER))
      continue;
    int rc = atr__futex_wait(flag_word(f), flag_low(state), left);
    /* Unregister unless a set (or a delete) already zeroed the count. */
    uint64_t now = atomic_load(&f->state);
    while (flag_sets(now) == flag_sets(state) && flag_waiters(now) != 0 &&
           !atomic_compare_exchange_weak(&f->state, &now, now - FLAG_WAITER))
      ;
    if (!flag_alive(h, o))
      return ATR_ENOENT;
    if (flag_sets(now) != flag_sets(state))
      break; /* a set came while we slept */
    if (rc == ATR_EINTR)
      return rc;
    state = now;
  }
  if (set != NULL)
    *set = 1;
  return 0;
}

/* Under the store lock: dead, then the futex word moves (a new set count,
 * the set bit as it was, no waiters) and every sleeper wakes to find the
 * record dead. */
static int flag_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  struct atr__flag *f = &o->u.f;
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  __atomic_store_n(&o->dead, 1, __ATOMIC_SEQ_CST);
  *last = __atomic_load_n(&o->version, __ATOMIC_SEQ_CST);
  uint64_t old = atomic_load(&f->state);
  while (!atomic_compare_exchange_weak(
      &f->state, &old,
      (uint64_t)(((flag_sets(old) + 1) << 1) | (old & FLAG_SET))))
    ;
  atr__mutex_unlock(&o->lock);
  atr__futex_wake(flag_word(f));
  return 0;
}

static int flag_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  uint64_t state = atomic_load(&o->u.f.state);
  (void)s;
  if (__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  info->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  info->set = (state & FLAG_SET) != 0;
  info->waiters = flag_waiters(state);
  info->expires_in = -1;
  return 0;
}

static uint64_t flag_last_version(const struct atr__obj *o) {
  return o->version;
}

/* A flag lives in its record alone and changes by CAS: no repair, no
 * heap. */
const struct atr__kind_ops atr__flag_ops = {
    .name = "flag",
    .kill = flag_kill,
    .info = flag_info,
    .last_version = flag_last_version,
};
