/*
 * lock.c - locks (Python's Lock and RLock), held by a thread of a local
 * process (a process hold) or by a lease (the gateway's HTTP clients).
 *
 * The lock is a hold (robust.c): a futex word in the record that the
 * kernel marks FUTEX_OWNER_DIED when its holding thread dies. Taking it
 * uncontended is one CAS, the robust-list link and a fetch_add of the
 * version (the acquisition's fence); giving it back is a fetch_add and
 * an exchange, plus a wake only if someone sleeps. Neither takes the
 * record lock nor makes a syscall. Waiters set FUTEX_WAITERS and sleep on
 * the word (up to the deadline of a lease holding it).
 *
 * Leases: the word holds ATR__LEASE_TID, the hold's nonce the token, its
 * deadline_ns the end on the host's CLOCK_MONOTONIC. Everything about a
 * lease (take, re-entry, renew, unlease, expiry, break) and every fenced
 * write runs under the record lock, so a fenced write never overlaps the
 * lease's end. A lease that ran out is ended by whoever next looks: a
 * waiter (C or the gateway's poll), atr_sync_expire, or a fenced write's
 * check; nothing needs the gateway to run.
 *
 * Fences: an acquisition's fence is the record's version after its own
 * bump, so fences only grow for a name (a re-created name starts above
 * every version it had). `fence` is 0 while the lock is free (a release
 * clears it before giving the word back), so a fenced check never passes
 * a released holder's fence while the next holder is half-way in.
 *
 * Breaking a process hold: its thread still has the hold linked in its
 * robust list, and only that thread may unlink it. So the lock has two
 * holds, and `cur` says which is the lock's: a break leaves the broken
 * one linked (its thread learns it from ATR_ENOTHELD on its release,
 * which unlinks it) and moves the lock to the other, which must not be
 * linked itself (else ATR_ELOCKED: the holder of the previous break has
 * not let go yet). Whoever takes a hold checks `cur` after its CAS and
 * gives back a hold that is not the lock's (a thread that read `cur`
 * before a break), so a free word off `cur` is harmless. A waiter that
 * read `cur` before the move watches the old word, sees `cur` moved
 * after setting FUTEX_WAITERS (the break moves `cur` before it changes
 * the old word and wakes it) and looks again. Known gap: the broken
 * holder's own count and fence stores race the next holder's if the
 * break lands between its CAS and those two stores.
 *
 * Deletion (the rule robust.c asks for): a deleted lock's record keeps
 * its place while either hold's word carries a thread's TID (`lingers`),
 * so no other object is ever made over a linked list entry; the holder's
 * release unlinks it (and answers ATR_ENOENT), a holder's death ends it,
 * and object.c reuses the record after that.
 *
 * Events: acquired (coalescing mark: the record's pend), released (its
 * own mark, pend_rel), expired and abandoned (no mark; abandoned is
 * followed by acquired).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* What an acquisition wants: a process hold (self) or a lease. */
struct lk_want {
  const struct atr__self *self; /* NULL: a lease */
  uint64_t token;
  int64_t ttl_ns;
  double ttl;
  uint64_t fence; /* out: a lease's fence, set under the record lock */
};

/* The handle's record if it is a live lock (atr__obj_of, inline). */
static inline struct atr__obj *lk_of(const atr_handle *h) {
  struct atr__obj *o;
  if (h == NULL || (o = h->rec) == NULL || h->kind != ATR_LOCK ||
      atomic_load_explicit(&o->id, memory_order_acquire) != h->id)
    return NULL;
  return o->kind == ATR_LOCK ? o : NULL;
}

static inline unsigned lk_cur(struct atr__lock_state *l) {
  return atomic_load(&l->cur) & 1u;
}

static inline bool lk_gone(const atr_handle *h, struct atr__obj *o) {
  return atomic_load(&o->id) != h->id ||
         __atomic_load_n(&o->dead, __ATOMIC_SEQ_CST);
}

static inline uint64_t lk_bump(struct atr__obj *o) {
  return __atomic_add_fetch(&o->version, 1, __ATOMIC_SEQ_CST);
}

/* The version's bump by a process holder, which is its only writer
 * while it holds (lease paths bump under the record lock, and only once
 * the word is theirs): a load and a store, not a locked add, which
 * would cost as much as the CAS that took the word. (A break of this
 * hold racing its taker's bump may leave one version counted twice:
 * the gap the header names.) */
