/*
 * condition.c - conditions (Python's Condition), bound to a lock.
 *
 * The waiters' line is a table of places in a heap block made with the
 * condition: each place is a hold (robust.c) plus a ticket (its age) and
 * a state. A process waiter takes its place's hold for the length of its
 * wait, linked in its robust list, so a waiter that dies leaves
 * FUTEX_OWNER_DIED there and notify passes it by (and frees the place).
 * A lease waiter (the gateway's) holds its place as a lease until its
 * deadline, past which it counts as gone.
 *
 * The bookkeeping runs under the condition's record lock while the
 * user's lock is held: wait registers its place before it releases the
 * lock, notify requires the lock, and a waiter settles (frees its place,
 * reading whether it was notified) after taking the lock again. So a
 * notify never misses a waiter that registered before it, and a waiter
 * whose timeout races a notify reports the notify. notify(n) marks the n
 * oldest live places notified, bumps the sequence word and wakes it;
 * waiters sleep on that word.
 *
 * A deleted condition keeps its record and table while a waiter has a
 * place linked (`lingers`, the rule of robust.c); its waiters wake (the
 * kill bumps the sequence), take the lock again and answer ATR_ENOENT.
 */
#include "internal.h"

#include <string.h>

#define CD_PLACES 128u

enum { CD_FREE = 0, CD_WAITING = 1, CD_NOTIFIED = 2 };

struct cd_place {
  struct atr__hold hold;
  uint64_t ticket; /* 0: free */
  _Atomic uint32_t state;
  uint32_t lease;
};

static struct atr__obj *cd_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_CONDITION && o->kind == ATR_CONDITION
             ? o
             : NULL;
}

/* o's table, or NULL if it does not fit the store (damage). */
static struct cd_place *cd_table(const atr_store *s, const struct atr__obj *o) {
  const struct atr__cond_state *c = &o->u.c;
  if (c->places == 0 || c->places > 1024 ||
      c->table_size < (uint64_t)c->places * sizeof(struct cd_place) ||
      c->table_off % 8 != 0 ||
      !atr__heap_span_ok(s, c->table_off, c->table_size))
    return NULL;
  return (struct cd_place *)(s->base + c->table_off);
}

/* The handle of the condition's lock: ATR_ENOENT once it is deleted. */
static int cd_lock_handle(const atr_handle *h, struct atr__obj *o,
                          atr_handle *lh) {
  atr_store *s = h->store;
  const struct atr__cond_state *c = &o->u.c;
  if (c->lock_slot >= s->hdr->max_objects)
    return ATR_ECORRUPT;
  *lh = (atr_handle){
      s, c->lock_id, atr__slot(s, c->lock_slot), c->lock_slot, ATR_LOCK, 0};
  struct atr__obj *lo = atr__obj_of(lh);
  return lo != NULL && lo->kind == ATR_LOCK ? 0 : ATR_ENOENT;
}

struct cd_init_arg {
  const char *lock_name;
};

static int cd_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct cd_init_arg *ci = arg;
  struct atr__cond_state *c = &o->u.c;
  uint32_t slot;
  uint64_t id, got, off;
  size_t len;
  int rc;
  if (ci->lock_name == NULL)
    return ATR_EINVAL;
  len = strnlen(ci->lock_name, ATR_NAME_MAX + 1);
  if ((rc = atr_name_check(ci->lock_name, len)) != 0)
    return rc;
  if ((rc = atr__lookup(s, ci->lock_name, len, &slot, &id)) != 0)
    return rc;
  if (atr__slot(s, slot)->kind != ATR_LOCK)
    return ATR_EKIND;
  uint64_t size = (uint64_t)CD_PLACES * sizeof(struct cd_place);
  if ((off = atr__heap_alloc(s, size, &got)) == 0)
    return ATR_ENOSPC;
  memset(s->base + off, 0, size);
  memset(c, 0, sizeof *c);
  c->lock_id = id;
  c->lock_slot = slot;
  c->places = CD_PLACES;
  c->table_off = off;
  c->table_size = got;
  memcpy(c->lock_name, ci->lock_name, len);
  o->data_off = off;
  o->data_size = got;
  return 0;
}

ATR__EXPORT int atr_cond_open(atr_store *s, const char *name, int flags,
                              const char *lock_name, atr_handle *h) {
  struct cd_init_arg ci = {lock_name};
  return atr__open(s, name, ATR_CONDITION, 0, flags, NULL, cd_init, &ci, h);
}

