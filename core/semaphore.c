/*
 * semaphore.c - counting semaphores, optionally bounded, with plain and
 * leased permits.
 *
 * The free permits (value) and the leased permits out share one 64-bit
 * word (struct atr__sem's state): a plain acquire or release is one CAS
 * on it, lock-free, and a bounded release checks value + leased + n
 * against the bound in that same CAS, so an over-release is refused
 * exactly and changes nothing. The low half is the futex word: a waiter
 * sets its bit 31 before it sleeps, and a change that finds it set
 * clears it and wakes every sleeper (the ones still short of a permit
 * set it again), so releases with nobody waiting make no system call.
 *
 * Leased permits are places in a table (the record's heap block, sized
 * at creation: max(value, bound, 1) places, at most 1024), each a hold
 * (robust.c) with the permit's token: a process hold, which the kernel
 * marks FUTEX_OWNER_DIED when its thread dies, or a lease with a
 * deadline. Taking, giving back and collecting leased permits happen
 * under the record lock, in an order a death at any point leaves
 * repairable: the state's count moves first on a take (value - 1,
 * leased + 1, then the place is taken) and last on a give-back (the
 * place is freed, then value + 1, leased - 1), so `leased` is never
 * below the places held, and sem_repair gives back the difference.
 * Whoever finds a dead holder's place or a lease past its deadline
 * collects it (sem_collect): a waiter, a leaser, atr_sync_expire. A
 * waiter with no permit free sleeps with futex_waitv on the value word
 * and the words of the process-held places (FUTEX_WAITERS set in each),
 * so a holder's death wakes it at once, and no longer than the earliest
 * lease's deadline.
 *
 * Deleting: the dead bit in the state stops every change and the value
 * word moves so sleepers wake. A record whose table still has a place
 * held by a live thread lingers (`lingers`: robust.c's rule), its slot
 * and table out of reuse, since that thread's robust list runs through
 * the table. Such a hold is not given back through a stale handle (which
 * answers ATR_ENOENT): the record lingers until its thread ends.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the futex word is the low half of the state's address");

#define SEM_WAITERS 0x80000000u
#define SEM_VALUE_MAX 0x7fffffffu
#define SEM_LEASED (UINT64_C(1) << 32)
#define SEM_DEAD (UINT64_C(1) << 63)
#define SEM_TABLE_MAX 1024u

/* A leased permit: its hold and its token (a process hold's nonce is its
 * thread's, so the token is kept apart). */
struct sem_place {
  struct atr__hold hold;
  uint64_t token;
};

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

/* The table of leased permits, or NULL if the record's does not fit the
 * store (damage). */
static struct sem_place *sem_table(const atr_store *s,
                                   const struct atr__obj *o) {
  uint32_t cap = o->u.sem.table_cap;
  uint64_t bytes = (uint64_t)cap * sizeof(struct sem_place);
  if (cap == 0 || cap > SEM_TABLE_MAX || o->data_size < bytes ||
      o->data_off % 8 != 0 || !atr__heap_span_ok(s, o->data_off, bytes))
    return NULL;
  return (struct sem_place *)(void *)(s->base + o->data_off);
}

/*
 * Moves dv permits into value and dl into leased (either may be
 * negative) with one CAS, clearing the waiter bit (and waking its
 * sleepers) when value grows. bounded: refuse past the bound. 0,
 * ATR_ENOENT (deleted), ATR_EOVERRELEASE, ATR_EOVERFLOW, or ATR_EEMPTY
 * (no permit free for dv < 0); *after gets the state made.
 */