static inline uint64_t lk_bump_holder(struct atr__obj *o) {
  uint64_t v = __atomic_load_n(&o->version, __ATOMIC_RELAXED) + 1;
  __atomic_store_n(&o->version, v, __ATOMIC_RELEASE);
  return v;
}

static void lk_grant(atr_grant *g, uint64_t fence, uint64_t token,
                     uint64_t count, double ttl) {
  if (g != NULL)
    *g = (atr_grant){fence, token, count, ttl};
}

static int64_t lk_ttl_ns(double ttl) {
  return (int64_t)(ttl * 1e9);
}

/* ttl as a lease takes it: > 0 and finite (capped), else -1. */
static double lk_ttl(double ttl) {
  if (!(ttl > 0) || isnan(ttl))
    return -1;
  return ttl > ATR_LEASE_MAX ? ATR_LEASE_MAX : ttl;
}

static int lk_init(atr_store *s, struct atr__obj *o, void *arg) {
  (void)s;
  memset(&o->u.l, 0, sizeof o->u.l);
  o->u.l.reentrant = *(const int *)arg != 0;
  return 0;
}

ATR__EXPORT int atr_lock_open(atr_store *s, const char *name, int flags,
                              int reentrant, atr_handle *h) {
  return atr__open(s, name, ATR_LOCK, 0, flags, NULL, lk_init, &reentrant, h);
}

/* Under the record lock: ends the lease of hd (the lock's), publishing
 * op (expired, or released with its mark), and wakes a waiter. */
static void lk_end_lease(const atr_handle *h, struct atr__obj *o,
                         struct atr__hold *hd, atr_op op) {
  struct atr__lock_state *l = &o->u.l;
  l->count = 0;
  l->fence = 0;
  lk_bump(o);
  atr__lease_give(hd, 0, 1);
  atr__feed_push(h->store, o, h->slot, op,
                 op == ATR_OP_RELEASED ? &l->pend_rel : NULL);
}

/* Ends the lock's lease if it ran out: 1 if it did, 0, or an error. */
static int lk_expire(const atr_handle *h, struct atr__obj *o) {
  struct atr__lock_state *l = &o->u.l;
  int rc;
  if ((rc = atr__record_lock(h->store, o)) != 0)
    return rc;
  struct atr__hold *hd = &l->hold[lk_cur(l)];
  rc = 0;
  if (!lk_gone(h, o) && atr__lease_over(hd, atr__now_ns())) {
    lk_end_lease(h, o, hd, ATR_OP_EXPIRED);
    rc = 1;
  }
  atr__mutex_unlock(&o->lock);
  return rc;
}

/* One try for a lease on hold c, under the record lock. As
 * atr__hold_take, or ATR_ENOENT. */
static int lk_lease_try(const atr_handle *h, struct atr__obj *o, unsigned c,
                        struct lk_want *w, uint32_t bits, uint32_t *seen) {
  struct atr__lock_state *l = &o->u.l;
  int rc;
  if ((rc = atr__record_lock(h->store, o)) != 0)
    return rc;
  struct atr__hold *hd = &l->hold[c];
  int64_t now = atr__now_ns();
  if (lk_gone(h, o)) {
    rc = ATR_ENOENT;
  } else if (lk_cur(l) != c) {
    *seen = atomic_load(&hd->word);
    rc = 1;
  } else {
    if (atr__lease_over(hd, now))
      lk_end_lease(h, o, hd, ATR_OP_EXPIRED);
    /* The deadline counts from now, when it is granted: a lease is never
     * handed over with less than its ttl ahead. */
    rc = atr__lease_take(hd, w->token, now + w->ttl_ns, bits, seen);
    if (rc == 0 || rc == ATR_ABANDONED) {
      l->count = 1;
      w->fence = l->fence = l->last_fence = lk_bump(o);
    }
  }
  atr__mutex_unlock(&o->lock);
  return rc;
}

/*
 * A process hold was taken on hold c (rc 0 or ATR_ABANDONED): checks it
 * is still the lock's and the lock alive, then counts and fences it.
 * Returns rc, 1 to try again (it was a broken hold), or ATR_ENOENT.
 */