/* Under the record lock: a free place (none linked), or NULL. */
static struct cd_place *cd_free_place(struct cd_place *t, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (atomic_load(&t[i].state) == CD_FREE && t[i].ticket == 0 &&
        !atr__word_linked(atomic_load(&t[i].hold.word)))
      return &t[i];
  return NULL;
}

/* Under the record lock: frees place p (its hold already given back). */
static void cd_free(struct atr__obj *o, struct cd_place *p) {
  p->ticket = 0;
  p->lease = 0;
  atomic_store(&p->state, CD_FREE);
  atomic_fetch_sub(&o->u.c.waiters, 1);
}

/* Whether waiting place p still has a waiter: a process waiter that
 * lives, or a lease in time. */
static bool cd_live(const struct cd_place *p, int64_t now) {
  uint32_t w = atomic_load(&p->hold.word);
  if (p->lease)
    return (w & ATR__TID_MASK) == ATR__LEASE_TID && now < p->hold.deadline_ns;
  return atr__word_linked(w);
}

/* Under the record lock: frees the waiting places whose waiter is gone
 * (dead process: the kernel marked its word; lease past its deadline).
 * Returns how many. */
static int cd_sweep(struct atr__obj *o, struct cd_place *t, int64_t now) {
  int n = 0;
  for (uint32_t i = 0; i < o->u.c.places; i++) {
    struct cd_place *p = &t[i];
    if (atomic_load(&p->state) == CD_FREE || cd_live(p, now))
      continue;
    /* Not linked any more (its thread died), or a lease: nothing but
     * this record refers to it. */
    atomic_store(&p->hold.word, 0);
    p->hold.nonce = 0;
    cd_free(o, p);
    n++;
  }
  return n;
}

/* Registers a waiter: under the record lock, a place with the next
 * ticket, taken by self (a process) or as a lease of token until
 * deadline. */
static int cd_register(const atr_handle *h, struct atr__obj **out,
                       const struct atr__self *self, int64_t deadline,
                       struct cd_place **place) {
  struct atr__obj *o;
  struct cd_place *t, *p;
  uint32_t seen;
  int rc;
  if ((rc = atr__handle_lock(h, ATR_CONDITION, &o)) != 0)
    return rc;
  if ((t = cd_table(h->store, o)) == NULL) {
    rc = ATR_ECORRUPT;
    goto out;
  }
  if ((p = cd_free_place(t, o->u.c.places)) == NULL) {
    cd_sweep(o, t, atr__now_ns());
    if ((p = cd_free_place(t, o->u.c.places)) == NULL) {
      rc = ATR_ETOOMANY;
      goto out;
    }
  }
  p->ticket = ++o->u.c.next_ticket;
  if (self != NULL) {
    p->lease = 0;
    atomic_store(&p->hold.word, 0);
    rc = atr__hold_take(&p->hold, self, 0, &seen);
  } else {
    p->lease = 1;
    atomic_store(&p->hold.word, 0);
    rc = atr__lease_take(&p->hold, p->ticket, deadline, 0, &seen);
  }
  if (rc != 0 && rc != ATR_ABANDONED) {
    p->ticket = 0;
    rc = ATR_ECORRUPT;
    goto out;
  }
  rc = 0;
  atomic_store(&p->state, CD_WAITING);
  atomic_fetch_add(&o->u.c.waiters, 1);
  *place = p;
  *out = o;
out:
  atr__mutex_unlock(&o->lock);
  return rc;
}

