/*
 * barrier.c - barriers (Python's Barrier): parties threads (or leases)
 * wait until all have come, then all go on, each with its arrival index.
 *
 * Each waiter holds a place while it waits: a hold (robust.c) in the
 * barrier's table of 2 x parties places (the record's heap block), with
 * the round (generation) it came in, its index, and whether the round
 * broke for it. A place of a thread is in that thread's robust list, so
 * when a waiter dies the kernel marks its word FUTEX_OWNER_DIED and
 * wakes one sleeper of it: the others sleep with futex_waitv on the
 * barrier's `seq` word and on every other waiter's place, so the first
 * woken finds the dead place, breaks the barrier (seq moves, everyone
 * wakes) and the others answer ATR_EBROKEN at once. A lease place (the
 * gateway's arrive/poll/leave) has a deadline instead; a waiter sleeps
 * no longer than the earliest, and whoever finds one past it with its
 * round undecided breaks the barrier.
 *
 * All bookkeeping is under the record lock. A place is taken, then
 * written (round, index, waiting), then counted; a round passes with one
 * store (generation + 1: a place of an older round not marked broken has
 * passed); a break or reset marks the round's waiting places broken
 * first. So a thread that dies holding the record lock leaves what
 * bar_repair makes whole by counting the waiting places of the round.
 * Places are twice the parties so the leavers of a round that just passed
 * never keep the next round's arrivals out; past that (more threads than
 * parties, slow to leave), an arrival sleeps 1 ms and looks again.
 *
 * Deleting wakes everyone (ATR_ENOENT); the record and its table linger
 * while a waiter's place is still linked (`lingers`), and each waiter
 * gives its place back through the pointer it kept.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

#define BAR_PARTIES_MAX 1024u

enum { BAR_WAITING = 1, BAR_BROKEN = 2 };

struct bar_place {
  struct atr__hold hold;
  uint64_t ticket; /* a lease place's token */
  uint64_t gen;    /* the round it came in */
  uint32_t index;
  uint32_t state; /* BAR_WAITING, BAR_BROKEN, or 0 (left) */
};

/* The places, or NULL if the record's do not fit the store (damage). */
static struct bar_place *bar_table(const atr_store *s,
                                   const struct atr__obj *o) {
  const struct atr__barrier *b = &o->u.b;
  uint64_t bytes = (uint64_t)b->table_cap * sizeof(struct bar_place);
  if (b->parties == 0 || b->parties > BAR_PARTIES_MAX ||
      b->table_cap != 2 * b->parties || o->data_size < bytes ||
      o->data_off % 8 != 0 || !atr__heap_span_ok(s, o->data_off, bytes))
    return NULL;
  return (struct bar_place *)(void *)(s->base + o->data_off);
}

static int bar_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct atr__barrier *b = &o->u.b;
  uint64_t parties = *(uint64_t *)arg, got;
  uint64_t bytes = 2 * parties * sizeof(struct bar_place);
  if ((o->data_off = atr__heap_alloc(s, bytes, &got)) == 0)
    return ATR_ENOSPC;
  o->data_size = got;
  memset(s->base + o->data_off, 0, bytes);
  atomic_store(&b->seq, 0);
  b->parties = (uint32_t)parties;
  b->table_cap = (uint32_t)(2 * parties);
  b->count = b->broken = 0;
  b->generation = 0;
  atomic_store(&b->pend_pass, 0);
  return 0;
}

ATR__EXPORT int atr_barrier_open(atr_store *s, const char *name, int flags,
                                 uint64_t parties, atr_handle *h) {
  if ((flags & ATR_CREATE) && (parties == 0 || parties > BAR_PARTIES_MAX))
    return ATR_EINVAL;
  return atr__open(s, name, ATR_BARRIER, 0, flags, NULL, bar_init, &parties, h);
}

/* Writes a field read lock-free by describes. */
#define BAR_SET(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELEASE)
#define BAR_GET(field) __atomic_load_n(&(field), __ATOMIC_ACQUIRE)

/* Wakes every waiter: the round passed, broke or reset. */
static void bar_wake(struct atr__obj *o) {
  __atomic_fetch_add(&o->version, 1, __ATOMIC_RELAXED);
  atomic_fetch_add(&o->u.b.seq, 1);
  atr__futex_wake(&o->u.b.seq);
}