static inline __attribute__((always_inline)) int
lk_won_process(const atr_handle *h, struct atr__obj *o, unsigned c,
               const struct atr__self *self, int rc) {
  struct atr__lock_state *l = &o->u.l;
  struct atr__hold *hd = &l->hold[c];
  if (lk_cur(l) != c) {
    atr__hold_give(hd, self, 0, INT32_MAX);
    return 1;
  }
  if (lk_gone(h, o)) {
    atr__hold_give(hd, self, 0, INT32_MAX);
    return ATR_ENOENT;
  }
  l->count = 1;
  l->fence = l->last_fence = lk_bump_holder(o);
  return rc;
}

/* Wakes a waiter when one that may have been woken to take the lock
 * leaves without it (timeout, signal), so the wake is not lost. */
static void lk_pass_wake(struct atr__lock_state *l) {
  struct atr__hold *hd = &l->hold[lk_cur(l)];
  if (atomic_load(&l->waiters) > 0 && atr__word_free(atomic_load(&hd->word)))
    atr__futex_wake_one(&hd->word);
}

static int lk_acquire(const atr_handle *h, struct atr__obj *o,
                      struct lk_want *w, double timeout, atr_grant *g) {
  struct atr__lock_state *l = &o->u.l;
  int64_t deadline = 0;
  bool counted = false, slept = false, timed = false;
  uint32_t bits = 0, seen = 0, val;
  int rc;

  for (;;) {
    unsigned c = lk_cur(l);
    struct atr__hold *hd = &l->hold[c];
    if (w->self != NULL) {
      rc = atr__hold_take(hd, w->self, bits, &seen);
      if (rc != 1)
        rc = lk_won_process(h, o, c, w->self, rc);
    } else {
      rc = lk_lease_try(h, o, c, w, bits, &seen);
    }
    if (rc != 1)
      break;
    if (lk_gone(h, o)) {
      rc = ATR_ENOENT;
      break;
    }
    int64_t now = atr__now_ns();
    if ((seen & ATR__TID_MASK) == ATR__LEASE_TID && atr__lease_over(hd, now)) {
      if ((rc = lk_expire(h, o)) < 0)
        break;
      if (rc > 0)
        continue; /* else it was renewed or handed on meanwhile: wait */
    }
    if (!timed) {
      deadline = atr__deadline_ns(timeout);
      timed = true;
    }
    if (timeout == 0 || (deadline >= 0 && now >= deadline)) {
      rc = ATR_ETIMEDOUT;
      break;
    }
    if (!counted) {
      atomic_fetch_add(&l->waiters, 1);
      counted = true;
    }
    /* FUTEX_WAITERS first, then look at cur and the record again: a
     * break or a delete changes those before it changes the word. */
    if (atr__hold_watch(hd, &val) != 0 || lk_cur(l) != c || lk_gone(h, o))
      continue;
    int64_t until = deadline;
    if ((val & ATR__TID_MASK) == ATR__LEASE_TID) {
      int64_t end = __atomic_load_n(&hd->deadline_ns, __ATOMIC_RELAXED);
      if (until < 0 || end < until)
        until = end > now ? end : now;
    }
    rc = atr__futex_wait_until(&hd->word, val, until);
    slept = true;
    bits = ATR__WAITERS; /* others may sleep too: our release wakes one */
    if (rc == ATR_EINTR)
      break;
  }
  if (counted)
    atomic_fetch_sub(&l->waiters, 1);
  if (rc < 0 && slept)
    lk_pass_wake(l);
  if (rc == 0 || rc == ATR_ABANDONED) {
    uint64_t fence = w->self != NULL ? l->fence : w->fence;
    if (rc == ATR_ABANDONED)
      atr__feed_push(h->store, o, h->slot, ATR_OP_ABANDONED, NULL);
    atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ACQUIRED, &o->pend);
    lk_grant(g, fence, w->token, 1, w->ttl);
  }
  return rc;
}

/*
 * The uncontended paths, inline and without a call or a stack frame on
 * their way (the slow cases are tail calls): an acquire is the hold's
 * take (ATR__TAKE_ steps), then the depth, the version's bump with the
 * fence, the events; a release is the fence cleared, the version's
 * bump, then the hold's give (ATR__GIVE_ steps, after LK_GIVE_HOLD),
 * then the event. atr__lock_acquire_cut and atr__lock_release_cut stop
 * after any of those steps (test_lock kills a holder at each); the
 * public calls pass ATR__ALL_STEPS, which folds every check away.
 */
enum { LK_TAKE_COUNT = ATR__TAKE_DONE + 1, LK_TAKE_FENCE, LK_TAKE_EVENTS };
enum { LK_GIVE_FENCE = 1, LK_GIVE_VERSION, LK_GIVE_HOLD = LK_GIVE_VERSION };