ATR__EXPORT int atr_cond_wait(const atr_handle *h, double timeout,
                              int *notified, atr_grant *g) {
  struct atr__obj *o = cd_of(h);
  const struct atr__self *self;
  struct cd_place *p;
  atr_handle lh;
  uint64_t count;
  int rc, lrc;
  if (notified != NULL)
    *notified = 0;
  if (o == NULL)
    return ATR_ENOENT;
  if ((self = atr__self()) == NULL)
    return ATR_ESYS;
  if ((rc = cd_lock_handle(h, o, &lh)) != 0)
    return rc;
  if ((rc = atr__lock_holder_check(&lh, 0)) != 0)
    return rc;
  int64_t deadline = atr__deadline_ns(timeout);
  if ((rc = cd_register(h, &o, self, 0, &p)) != 0)
    return rc;
  if ((rc = atr__lock_release_all(&lh, &count)) == 0) {
    struct atr__cond_state *c = &o->u.c;
    for (;;) {
      uint32_t seq = atomic_load(&c->seq);
      if (atomic_load(&p->state) == CD_NOTIFIED)
        break;
      if (__atomic_load_n(&o->dead, __ATOMIC_SEQ_CST)) {
        rc = ATR_ENOENT;
        break;
      }
      if (deadline >= 0 && atr__now_ns() >= deadline) {
        rc = ATR_ETIMEDOUT;
        break;
      }
      if (atr__futex_wait_until(&c->seq, seq, deadline) == ATR_EINTR) {
        rc = ATR_EINTR;
        break;
      }
    }
    lrc = atr__lock_retake(&lh, count, g);
    if (lrc < 0)
      rc = lrc;
    else if (lrc == ATR_ABANDONED && (rc == 0 || rc == ATR_ETIMEDOUT))
      rc = ATR_ABANDONED;
  }
  /* Settle: the place goes, and says whether a notify reached it (a
   * notify that came with the timeout counts, as in Python). The record
   * may be dead: it lingers for this place. */
  int lrc2 = atr__record_lock(h->store, o);
  bool was = atomic_load(&p->state) == CD_NOTIFIED;
  /* Unlinked whatever happens (the list is this thread's); without the
   * record lock (a holder that does not let go, with a patience) the
   * place stays in the line with a free word: the next sweep frees it. */
  atr__hold_give(&p->hold, self, 0, 0);
  if (lrc2 == 0) {
    cd_free(o, p);
    atr__mutex_unlock(&o->lock);
  }
  if (was && rc == ATR_ETIMEDOUT)
    rc = 0;
  if (notified != NULL)
    *notified = was;
  return rc;
}

ATR__EXPORT int atr_cond_wait_begin(const atr_handle *h, uint64_t token,
                                    double deadline_in, uint64_t *ticket,
                                    uint64_t *count) {
  struct atr__obj *o = cd_of(h);
  struct cd_place *p;
  atr_handle lh;
  uint64_t depth = 0;
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if (token == 0 || !(deadline_in >= 0))
    return token == 0 ? ATR_ENOTHELD : ATR_EINVAL;
  if (deadline_in > ATR_LEASE_MAX)
    deadline_in = ATR_LEASE_MAX;
  if ((rc = cd_lock_handle(h, o, &lh)) != 0)
    return rc;
  if ((rc = atr__lock_holder_check(&lh, token)) != 0)
    return rc;
  int64_t deadline = atr__now_ns() + (int64_t)(deadline_in * 1e9);
  if ((rc = cd_register(h, &o, NULL, deadline, &p)) != 0)
    return rc;
  if ((rc = atr__lock_unlease_all(&lh, token, &depth)) != 0) {
    if (atr__record_lock(h->store, o) == 0) {
      atr__lease_give(&p->hold, 0, 0);
      cd_free(o, p);
      atr__mutex_unlock(&o->lock);
    } /* else its lease runs out, and a sweep frees it */
    return rc;
  }
  if (ticket != NULL)
    *ticket = p->ticket;
  if (count != NULL)
    *count = depth;
  return 0;
}

/* Under the record lock: the lease place of ticket, or NULL. */
static struct cd_place *cd_find(struct atr__obj *o, struct cd_place *t,
                                uint64_t ticket) {
  for (uint32_t i = 0; ticket != 0 && i < o->u.c.places; i++)
    if (t[i].ticket == ticket && t[i].lease &&
        atomic_load(&t[i].state) != CD_FREE)
      return &t[i];
  return NULL;
}

/* Finds ticket's place under the record lock and runs fn on it. */
static int cd_with_ticket(const atr_handle *h, uint64_t ticket,
                          int (*fn)(struct atr__obj *o, struct cd_place *p)) {
  struct atr__obj *o;
  struct cd_place *t, *p;
  int rc;
  if ((rc = atr__handle_lock(h, ATR_CONDITION, &o)) != 0)
    return rc;
  if ((t = cd_table(h->store, o)) == NULL)
    rc = ATR_ECORRUPT;
  else if ((p = cd_find(o, t, ticket)) == NULL)
    rc = ATR_ENOTHELD;
  else
    rc = fn(o, p);
  atr__mutex_unlock(&o->lock);
  return rc;
}

static int cd_poll_fn(struct atr__obj *o, struct cd_place *p) {
  (void)o;
  return atomic_load(&p->state) == CD_NOTIFIED ? 0 : ATR_ETIMEDOUT;
}