static int sem_move(struct atr__obj *o, int64_t dv, int64_t dl, bool bounded,
                    uint64_t *after) {
  struct atr__sem *m = &o->u.sem;
  uint64_t state = atomic_load(&m->state), next;
  do {
    if (state & SEM_DEAD)
      return ATR_ENOENT;
    int64_t v = (int64_t)sem_value(state) + dv;
    int64_t l = (int64_t)sem_leased(state) + dl;
    if (v < 0)
      return ATR_EEMPTY;
    if (bounded && m->bound != 0 && (uint64_t)(v + l) > m->bound)
      return ATR_EOVERRELEASE;
    if (v > (int64_t)SEM_VALUE_MAX || l < 0)
      return ATR_EOVERFLOW;
    uint64_t waiters = dv > 0 ? 0 : (state & SEM_WAITERS);
    next = ((uint64_t)l << 32) | (uint64_t)v | waiters;
  } while (!atomic_compare_exchange_weak(&m->state, &state, next));
  __atomic_fetch_add(&o->version, 1, __ATOMIC_RELAXED);
  if (dv > 0 && (state & SEM_WAITERS))
    atr__futex_wake(sem_word(m));
  if (after != NULL)
    *after = next;
  return 0;
}

struct sem_init_arg {
  uint64_t value, bound;
};

static int sem_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct sem_init_arg *si = arg;
  struct atr__sem *m = &o->u.sem;
  uint64_t most = si->value > si->bound ? si->value : si->bound;
  uint32_t cap = most == 0              ? 1
                 : most > SEM_TABLE_MAX ? SEM_TABLE_MAX
                                        : (uint32_t)most;
  uint64_t bytes = (uint64_t)cap * sizeof(struct sem_place), got;
  if ((o->data_off = atr__heap_alloc(s, bytes, &got)) == 0)
    return ATR_ENOSPC;
  o->data_size = got;
  memset(s->base + o->data_off, 0, bytes);
  atomic_store(&m->state, si->value);
  atomic_store(&m->pend_rel, 0);
  atomic_store(&m->waiters, 0);
  m->bound = si->bound;
  m->table_cap = cap;
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

/* Whether place p is a dead holder's (the kernel marked it) or a lease
 * past its deadline: collectable. Lock-free as a hint; exact under the
 * record lock. */
static bool sem_place_over(struct sem_place *p, int64_t now_ns) {
  uint32_t w = atomic_load(&p->hold.word) & ~ATR__WAITERS;
  return w == ATR__OWNER_DIED || atr__lease_over(&p->hold, now_ns);
}

/*
 * Under the record lock: gives back to value every place whose holder
 * died (*dead) or whose lease ran out (*expired), and wakes the waiters.
 * The places are freed first, then the count moves (see the top).
 */
static void sem_collect(const atr_handle *h, struct atr__obj *o,
                        struct sem_place *t, uint32_t *dead,
                        uint32_t *expired) {
  int64_t now = atr__now_ns();
  *dead = *expired = 0;
  for (uint32_t i = 0; i < o->u.sem.table_cap; i++) {
    struct sem_place *p = &t[i];
    uint32_t w = atomic_load(&p->hold.word) & ~ATR__WAITERS;
    if (w == ATR__OWNER_DIED) {
      /* The kernel woke one sleeper of this word; the value's wake
       * below reaches every one (they watch it too). */
      atomic_store(&p->hold.word, 0);
      p->token = 0;
      ++*dead;
    } else if (atr__lease_over(&p->hold, now)) {
      atr__lease_give(&p->hold, 0, 0);
      p->token = 0;
      ++*expired;
    }
  }
  uint32_t n = *dead + *expired;
  if (n == 0)
    return;
  sem_move(o, n, -(int64_t)n, false, NULL);
  atr__futex_wake(sem_word(&o->u.sem));
  atr__feed_push(h->store, o, h->slot, ATR_OP_RELEASED, NULL);
}

/* Collects what is collectable if a look without the lock finds any:
 * how many dead holders' permits it gave back (>= 0), or an error. */
static int sem_reclaim(const atr_handle *h, struct atr__obj *o) {
  struct sem_place *t = sem_table(h->store, o);
  int64_t now = atr__now_ns();
  uint32_t i, dead, expired;
  int rc;
  if (t == NULL)
    return ATR_ECORRUPT;
  for (i = 0; i < o->u.sem.table_cap && !sem_place_over(&t[i], now); i++)
    ;
  if (i == o->u.sem.table_cap)
    return 0;
  if ((rc = atr__handle_lock(h, ATR_SEMAPHORE, &o)) != 0)
    return rc;
  if ((t = sem_table(h->store, o)) == NULL) {
    atr__mutex_unlock(&o->lock);
    return ATR_ECORRUPT;
  }
  sem_collect(h, o, t, &dead, &expired);
  atr__mutex_unlock(&o->lock);
  return (int)dead;
}