/* The waiting path, and the first acquisition by a thread or of a
 * reentrant lock the thread does not hold yet. */
static __attribute__((noinline)) int lk_take_slow(const atr_handle *h,
                                                  struct atr__obj *o,
                                                  double timeout,
                                                  atr_grant *g) {
  const struct atr__self *self = atr__self();
  if (self == NULL)
    return ATR_ESYS;
  struct lk_want w = {self, 0, 0, 0, 0};
  return lk_acquire(h, o, &w, timeout, g);
}

/* A reentrant lock's holder takes it again. */
static __attribute__((noinline)) int
lk_reenter(const atr_handle *h, struct atr__obj *o, atr_grant *g) {
  struct atr__lock_state *l = &o->u.l;
  if (lk_gone(h, o))
    return ATR_ENOENT;
  l->count++;
  lk_grant(g, l->fence, 0, l->count, 0);
  return 0;
}

/* The take's events when they are not covered by the mark already, or
 * the holder died (rc ATR_ABANDONED). Returns rc. */
static __attribute__((noinline)) int
lk_took_events(const atr_handle *h, struct atr__obj *o, int rc) {
  if (rc == ATR_ABANDONED)
    atr__feed_push(h->store, o, h->slot, ATR_OP_ABANDONED, NULL);
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ACQUIRED, &o->pend);
  return rc;
}

/* Took hold c, but it is not the lock's any more (a break moved the
 * lock) or the lock is gone: gives it back, then waits or answers. */
static __attribute__((noinline)) int
lk_took_stale(const atr_handle *h, struct atr__obj *o, unsigned c, int rc,
              double timeout, atr_grant *g) {
  rc = lk_won_process(h, o, c, &atr__self_tls, rc);
  if (rc != 1)
    return rc < 0 ? rc : lk_took_events(h, o, rc);
  return lk_take_slow(h, o, timeout, g);
}

static inline __attribute__((always_inline)) int
lk_take(const atr_handle *h, double timeout, atr_grant *g, int steps) {
  struct atr__obj *o = lk_of(h);
  if (__builtin_expect(o == NULL, 0))
    return ATR_ENOENT;
  const struct atr__self *self = &atr__self_tls;
  struct atr__lock_state *l = &o->u.l;
  unsigned c = lk_cur(l);
  struct atr__hold *hd = &l->hold[c];
  uint32_t seen;
  if (__builtin_expect(self->tid == 0, 0))
    return lk_take_slow(h, o, timeout, g);
  if (l->reentrant && atr__hold_mine(hd, self))
    return lk_reenter(h, o, g);
  /* Where the feed's epoch is, found before the CAS: the loads that
   * must follow it (a locked instruction holds later loads back) are
   * then independent, not a chain. */
  const _Atomic uint64_t *epoch = &h->store->hdr->feed_epoch;
  int rc = atr__hold_take_cut(hd, self, 0, &seen, steps);
  if (__builtin_expect(rc == 1, 0))
    return lk_take_slow(h, o, timeout, g);
  if (steps < LK_TAKE_COUNT)
    return rc;
  if (__builtin_expect(lk_cur(l) != c || lk_gone(h, o), 0))
    return lk_took_stale(h, o, c, rc, timeout, g);
  l->count = 1;
  if (steps < LK_TAKE_FENCE)
    return rc;
  uint64_t fence = lk_bump_holder(o);
  l->fence = l->last_fence = fence;
  if (steps < LK_TAKE_EVENTS)
    return rc;
  if (g != NULL)
    *g = (atr_grant){fence, 0, 1, 0};
  uint64_t mark = atomic_load_explicit(&o->pend, memory_order_relaxed);
  if (__builtin_expect(
          rc != 0 || !atr__feed_covered_at(epoch, mark, ATR_OP_ACQUIRED), 0))
    return lk_took_events(h, o, rc);
  return 0;
}

ATR__EXPORT int atr_lock_acquire(const atr_handle *h, double timeout,
                                 atr_grant *g) {
  return lk_take(h, timeout, g, ATR__ALL_STEPS);
}

int atr__lock_acquire_cut(const atr_handle *h, int steps) {
  if (atr__self() == NULL) /* made here: the fast path needs it made */
    return ATR_ESYS;
  return lk_take(h, -1, NULL, steps);
}