/* Whether p waits in the current round. */
static bool bar_in_round(const struct atr__barrier *b,
                         const struct bar_place *p) {
  return p->state == BAR_WAITING && p->gen == b->generation &&
         !atr__word_free(atomic_load(&p->hold.word) & ~ATR__OWNER_DIED);
}

/* Under the record lock: the waiters of the round get ATR_EBROKEN;
 * reset: the barrier is whole again for a new round, else broken. */
static void bar_break(const atr_handle *h, struct atr__obj *o,
                      struct bar_place *t, bool reset) {
  struct atr__barrier *b = &o->u.b;
  for (uint32_t i = 0; i < b->table_cap; i++)
    if (t[i].state == BAR_WAITING && t[i].gen == b->generation)
      t[i].state = BAR_BROKEN;
  BAR_SET(b->count, 0);
  if (reset) {
    BAR_SET(b->broken, 0);
    BAR_SET(b->generation, b->generation + 1);
  } else {
    BAR_SET(b->broken, 1);
  }
  bar_wake(o);
  atr__feed_push(h->store, o, h->slot, reset ? ATR_OP_RESET : ATR_OP_BROKEN,
                 NULL);
}

/* Under the record lock: the round passes (one store). */
static void bar_pass(const atr_handle *h, struct atr__obj *o) {
  struct atr__barrier *b = &o->u.b;
  BAR_SET(b->generation, b->generation + 1);
  BAR_SET(b->count, 0);
  bar_wake(o);
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_PASSED, &b->pend_pass);
}

/*
 * Under the record lock: frees the places whose holder died or whose
 * lease ran out; one of the current round breaks the barrier. Returns
 * how many leases it ended.
 */
static int bar_collect(const atr_handle *h, struct atr__obj *o,
                       struct bar_place *t) {
  struct atr__barrier *b = &o->u.b;
  int64_t now = atr__now_ns();
  bool lost = false;
  int ended = 0;
  for (uint32_t i = 0; i < b->table_cap; i++) {
    struct bar_place *p = &t[i];
    uint32_t w = atomic_load(&p->hold.word) & ~ATR__WAITERS;
    bool over = atr__lease_over(&p->hold, now);
    if (w != ATR__OWNER_DIED && !over)
      continue;
    lost |= p->state == BAR_WAITING && p->gen == b->generation;
    if (over) {
      atr__lease_give(&p->hold, 0, 0);
      ended++;
    } else {
      atomic_store(&p->hold.word, 0);
    }
    p->ticket = 0;
  }
  if (lost)
    bar_break(h, o, t, false);
  return ended;
}

/* The record lock, the barrier alive and its table whole. */
static int bar_lock(const atr_handle *h, struct atr__obj **o,
                    struct bar_place **t) {
  int rc = atr__handle_lock(h, ATR_BARRIER, o);
  if (rc != 0)
    return rc;
  if ((*t = bar_table(h->store, *o)) == NULL) {
    atr__mutex_unlock(&(*o)->lock);
    return ATR_ECORRUPT;
  }
  return 0;
}

/*
 * Under the record lock: takes a place in the round for the calling
 * thread (self) or a lease (token, deadline), and passes the round if it
 * is the last. 0 with *out, ATR_EBROKEN, or ATR_EFULL (no place free:
 * look again in a moment).
 */
static int bar_arrive(const atr_handle *h, struct atr__obj *o,
                      struct bar_place *t, const struct atr__self *self,
                      uint64_t token, int64_t deadline_ns,
                      struct bar_place **out) {
  struct atr__barrier *b = &o->u.b;
  struct bar_place *p = NULL;
  uint32_t seen;
  bar_collect(h, o, t);
  if (b->broken)
    return ATR_EBROKEN;
  for (uint32_t i = 0; i < b->table_cap && p == NULL; i++)
    if (atomic_load(&t[i].hold.word) == 0)
      p = &t[i];
  if (p == NULL)
    return ATR_EFULL;
  /* Taken, then written, then counted (see the top). */
  /* FUTEX_WAITERS from the start: the others sleep on this word
   * already, and the kernel wakes them at our death only if it is set. */
  if (self != NULL)
    atr__hold_take(&p->hold, self, ATR__WAITERS, &seen);
  else
    atr__lease_take(&p->hold, token, deadline_ns, 0, &seen);
  p->ticket = token;
  p->gen = b->generation;
  p->index = b->count;
  p->state = BAR_WAITING;
  BAR_SET(b->count, b->count + 1);
  __atomic_fetch_add(&o->version, 1, __ATOMIC_RELAXED);
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_WAIT, &o->pend);
  if (b->count >= b->parties)
    bar_pass(h, o);
  *out = p;
  return 0;
}