/*
 * Called with no permit free (state as read): sets the waiter bit and
 * sleeps until the value moves, a process-held permit's holder dies or
 * the earliest lease's deadline passes, up to deadline_ns. 0 to look
 * again, ATR_EINTR.
 */
static int sem_sleep(const atr_handle *h, struct atr__obj *o, uint64_t state,
                     int64_t deadline_ns) {
  struct atr__sem *m = &o->u.sem;
  /* One word more than futex_waitv takes means "and others" to it: it
   * then sleeps in 20 ms slices (see atr__futex_waitv). */
  _Atomic uint32_t *words[ATR__WAITV_MAX + 1];
  uint32_t vals[ATR__WAITV_MAX + 1];
  size_t n = 1;
  uint64_t want = state | SEM_WAITERS;
  if (!(state & SEM_WAITERS) &&
      !atomic_compare_exchange_strong(&m->state, &state, want))
    return 0; /* it moved: look again */
  words[0] = sem_word(m);
  vals[0] = (uint32_t)want;
  struct sem_place *t = sem_leased(want) > 0 ? sem_table(h->store, o) : NULL;
  for (uint32_t i = 0; t != NULL && i < m->table_cap; i++) {
    struct atr__hold *p = &t[i].hold;
    uint32_t w = atomic_load(&p->word);
    if (atr__lease_is(p, 0)) {
      int64_t end = __atomic_load_n(&p->deadline_ns, __ATOMIC_RELAXED);
      if (deadline_ns < 0 || end < deadline_ns)
        deadline_ns = end;
    } else if (atr__word_linked(w) && n <= ATR__WAITV_MAX) {
      if (atr__hold_watch(p, &vals[n]) != 0)
        return 0; /* its holder died or gave it back: look again */
      words[n++] = &p->word;
    } else if ((w & ~ATR__WAITERS) == ATR__OWNER_DIED) {
      return 0;
    }
  }
  atomic_fetch_add(&m->waiters, 1);
  int rc = n == 1 ? atr__futex_wait_until(words[0], vals[0], deadline_ns)
                  : atr__futex_waitv(words, vals, n, deadline_ns);
  atomic_fetch_sub(&m->waiters, 1);
  return rc == ATR_EINTR ? rc : 0;
}

ATR__EXPORT int atr_sem_acquire(const atr_handle *h, double timeout,
                                uint64_t *value) {
  struct atr__obj *o = sem_of(h);
  int64_t deadline = atr__deadline_ns(timeout);
  bool abandoned = false;
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
                                        (state - 1) | (state & SEM_WAITERS)))
        continue;
      break;
    }
    if (sem_leased(state) > 0) {
      if ((rc = sem_reclaim(h, o)) < 0)
        return rc;
      if (rc > 0) {
        abandoned = true;
        state = atomic_load(&m->state);
        continue;
      }
    }
    if (deadline >= 0 && atr__now_ns() >= deadline)
      return ATR_ETIMEDOUT;
    if ((rc = sem_sleep(h, o, state, deadline)) != 0)
      return rc;
    state = atomic_load(&m->state);
  }
  __atomic_fetch_add(&o->version, 1, __ATOMIC_RELAXED);
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ACQUIRED, &o->pend);
  if (value != NULL)
    *value = sem_value(state) - 1;
  return abandoned ? ATR_ABANDONED : 0;
}

/* A free place of the table, or NULL. Under the record lock. */
static struct sem_place *sem_free_place(struct atr__obj *o,
                                        struct sem_place *t) {
  for (uint32_t i = 0; i < o->u.sem.table_cap; i++)
    if (atomic_load(&t[i].hold.word) == 0)
      return &t[i];
  return NULL;
}