/* A release by a thread that does not hold hold[cur]: a thread's first
 * call, or a hold broken meanwhile (given back here), or not held. */
static __attribute__((noinline)) int lk_give_other(const atr_handle *h,
                                                   struct atr__obj *o) {
  const struct atr__self *self;
  if ((self = atr__self()) == NULL)
    return lk_gone(h, o) ? ATR_ENOENT : ATR_ENOTHELD;
  struct atr__lock_state *l = &o->u.l;
  unsigned c = lk_cur(l);
  if (atr__hold_mine(&l->hold[c], self))
    return atr_lock_release(h); /* the thread's first call: it was made */
  struct atr__hold *old = &l->hold[c ^ 1];
  if (atr__hold_mine(old, self))
    atr__hold_give(old, self, 0, INT32_MAX); /* broken meanwhile */
  return lk_gone(h, o) ? ATR_ENOENT : ATR_ENOTHELD;
}

/* What follows a release's give when it is not just the mark's check:
 * the answer for a deleted lock, the event. */
static __attribute__((noinline)) int lk_gave(const atr_handle *h,
                                             struct atr__obj *o) {
  if (lk_gone(h, o))
    return ATR_ENOENT;
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_RELEASED,
                        &o->u.l.pend_rel);
  return 0;
}

/* The release once the caller is known to hold hd (count 1): first
 * says hd is its thread's first list entry (else the give walks). */
static inline __attribute__((always_inline)) int
lk_give_hold(const atr_handle *h, struct atr__obj *o, struct atr__hold *hd,
             bool first, int steps) {
  struct atr__lock_state *l = &o->u.l;
  /* count stays 1: it is read only while the lock is held, and every
   * take sets it. */
  if (steps < LK_GIVE_FENCE)
    return 0;
  l->fence = 0;
  if (steps < LK_GIVE_VERSION)
    return 0;
  lk_bump_holder(o);
  const _Atomic uint64_t *epoch = &h->store->hdr->feed_epoch; /* as lk_take */
  atr__hold_give_steps(hd, &atr__self_tls, 0, first, 1, steps - LK_GIVE_HOLD);
  if (steps - LK_GIVE_HOLD < ATR__GIVE_DONE)
    return 0;
  uint64_t mark = atomic_load_explicit(&l->pend_rel, memory_order_relaxed);
  if (__builtin_expect(lk_gone(h, o) ||
                           !atr__feed_covered_at(epoch, mark, ATR_OP_RELEASED),
                       0))
    return lk_gave(h, o);
  return 0;
}

/* A release of a hold that is not its thread's first list entry. */
static __attribute__((noinline)) int lk_give_walk(const atr_handle *h,
                                                  struct atr__obj *o,
                                                  struct atr__hold *hd,
                                                  int steps) {
  return lk_give_hold(h, o, hd, false, steps);
}

static inline __attribute__((always_inline)) int lk_give(const atr_handle *h,
                                                         int steps) {
  struct atr__obj *o;
  /* Not lk_of: the holder of a deleted lock still unlinks its hold (the
   * record lingers for it). */
  if (__builtin_expect(h == NULL || h->kind != ATR_LOCK ||
                           (o = h->rec) == NULL || o->kind != ATR_LOCK,
                       0))
    return ATR_ENOENT;
  const struct atr__self *self = &atr__self_tls;
  struct atr__lock_state *l = &o->u.l;
  struct atr__hold *hd = &l->hold[lk_cur(l)];
  if (__builtin_expect(self->tid == 0 || !atr__hold_mine(hd, self), 0))
    return lk_give_other(h, o);
  if (l->count > 1) {
    l->count--;
    return 0;
  }
  if (__builtin_expect(!atr__hold_first(hd, self), 0))
    return lk_give_walk(h, o, hd, steps);
  return lk_give_hold(h, o, hd, true, steps);
}

ATR__EXPORT int atr_lock_release(const atr_handle *h) {
  return lk_give(h, ATR__ALL_STEPS);
}

int atr__lock_release_cut(const atr_handle *h, int steps) {
  return lk_give(h, steps);
}