/* Under the record lock: what became of place p's round. 0 (passed),
 * ATR_EBROKEN, or ATR_ETIMEDOUT (undecided). */
static int bar_outcome(const struct atr__barrier *b,
                       const struct bar_place *p) {
  if (p->state == BAR_BROKEN)
    return ATR_EBROKEN;
  return p->gen < b->generation ? 0 : ATR_ETIMEDOUT;
}

/*
 * Without the lock: sleeps until seq moves from val, a waiter dies, or
 * the earliest lease place's deadline (or deadline_ns) passes. 0 or
 * ATR_EINTR.
 *
 * It sleeps on every place's word, free or held, as it reads it now:
 * futex_waitv compares a word only when it queues, and stays queued on
 * its address after, so a waiter that arrives later (taking a free
 * place with FUTEX_WAITERS set, see bar_arrive) and dies is seen too:
 * the kernel wakes one sleeper of its word, which breaks the barrier for
 * all. Arrivals and leavers wake nobody.
 */
static int bar_sleep(const atr_handle *h, struct atr__obj *o,
                     const struct bar_place *me, uint32_t val,
                     int64_t deadline_ns) {
  /* One word more than futex_waitv takes tells it there are others (it
   * then sleeps in 20 ms slices). */
  _Atomic uint32_t *words[ATR__WAITV_MAX + 1];
  uint32_t vals[ATR__WAITV_MAX + 1];
  size_t n = 1;
  struct atr__barrier *b = &o->u.b;
  struct bar_place *t = bar_table(h->store, o);
  words[0] = &b->seq;
  vals[0] = val;
  for (uint32_t i = 0; t != NULL && i < b->table_cap; i++) {
    struct bar_place *p = &t[i];
    if (p == me)
      continue;
    uint32_t w = atomic_load(&p->hold.word);
    if ((w & ~ATR__WAITERS) == ATR__OWNER_DIED)
      return 0; /* look again now */
    if (atr__lease_is(&p->hold, 0)) {
      int64_t end = __atomic_load_n(&p->hold.deadline_ns, __ATOMIC_RELAXED);
      if (deadline_ns < 0 || end < deadline_ns)
        deadline_ns = end;
    } else if (n <= ATR__WAITV_MAX) {
      vals[n] = w;
      words[n++] = &p->hold.word;
    }
  }
  int rc = n == 1 ? atr__futex_wait_until(words[0], vals[0], deadline_ns)
                  : atr__futex_waitv(words, vals, n, deadline_ns);
  return rc == ATR_EINTR ? rc : 0;
}