/*
 * Under the record lock, with a place free: one try to take a leased
 * permit (the count first, then the place). 0, ATR_EEMPTY if no permit
 * is free, ATR_ENOENT.
 */
static int sem_lease_take(struct atr__obj *o, struct sem_place *p,
                          const struct atr__self *self, int64_t ttl_ns,
                          atr_grant *g) {
  uint64_t after;
  int rc = sem_move(o, -1, 1, false, &after);
  if (rc != 0)
    return rc;
  uint32_t seen;
  uint64_t token = atr__token();
  p->token = token;
  if (self != NULL)
    atr__hold_take(&p->hold, self, 0, &seen);
  else
    atr__lease_take(&p->hold, token, atr__now_ns() + ttl_ns, 0, &seen);
  g->token = token;
  g->count = sem_value(after);
  return 0;
}

ATR__EXPORT int atr_sem_lease(const atr_handle *h, double ttl, double timeout,
                              atr_grant *g) {
  struct atr__obj *o = sem_of(h);
  const struct atr__self *self = NULL;
  int64_t deadline = atr__deadline_ns(timeout), ttl_ns = 0;
  bool abandoned = false;
  atr_grant grant = {0, 0, 0, -1};
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if (isnan(ttl) || isnan(timeout) || ttl == 0)
    return ATR_EINVAL;
  if (ttl < 0) {
    if ((self = atr__self()) == NULL)
      return ATR_ESYS;
  } else {
    grant.ttl = ttl < ATR_LEASE_MAX ? ttl : ATR_LEASE_MAX;
    ttl_ns = (int64_t)(grant.ttl * 1e9);
  }
  for (;;) {
    uint32_t dead, expired;
    if ((rc = atr__handle_lock(h, ATR_SEMAPHORE, &o)) != 0)
      return rc;
    struct sem_place *t = sem_table(h->store, o);
    if (t == NULL) {
      atr__mutex_unlock(&o->lock);
      return ATR_ECORRUPT;
    }
    sem_collect(h, o, t, &dead, &expired);
    abandoned |= dead > 0;
    uint64_t state = atomic_load(&o->u.sem.state);
    if (sem_value(state) > 0) {
      struct sem_place *p = sem_free_place(o, t);
      rc =
          p == NULL ? ATR_ETOOMANY : sem_lease_take(o, p, self, ttl_ns, &grant);
      if (rc != ATR_EEMPTY) {
        atr__mutex_unlock(&o->lock);
        if (rc != 0)
          return rc;
        atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ACQUIRED, &o->pend);
        if (g != NULL)
          *g = grant;
        return abandoned ? ATR_ABANDONED : 0;
      }
      state = atomic_load(&o->u.sem.state);
    }
    atr__mutex_unlock(&o->lock);
    if (deadline >= 0 && atr__now_ns() >= deadline)
      return ATR_ETIMEDOUT;
    if ((rc = sem_sleep(h, o, state, deadline)) != 0)
      return rc;
  }
}

ATR__EXPORT int atr_sem_unlease(const atr_handle *h, uint64_t token,
                                uint64_t *value) {
  struct atr__obj *o;
  uint64_t after;
  uint32_t dead, expired;
  int rc;
  if ((rc = atr__handle_lock(h, ATR_SEMAPHORE, &o)) != 0)
    return rc;
  struct sem_place *t = sem_table(h->store, o), *p = NULL;
  if (t == NULL) {
    atr__mutex_unlock(&o->lock);
    return ATR_ECORRUPT;
  }
  /* A lease past its deadline is over: collected, not given back. */
  sem_collect(h, o, t, &dead, &expired);
  for (uint32_t i = 0; token != 0 && i < o->u.sem.table_cap && p == NULL; i++)
    if (t[i].token == token && !atr__word_free(atomic_load(&t[i].hold.word)))
      p = &t[i];
  const struct atr__self *self = NULL;
  rc = ATR_ENOTHELD;
  if (p != NULL && atr__lease_is(&p->hold, token)) {
    atr__lease_give(&p->hold, 0, INT32_MAX);
    rc = 0;
  } else if (p != NULL && (self = atr__self()) != NULL &&
             atr__hold_mine(&p->hold, self)) {
    atr__hold_give(&p->hold, self, 0, INT32_MAX);
    rc = 0;
  }
  if (rc == 0) {
    p->token = 0;
    sem_move(o, 1, -1, false, &after);
  }
  atr__mutex_unlock(&o->lock);
  if (rc != 0)
    return rc;
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_RELEASED,
                        &o->u.sem.pend_rel);
  if (value != NULL)
    *value = sem_value(after);
  return 0;
}