ATR__EXPORT int atr_lock_lease(const atr_handle *h, double ttl, double timeout,
                               uint64_t reenter, atr_grant *g) {
  struct atr__obj *o = lk_of(h);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if ((ttl = lk_ttl(ttl)) < 0)
    return ATR_EINVAL;
  struct atr__lock_state *l = &o->u.l;
  if (reenter == 0) {
    struct lk_want w = {NULL, atr__token(), lk_ttl_ns(ttl), ttl, 0};
    return lk_acquire(h, o, &w, timeout, g);
  }
  if (!l->reentrant)
    return ATR_EINVAL;
  if ((rc = atr__record_lock(h->store, o)) != 0)
    return rc;
  struct atr__hold *hd = &l->hold[lk_cur(l)];
  int64_t now = atr__now_ns();
  if (lk_gone(h, o)) {
    rc = ATR_ENOENT;
  } else if (!atr__lease_is(hd, reenter)) {
    rc = ATR_ENOTHELD;
  } else if (atr__lease_over(hd, now)) {
    lk_end_lease(h, o, hd, ATR_OP_EXPIRED);
    rc = ATR_ENOTHELD;
  } else {
    l->count++;
    __atomic_store_n(&hd->deadline_ns, now + lk_ttl_ns(ttl), __ATOMIC_RELAXED);
    lk_grant(g, l->fence, reenter, l->count, ttl);
    rc = 0;
  }
  atr__mutex_unlock(&o->lock);
  return rc;
}

/* Runs under the record lock with the lease token holds (still in
 * time): unlease or renew. ATR_ENOTHELD otherwise (a lease that ran out
 * is ended on the way). */
static int lk_with_lease(const atr_handle *h, uint64_t token,
                         int (*fn)(const atr_handle *h, struct atr__obj *o,
                                   struct atr__hold *hd, void *arg),
                         void *arg) {
  struct atr__obj *o = lk_of(h);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if (token == 0)
    return ATR_ENOTHELD;
  if ((rc = atr__record_lock(h->store, o)) != 0)
    return rc;
  struct atr__hold *hd = &o->u.l.hold[lk_cur(&o->u.l)];
  if (lk_gone(h, o)) {
    rc = ATR_ENOENT;
  } else if (!atr__lease_is(hd, token)) {
    rc = ATR_ENOTHELD;
  } else if (atr__lease_over(hd, atr__now_ns())) {
    lk_end_lease(h, o, hd, ATR_OP_EXPIRED);
    rc = ATR_ENOTHELD;
  } else {
    rc = fn(h, o, hd, arg);
  }
  atr__mutex_unlock(&o->lock);
  return rc;
}

static int lk_unlease_fn(const atr_handle *h, struct atr__obj *o,
                         struct atr__hold *hd, void *arg) {
  (void)arg;
  if (o->u.l.count > 1)
    o->u.l.count--;
  else
    lk_end_lease(h, o, hd, ATR_OP_RELEASED);
  return 0;
}

ATR__EXPORT int atr_lock_unlease(const atr_handle *h, uint64_t token) {
  return lk_with_lease(h, token, lk_unlease_fn, NULL);
}

struct lk_renew_arg {
  double ttl;
  uint64_t token;
  atr_grant *g;
};

static int lk_renew_fn(const atr_handle *h, struct atr__obj *o,
                       struct atr__hold *hd, void *arg) {
  struct lk_renew_arg *ra = arg;
  (void)h;
  __atomic_store_n(&hd->deadline_ns, atr__now_ns() + lk_ttl_ns(ra->ttl),
                   __ATOMIC_RELAXED);
  lk_grant(ra->g, o->u.l.fence, ra->token, o->u.l.count, ra->ttl);
  return 0;
}

ATR__EXPORT int atr_lock_renew(const atr_handle *h, uint64_t token, double ttl,
                               atr_grant *g) {
  struct lk_renew_arg ra = {lk_ttl(ttl), token, g};
  if (ra.ttl < 0)
    return lk_of(h) != NULL ? ATR_EINVAL : ATR_ENOENT;
  return lk_with_lease(h, token, lk_renew_fn, &ra);
}

/* Moves the lock off a process hold whose thread keeps it linked, under
 * the record lock. 0, or ATR_ELOCKED if the other hold is still linked
 * by the holder of an earlier break. */