ATR__EXPORT int atr_barrier_wait(const atr_handle *h, double timeout,
                                 uint64_t *index, uint64_t *generation) {
  struct atr__obj *o;
  struct bar_place *t, *me = NULL;
  const struct atr__self *self;
  int64_t deadline = atr__deadline_ns(timeout);
  int rc;
  if (isnan(timeout))
    return ATR_EINVAL;
  if ((self = atr__self()) == NULL)
    return ATR_ESYS;
  for (;;) {
    if ((rc = bar_lock(h, &o, &t)) != 0)
      return rc;
    rc = bar_arrive(h, o, t, self, 0, -1, &me);
    uint32_t val = atomic_load(&o->u.b.seq);
    atr__mutex_unlock(&o->lock);
    if (rc != ATR_EFULL)
      break;
    /* Every place is held by leavers of past rounds (a stopped one may
     * hold it long; in a damaged store, anything may): a moment, but
     * never past the caller's timeout. */
    int64_t left = deadline < 0 ? 1000000 : deadline - atr__now_ns();
    if (left <= 0)
      return ATR_ETIMEDOUT;
    if (atr__futex_wait(&o->u.b.seq, val,
                        (double)(left < 1000000 ? left : 1000000) / 1e9) ==
        ATR_EINTR)
      return ATR_EINTR;
  }
  if (rc != 0)
    return rc;
  /* Once given back the place may be anyone's: what we answer is read
   * now. */
  uint64_t my_index = me->index, my_gen = me->gen;
  int slept = 0;
  uint32_t val = 0;
  for (;;) {
    /* The first pass looks at once: the round may have passed as we
     * came. */
    if ((rc = atr__handle_lock(h, ATR_BARRIER, &o)) != 0) {
      /* Deleted (or the lock failed): the table lingers while our place
       * is linked (see the top), so we give it back without the lock. */
      me->state = 0;
      atr__hold_give(&me->hold, self, 0, 0);
      return rc;
    }
    if ((t = bar_table(h->store, o)) != NULL)
      bar_collect(h, o, t);
    rc = bar_outcome(&o->u.b, me);
    bool leave = rc != ATR_ETIMEDOUT;
    if (!leave &&
        (slept == ATR_EINTR || (deadline >= 0 && atr__now_ns() >= deadline))) {
      /* A waiter that leaves breaks the barrier for the others. */
      if (t != NULL)
        bar_break(h, o, t, false);
      rc = slept == ATR_EINTR ? ATR_EINTR : ATR_ETIMEDOUT;
      leave = true;
    }
    if (leave) {
      me->state = 0;
      atr__hold_give(&me->hold, self, 0, 0);
      atr__mutex_unlock(&o->lock);
      break;
    }
    val = atomic_load(&o->u.b.seq);
    atr__mutex_unlock(&o->lock);
    slept = bar_sleep(h, o, me, val, deadline);
  }
  if (rc == 0) {
    if (index != NULL)
      *index = my_index;
    if (generation != NULL)
      *generation = my_gen;
  }
  return rc;
}

ATR__EXPORT int atr_barrier_arrive(const atr_handle *h, double deadline_in,
                                   uint64_t *ticket) {
  struct atr__obj *o;
  struct bar_place *t, *p;
  int rc;
  if (isnan(deadline_in) || deadline_in <= 0)
    return ATR_EINVAL;
  if (deadline_in > ATR_LEASE_MAX)
    deadline_in = ATR_LEASE_MAX;
  if ((rc = bar_lock(h, &o, &t)) != 0)
    return rc;
  uint64_t token = atr__token();
  rc = bar_arrive(h, o, t, NULL, token,
                  atr__now_ns() + (int64_t)(deadline_in * 1e9), &p);
  atr__mutex_unlock(&o->lock);
  if (rc == 0 && ticket != NULL)
    *ticket = token;
  return rc == ATR_EFULL ? ATR_ETOOMANY : rc;
}

/* The record lock with the lease place of ticket (after collecting what
 * ran out): 0 with the lock held, or an error (ATR_ENOTHELD: no such
 * place) with it released. */
static int bar_lock_place(const atr_handle *h, uint64_t ticket,
                          struct atr__obj **o, struct bar_place **t,
                          struct bar_place **p) {
  int rc;
  if ((rc = bar_lock(h, o, t)) != 0)
    return rc;
  bar_collect(h, *o, *t);
  for (uint32_t i = 0; ticket != 0 && i < (*o)->u.b.table_cap; i++) {
    *p = &(*t)[i];
    if ((*p)->ticket == ticket && atr__lease_is(&(*p)->hold, ticket))
      return 0;
  }
  atr__mutex_unlock(&(*o)->lock);
  return ATR_ENOTHELD;
}

/* Under the record lock: lease place p is free again. */
static void bar_place_free(struct bar_place *p) {
  p->state = 0;
  p->ticket = 0;
  atr__lease_give(&p->hold, 0, 0);
}

ATR__EXPORT int atr_barrier_poll(const atr_handle *h, uint64_t ticket,
                                 uint64_t *index, uint64_t *generation) {
  struct atr__obj *o;
  struct bar_place *t, *p;
  int rc;
  if ((rc = bar_lock_place(h, ticket, &o, &t, &p)) != 0)
    return rc;
  rc = bar_outcome(&o->u.b, p);
  if (rc == 0) {
    if (index != NULL)
      *index = p->index;
    if (generation != NULL)
      *generation = p->gen;
  }
  if (rc != ATR_ETIMEDOUT)
    bar_place_free(p); /* answered */
  atr__mutex_unlock(&o->lock);
  return rc;
}