ATR__EXPORT int atr_sem_release(const atr_handle *h, uint64_t n,
                                uint64_t *value) {
  struct atr__obj *o = sem_of(h);
  uint64_t after;
  int rc;
  if (o == NULL || atomic_load(&o->id) != h->id)
    return ATR_ENOENT;
  if (n == 0 || n > SEM_VALUE_MAX)
    return ATR_EINVAL;
  if ((rc = sem_move(o, (int64_t)n, 0, true, &after)) != 0)
    return rc;
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_RELEASED,
                        &o->u.sem.pend_rel);
  if (value != NULL)
    *value = sem_value(after);
  return 0;
}

/* atr_sync_expire: collects the leases past their deadline (and the
 * places of dead holders). */
static int sem_expire(const atr_handle *h, struct atr__obj *o) {
  uint32_t dead, expired;
  int rc;
  if ((rc = atr__handle_lock(h, ATR_SEMAPHORE, &o)) != 0)
    return rc;
  struct sem_place *t = sem_table(h->store, o);
  if (t != NULL)
    sem_collect(h, o, t, &dead, &expired);
  atr__mutex_unlock(&o->lock);
  return t == NULL ? ATR_ECORRUPT : (int)expired;
}

/* A thread died holding the record lock, half-way through taking or
 * giving back a leased permit: `leased` may count one place more than
 * the table holds (see the top); that permit goes back to value. */
static void sem_repair(atr_store *s, struct atr__obj *o) {
  struct sem_place *t = sem_table(s, o);
  uint32_t held = 0;
  if (t == NULL)
    return;
  for (uint32_t i = 0; i < o->u.sem.table_cap; i++)
    held += !atr__word_free(atomic_load(&t[i].hold.word)) ||
            (atomic_load(&t[i].hold.word) & ~ATR__WAITERS) == ATR__OWNER_DIED;
  uint32_t leased = sem_leased(atomic_load(&o->u.sem.state));
  if (leased > held)
    sem_move(o, leased - held, -(int64_t)(leased - held), false, NULL);
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
      &m->state, &state,
      (state & ~(uint64_t)UINT32_MAX) | SEM_DEAD |
          ((uint32_t)(sem_value(state) + 1) & SEM_VALUE_MAX)))
    ;
  atr__mutex_unlock(&o->lock);
  atr__futex_wake(sem_word(m));
  return 0;
}

static int sem_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  struct atr__sem *m = &o->u.sem;
  uint64_t state = atomic_load(&m->state);
  if ((state & SEM_DEAD) || __atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  if (sem_table(s, o) == NULL)
    return ATR_ECORRUPT;
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

/* Whether a thread may still have a place of the table linked: the
 * record and its table then linger after a delete (robust.c's rule). */
static bool sem_lingers(const atr_store *s, const struct atr__obj *o) {
  struct sem_place *t = sem_table(s, o);
  return t != NULL &&
         atr__holds_linked(&t->hold, sizeof *t, o->u.sem.table_cap);
}

/* The table of leased permits. */
static uint64_t sem_data(const struct atr__obj *o, uint64_t *size) {
  *size = o->data_size;
  return o->data_off;
}

const struct atr__kind_ops atr__sem_ops = {
    .name = "semaphore",
    .kill = sem_kill,
    .repair = sem_repair,
    .info = sem_info,
    .data = sem_data,
    .last_version = sem_last_version,
    .mark = sem_mark,
    .lingers = sem_lingers,
    .expire = sem_expire,
};