static int lk_break_process(struct atr__obj *o, unsigned c) {
  struct atr__lock_state *l = &o->u.l;
  struct atr__hold *hd = &l->hold[c], *other = &l->hold[c ^ 1];
  /* The other hold becomes the lock's, free: unless a thread has it
   * linked (the previous broken holder, or one that read `cur` long ago
   * and is about to give it back), which the CAS also catches. */
  uint32_t w = atomic_load(&other->word);
  if (atr__word_linked(w) ||
      !atomic_compare_exchange_strong(&other->word, &w, 0))
    return ATR_ELOCKED;
  l->count = 0;
  l->fence = 0;
  l->last_fence = lk_bump(o);
  atomic_store(&l->cur, (uint8_t)(c ^ 1));
  /* Change the old word after cur (a waiter about to sleep on it then
   * fails its futex wait, or sees cur moved), and wake its sleepers, and
   * any that slept on the other word while it was not the lock's. */
  w = atomic_load(&hd->word);
  while (!atomic_compare_exchange_weak(&hd->word, &w, w & ~ATR__WAITERS))
    ;
  atr__futex_wake(&hd->word);
  atr__futex_wake(&other->word);
  return 0;
}

ATR__EXPORT int atr_lock_break(const atr_handle *h) {
  struct atr__obj *o;
  int rc;
  if ((rc = atr__handle_lock(h, ATR_LOCK, &o)) != 0)
    return rc;
  struct atr__lock_state *l = &o->u.l;
  unsigned c = lk_cur(l);
  struct atr__hold *hd = &l->hold[c];
  uint32_t w = atomic_load(&hd->word);
  bool broke = true;
  if ((w & ATR__TID_MASK) == ATR__LEASE_TID) {
    lk_end_lease(h, o, hd, ATR_OP_RELEASED);
    /* What describes the lock shows the fence grown: the holder's is
     * spent (the other paths set it with their own bump). */
    l->last_fence = o->version;
    broke = false; /* published */
  } else if (atr__word_linked(w)) {
    rc = lk_break_process(o, c);
    broke = rc == 0;
  } else if ((w & ATR__OWNER_DIED) || !atr__word_free(w)) {
    /* Its holder died, or the word names no holder at all (damage):
     * free it, so the next taker is not told. */
    l->count = 0;
    l->fence = 0;
    l->last_fence = lk_bump(o);
    atr__lease_give(hd, 0, 1);
  } else {
    broke = false; /* free already */
  }
  if (broke)
    atr__feed_push(h->store, o, h->slot, ATR_OP_RELEASED, &l->pend_rel);
  atr__mutex_unlock(&o->lock);
  return rc;
}

ATR__EXPORT int atr_lock_fenced(atr_store *s, const char *lock_name,
                                uint64_t fence, int (*fn)(void *arg),
                                void *arg) {
  uint32_t slot;
  uint64_t id;
  int rc;
  if (s == NULL || fn == NULL || lock_name == NULL)
    return ATR_EINVAL;
  size_t len = strnlen(lock_name, ATR_NAME_MAX + 1);
  if ((rc = atr_name_check(lock_name, len)) != 0)
    return rc;
  if ((rc = atr__lookup(s, lock_name, len, &slot, &id)) != 0)
    return rc;
  struct atr__obj *o = atr__slot(s, slot);
  if (o->kind != ATR_LOCK)
    return ATR_EKIND;
  atr_handle lh = {s, id, o, slot, ATR_LOCK, 0};
  if ((rc = atr__handle_lock(&lh, ATR_LOCK, &o)) != 0)
    return rc;
  struct atr__lock_state *l = &o->u.l;
  struct atr__hold *hd = &l->hold[lk_cur(l)];
  uint32_t w = atomic_load(&hd->word);
  bool held = fence != 0 && l->fence == fence;
  if ((w & ATR__TID_MASK) == ATR__LEASE_TID) {
    int64_t now = atr__now_ns();
    if (atr__lease_over(hd, now)) {
      lk_end_lease(&lh, o, hd, ATR_OP_EXPIRED);
      held = false;
    }
  } else if (!atr__word_linked(w)) {
    held = false;
  }
  rc = held ? fn(arg) : ATR_ESTALE;
  atr__mutex_unlock(&o->lock);
  return rc;
}

/* Under the store lock: no change may follow; wakes every waiter of
 * both words (they find the record dead: ATR_ENOENT). The holds stay as
 * they are: a holder's release still unlinks its own. */
static int lk_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  (void)s;
  __atomic_store_n(&o->dead, 1, __ATOMIC_SEQ_CST);
  for (int i = 0; i < 2; i++) {
    struct atr__hold *hd = &o->u.l.hold[i];
    uint32_t w = atomic_load(&hd->word);
    while (!atomic_compare_exchange_weak(&hd->word, &w, w & ~ATR__WAITERS))
      ;
    atr__futex_wake(&hd->word);
  }
  /* A holder that passed its liveness check just before may still bump
   * twice (its acquisition, then its release): the floor counts them, so
   * a re-created lock's fences start above any of this one's. */
  *last = __atomic_load_n(&o->version, __ATOMIC_SEQ_CST) + 2;
  return 0;
}