ATR__EXPORT int atr_barrier_leave(const atr_handle *h, uint64_t ticket) {
  struct atr__obj *o;
  struct bar_place *t, *p;
  int rc;
  if ((rc = bar_lock_place(h, ticket, &o, &t, &p)) != 0)
    return rc;
  if (bar_outcome(&o->u.b, p) == ATR_ETIMEDOUT)
    bar_break(h, o, t, false);
  bar_place_free(p);
  atr__mutex_unlock(&o->lock);
  return 0;
}

/* abort (reset false) and reset. */
static int bar_act(const atr_handle *h, bool reset) {
  struct atr__obj *o;
  struct bar_place *t;
  int rc;
  if ((rc = bar_lock(h, &o, &t)) != 0)
    return rc;
  bar_collect(h, o, t);
  if (reset || !o->u.b.broken)
    bar_break(h, o, t, reset);
  atr__mutex_unlock(&o->lock);
  return 0;
}

ATR__EXPORT int atr_barrier_abort(const atr_handle *h) {
  return bar_act(h, false);
}

ATR__EXPORT int atr_barrier_reset(const atr_handle *h) {
  return bar_act(h, true);
}

static int bar_expire(const atr_handle *h, struct atr__obj *o) {
  struct bar_place *t;
  int rc;
  if ((rc = bar_lock(h, &o, &t)) != 0)
    return rc;
  rc = bar_collect(h, o, t);
  atr__mutex_unlock(&o->lock);
  return rc;
}

/* A thread died holding the record lock, maybe half-way through an
 * arrival or a pass: the round's count is what its waiting places say,
 * and a full round passes. */
static void bar_repair(atr_store *s, struct atr__obj *o) {
  struct atr__barrier *b = &o->u.b;
  struct bar_place *t = bar_table(s, o);
  uint32_t n = 0;
  if (t == NULL)
    return;
  for (uint32_t i = 0; i < b->table_cap; i++)
    n += bar_in_round(b, &t[i]);
  BAR_SET(b->count, n);
  if (!b->broken && n >= b->parties) {
    BAR_SET(b->generation, b->generation + 1);
    BAR_SET(b->count, 0);
  }
  bar_wake(o);
}

/* Under the store lock: every waiter wakes and finds the record dead. */
static int bar_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  __atomic_store_n(&o->dead, 1, __ATOMIC_SEQ_CST);
  bar_wake(o);
  *last = __atomic_load_n(&o->version, __ATOMIC_SEQ_CST);
  atr__mutex_unlock(&o->lock);
  return 0;
}

static int bar_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  struct atr__barrier *b = &o->u.b;
  if (__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  if (bar_table(s, o) == NULL)
    return ATR_ECORRUPT;
  info->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  info->parties = b->parties;
  info->n_waiting = BAR_GET(b->count);
  info->generation = BAR_GET(b->generation);
  info->broken = BAR_GET(b->broken) != 0;
  info->expires_in = -1;
  return 0;
}

/* Whether a waiter may still have its place linked: the record and its
 * table then linger after a delete (robust.c's rule) until it leaves. */
static bool bar_lingers(const atr_store *s, const struct atr__obj *o) {
  struct bar_place *t = bar_table(s, o);
  return t != NULL && atr__holds_linked(&t->hold, sizeof *t, o->u.b.table_cap);
}

static uint64_t bar_data(const struct atr__obj *o, uint64_t *size) {
  *size = o->data_size;
  return o->data_off;
}

static uint64_t bar_last_version(const struct atr__obj *o) {
  return o->version;
}

/* A round's passing keeps its mark apart from the arrivals'. */
static _Atomic uint64_t *bar_mark(struct atr__obj *o, atr_op op) {
  return op == ATR_OP_PASSED ? &o->u.b.pend_pass : &o->pend;
}

const struct atr__kind_ops atr__barrier_ops = {
    .name = "barrier",
    .kill = bar_kill,
    .repair = bar_repair,
    .info = bar_info,
    .data = bar_data,
    .last_version = bar_last_version,
    .mark = bar_mark,
    .lingers = bar_lingers,
    .expire = bar_expire,
};