ATR__EXPORT int atr_cond_wait_poll(const atr_handle *h, uint64_t ticket) {
  struct atr__obj *o = cd_of(h);
  atr_handle lh;
  int rc;
  /* A notified place whose lock is gone has nothing to take again. */
  if (o == NULL)
    return ATR_ENOENT;
  if ((rc = cd_lock_handle(h, o, &lh)) != 0)
    return rc;
  return cd_with_ticket(h, ticket, cd_poll_fn);
}

static int cd_end_fn(struct atr__obj *o, struct cd_place *p) {
  atr__lease_give(&p->hold, 0, 0);
  cd_free(o, p);
  return 0;
}

ATR__EXPORT int atr_cond_wait_end(const atr_handle *h, uint64_t ticket) {
  return cd_with_ticket(h, ticket, cd_end_fn);
}

ATR__EXPORT int atr_cond_notify(const atr_handle *h, uint64_t token, uint64_t n,
                                uint64_t *woken) {
  struct atr__obj *o = cd_of(h);
  struct cd_place *t;
  atr_handle lh;
  uint64_t k = 0;
  int rc;
  if (woken != NULL)
    *woken = 0;
  if (o == NULL)
    return ATR_ENOENT;
  if ((rc = cd_lock_handle(h, o, &lh)) != 0)
    return rc;
  if ((rc = atr__lock_holder_check(&lh, token)) != 0)
    return rc;
  if ((rc = atr__handle_lock(h, ATR_CONDITION, &o)) != 0)
    return rc;
  if ((t = cd_table(h->store, o)) == NULL) {
    atr__mutex_unlock(&o->lock);
    return ATR_ECORRUPT;
  }
  int64_t now = atr__now_ns();
  cd_sweep(o, t, now); /* the dead never take a notify */
  while (k < n) {
    struct cd_place *oldest = NULL;
    for (uint32_t i = 0; i < o->u.c.places; i++)
      if (atomic_load(&t[i].state) == CD_WAITING &&
          (oldest == NULL || t[i].ticket < oldest->ticket))
        oldest = &t[i];
    if (oldest == NULL)
      break;
    atomic_store(&oldest->state, CD_NOTIFIED);
    k++;
  }
  if (k > 0) {
    __atomic_add_fetch(&o->version, 1, __ATOMIC_SEQ_CST);
    atomic_fetch_add(&o->u.c.seq, 1);
    atr__futex_wake(&o->u.c.seq);
    atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_NOTIFY, &o->pend);
  }
  atr__mutex_unlock(&o->lock);
  if (woken != NULL)
    *woken = k;
  return 0;
}

/* atr_sync_expire's part: lease places past their deadline go. */
static int cd_expire(const atr_handle *h, struct atr__obj *o) {
  struct cd_place *t;
  int rc;
  (void)o;
  if ((rc = atr__handle_lock(h, ATR_CONDITION, &o)) != 0)
    return rc;
  rc = (t = cd_table(h->store, o)) == NULL ? ATR_ECORRUPT
                                           : cd_sweep(o, t, atr__now_ns());
  atr__mutex_unlock(&o->lock);
  return rc;
}

static int cd_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  (void)s;
  __atomic_store_n(&o->dead, 1, __ATOMIC_SEQ_CST);
  atomic_fetch_add(&o->u.c.seq, 1);
  atr__futex_wake(&o->u.c.seq);
  *last = __atomic_load_n(&o->version, __ATOMIC_SEQ_CST);
  return 0;
}

/* A waiter's place is linked in its robust list while it waits. */
static bool cd_lingers(const atr_store *s, const struct atr__obj *o) {
  const struct cd_place *t = cd_table(s, o);
  for (uint32_t i = 0; t != NULL && i < o->u.c.places; i++)
    if (atr__word_linked(atomic_load(&t[i].hold.word)))
      return true;
  return false;
}

static int cd_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  const struct atr__cond_state *c = &o->u.c;
  if (__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  if (cd_table(s, o) == NULL)
    return ATR_ECORRUPT;
  info->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  info->waiters = atomic_load(&c->waiters);
  size_t n = strnlen(c->lock_name, ATR_NAME_MAX);
  memcpy(info->lock, c->lock_name, n);
  info->lock[n] = 0;
  return 0;
}

static uint64_t cd_data(const struct atr__obj *o, uint64_t *size) {
  *size = o->data_size;
  return o->data_off;
}

static uint64_t cd_last_version(const struct atr__obj *o) {
  return o->version;
}

const struct atr__kind_ops atr__cond_ops = {
    .name = "condition",
    .kill = cd_kill,
    .info = cd_info,
    .data = cd_data,
    .last_version = cd_last_version,
    .lingers = cd_lingers,
    .expire = cd_expire,
};