static bool lk_lingers(const atr_store *s, const struct atr__obj *o) {
  (void)s;
  return atr__word_linked(atomic_load(&o->u.l.hold[0].word)) ||
         atr__word_linked(atomic_load(&o->u.l.hold[1].word));
}

/* A process that died holding the record lock half-way through a lease's
 * take may have left the lease without its token: let it run out now. */
static void lk_repair(atr_store *s, struct atr__obj *o) {
  (void)s;
  for (int i = 0; i < 2; i++) {
    struct atr__hold *hd = &o->u.l.hold[i];
    if (atr__lease_is(hd, 0) && hd->nonce == 0)
      hd->deadline_ns = 0;
  }
}

static int lk_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  struct atr__lock_state *l = &o->u.l;
  (void)s;
  if (__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  struct atr__hold *hd = &l->hold[lk_cur(l)];
  uint32_t w = atomic_load(&hd->word);
  info->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  info->reentrant = l->reentrant;
  info->fence = l->last_fence;
  info->waiters = atomic_load(&l->waiters);
  info->expires_in = -1;
  if ((w & ATR__TID_MASK) == ATR__LEASE_TID) {
    int64_t left =
        __atomic_load_n(&hd->deadline_ns, __ATOMIC_RELAXED) - atr__now_ns();
    info->lease = 1;
    info->expires_in = left > 0 ? (double)left / 1e9 : 0;
    info->count = l->count;
  } else if (atr__word_linked(w)) {
    info->count = l->count;
  }
  return 0;
}

static uint64_t lk_last_version(const struct atr__obj *o) {
  return o->version;
}

static _Atomic uint64_t *lk_mark(struct atr__obj *o, atr_op op) {
  return op == ATR_OP_RELEASED ? &o->u.l.pend_rel : &o->pend;
}

const struct atr__kind_ops atr__lock_ops = {
    .name = "lock",
    .kill = lk_kill,
    .repair = lk_repair,
    .info = lk_info,
    .last_version = lk_last_version,
    .mark = lk_mark,
    .lingers = lk_lingers,
    .expire = lk_expire,
};

/* ------------------------------------------ for conditions (condition.c) */

int atr__lock_holder_check(const atr_handle *lh, uint64_t token) {
  struct atr__obj *o = lk_of(lh);
  if (o == NULL)
    return ATR_ENOENT;
  struct atr__hold *hd = &o->u.l.hold[lk_cur(&o->u.l)];
  if (token != 0)
    return atr__lease_is(hd, token) && !atr__lease_over(hd, atr__now_ns())
               ? 0
               : ATR_ENOTHELD;
  const struct atr__self *self = atr__self();
  return self != NULL && atr__hold_mine(hd, self) ? 0 : ATR_ENOTHELD;
}

int atr__lock_release_all(const atr_handle *lh, uint64_t *count) {
  struct atr__obj *o = lk_of(lh);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if ((rc = atr__lock_holder_check(lh, 0)) != 0)
    return rc;
  *count = o->u.l.count;
  o->u.l.count = 1;
  return atr_lock_release(lh);
}

int atr__lock_retake(const atr_handle *lh, uint64_t count, atr_grant *g) {
  int rc;
  /* The lock comes back whatever happens meanwhile: a signal during this
   * wait was already answered by the caller's result. */
  do
    rc = atr_lock_acquire(lh, -1, g);
  while (rc == ATR_EINTR);
  if (rc == 0 || rc == ATR_ABANDONED) {
    struct atr__obj *o = lh->rec;
    o->u.l.count = count;
    if (g != NULL)
      g->count = count;
  }
  return rc;
}

static int lk_unlease_all_fn(const atr_handle *h, struct atr__obj *o,
                             struct atr__hold *hd, void *arg) {
  *(uint64_t *)arg = o->u.l.count;
  lk_end_lease(h, o, hd, ATR_OP_RELEASED);
  return 0;
}

int atr__lock_unlease_all(const atr_handle *lh, uint64_t token,
                          uint64_t *count) {
  return lk_with_lease(lh, token, lk_unlease_all_fn, count);
}
