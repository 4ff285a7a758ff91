/*
 * tasks.c - a queue's leased items settled by receipt (ack, nack, touch),
 * its dead letters, and its task accounting (done, join): the half of
 * lease.c's table that callers drive with receipts and counts.
 *
 * Everything here changes the table under the getters' lock, as lease.c
 * does; an ack is a fixed sequence of steps (atr__lq_ack_commit) made
 * whole from its log. A nack with a delay makes the place DELAYED (it
 * counts as leased) until the sweep makes it READY. A settle that finds
 * the receipt unknown, expired or spent lists it and changes nothing.
 *
 * Dead letters are moved outside every lock of their queue (the put
 * takes the dead-letter queue's): the place is MOVING meanwhile, and a
 * mover that dies leaves it to be moved again after LQ_MOVE_NS, so the
 * dead-letter queue may get an item twice, never zero times.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A dead letter whose mover died is moved again after this. */
#define LQ_MOVE_NS (5 * ATR__NS)

/* Gives back a LEASED place's hold (the caller may: lq_mine). */
static void lq_unhold(struct atr__lslot *sl, const struct atr__self *self) {
  uint32_t w = atomic_load(&sl->hold.word);
  if ((w & ATR__TID_MASK) == ATR__LEASE_TID)
    atr__lease_give(&sl->hold, 0, 0);
  else if (self != NULL && atr__hold_mine(&sl->hold, self))
    atr__hold_give(&sl->hold, self, 0, 0);
  else
    atomic_store(&sl->hold.word, 0); /* its thread died */
}

/* Whether the caller may settle the place with receipt r now: a lease
 * not run out, or a process hold of the calling thread not run out. */
static bool lq_mine(const struct atr__lslot *sl, uint64_t r,
                    const struct atr__self *self, int64_t now) {
  if (sl->state != ATR__LQ_LEASED || sl->receipt != r)
    return false;
  uint32_t w = atomic_load(&sl->hold.word);
  if (atr__word_free(w) || now >= sl->hold.deadline_ns)
    return false;
  if ((w & ATR__TID_MASK) == ATR__LEASE_TID)
    return atr__lease_is(&sl->hold, r);
  return self != NULL && atr__hold_mine(&sl->hold, self);
}

/*
 * The ack of the LEASED place i (the caller may settle it: lq_mine), as
 * a fixed sequence of steps: 1 the log (the done count after it), valid,
 * the commit point; 2 the hold given back; 3 the place FREE; 4 the done
 * count; 5 the log done. A death from 1 on is an ack made whole.
 */
void atr__lq_ack_commit(struct atr__obj *o, struct atr__ltable *t, uint32_t i,
                        const struct atr__self *self, int steps) {
  struct atr__lslot *sl = &t->slot[i];
  if (steps < 1)
    return;
  t->log.op = ATR__LQ_OP_ACK;
  t->log.slot = i;
  t->log.slot2 = 0;
  t->log.done_after = atr__lq_done_after(o, 1);
  atomic_store_explicit(&t->log.valid, 1, memory_order_release);
  if (steps < 2)
    return;
  lq_unhold(sl, self);
  if (steps < 3)
    return;
  sl->receipt = 0;
  __atomic_store_n(&sl->state, ATR__LQ_FREE, __ATOMIC_RELEASE);
  if (steps < 4)
    return;
  atomic_store_explicit(&o->u.q.done, t->log.done_after, memory_order_release);
  if (steps < 5)
    return;
  atomic_store_explicit(&t->log.valid, 0, memory_order_release);
}

/*
 * The nack of the LEASED place i (the caller may settle it: lq_mine), in
 * steps: 1 the hold given back; 2 the receipt spent (and, with a delay,
 * its end noted); 3 the place DELAYED until until_ns, or back
 * (atr__lq_return: READY, or DEAD past max_deliveries). A death after 1
 * or 2 leaves a LEASED place with a free word: the next sweep gives it
 * back at once (its delay, if any, is lost: the item is not). The
 * counters are the caller's, or the repair's recount.
 */
void atr__lq_nack_commit(struct atr__ltable *t, uint32_t i,
                         const struct atr__self *self, int64_t until_ns,
                         int steps) {
  struct atr__lslot *sl = &t->slot[i];
  if (steps < 1)
    return;
  lq_unhold(sl, self);
  if (steps < 2)
    return;
  sl->receipt = 0;
  if (until_ns > 0)
    sl->until_ns = until_ns;
  if (steps < 3)
    return;
  if (until_ns > 0)
    sl->state = ATR__LQ_DELAYED;
  else
    atr__lq_return(t, sl);
}

/* A touch: one store, the hold's new deadline (its one step). */
void atr__lq_touch_commit(struct atr__ltable *t, uint32_t i, int64_t deadline,
                          int steps) {
  if (steps < 1)
    return;
  __atomic_store_n(&t->slot[i].hold.deadline_ns, deadline, __ATOMIC_RELAXED);
}

/*
 * Dead letters, one at a time: the first DEAD place's item is put
 * (without waiting) into the dead-letter queue outside every lock of
 * this queue (the put takes that queue's). In steps: 1 the place
 * MOVING (under the getters' lock, which is then let go); 2 the item
 * put into the dead-letter queue (dropped if there is none, or no
 * room); 3 the place FREE and the item done (under the lock again). A
 * death after 1 or 2 leaves the place MOVING until LQ_MOVE_NS passes,
 * then DEAD: moved again (after 2 the dead-letter queue has it twice).
 * 1 if it moved one, 0 if none was DEAD, or an error.
 */
static int lq_dead_letter(const atr_handle *h, int steps) {
  struct atr__obj *o;
  struct atr__ltable *t;
  int rc;
  if ((rc = atr__q_lock_get(h, &o)) != 0)
    return rc;
  if ((t = atr__lq_table(h->store, o)) == NULL || atomic_load(&t->dead) == 0) {
    atr__mutex_unlock(&o->lock);
    return 0;
  }
  uint32_t i = 0;
  while (i < t->cap && t->slot[i].state != ATR__LQ_DEAD)
    i++;
  if (i == t->cap) {
    atr__mutex_unlock(&o->lock);
    return 0;
  }
  struct atr__lslot *sl = &t->slot[i];
  const uint8_t *item = atr__lq_item(h->store, t, sl);
  uint32_t len = sl->len;
  uint64_t tag = sl->order;
  char name[ATR_NAME_MAX + 1];
  memcpy(name, t->dead_letter, ATR_NAME_MAX);
  name[ATR_NAME_MAX] = '\0';
  void *copy = item != NULL ? malloc(len > 0 ? len : 1) : NULL;
  if (copy != NULL)
    memcpy(copy, item, len);
  if (steps < 1) {
    free(copy);
    return 1;
  }
  sl->state = ATR__LQ_MOVING;
  sl->until_ns = atr__now_ns() + LQ_MOVE_NS;
  atr__mutex_unlock(&o->lock);

  bool moved = false;
  atr_handle dh;
  if (steps >= 2 && copy != NULL && name[0] != '\0' &&
      atr_queue_open(h->store, name, 0, NULL, &dh) == 0 && dh.kind == ATR_QUEUE)
    moved = atr_queue_put(&dh, copy, len, 0) == 0;
  free(copy);
  if (steps < 3)
    return 1;

  if ((rc = atr__q_lock_get(h, &o)) != 0)
    return rc;
  if ((t = atr__lq_table(h->store, o)) != NULL && sl->state == ATR__LQ_MOVING &&
      sl->order == tag) {
    sl->state = ATR__LQ_FREE;
    atr__lq_free_push(t, i);
    atomic_store(&o->u.q.done, atr__lq_done_after(o, 1));
    atomic_fetch_add(moved ? &t->dead_lettered : &t->dropped, 1);
    atr__lq_count(&t->dead, -1);
    atr__q_bump(o);
    atr__lq_done_wake(o);
  }
  atr__mutex_unlock(&o->lock);
  atr__feed_push(h->store, o, h->slot, ATR_OP_DONE, NULL);
  return 1;
}

int atr__lq_dead_letter_cut(const atr_handle *h, int steps) {
  return lq_dead_letter(h, steps);
}

static void lq_dead_letters(const atr_handle *h) {
  for (int rounds = 0; rounds < 64; rounds++)
    if (lq_dead_letter(h, ATR__LQ_DEAD_STEPS) != 1)
      return;
}

/* After a step that may have made dead letters or given items back. */
void atr__lq_after(const atr_handle *h, struct atr__obj *o,
                   struct atr__ltable *t, int returned) {
  if (returned > 0) {
    atr__ec_signal(&o->u.q.ec_put, false); /* getters: items are back */
    atr__feed_push(h->store, o, h->slot, ATR_OP_EXPIRED, NULL);
  }
  if (atomic_load(&t->dead) > 0)
    lq_dead_letters(h);
}

/* A settle on a deleted queue: the calling thread gives back its holds
 * among the receipts' places (only it can unlink them from its robust
 * list), and the last one given back frees the lingering table and
 * record (atr__obj_unlinger). Under the store lock, which a lingering
 * record's reuse needs: the slot is still this queue's while our hold
 * is linked in it. */
static void lq_let_go_deleted(const atr_handle *h, const uint64_t *receipts,
                              size_t n) {
  struct atr__obj *o = h != NULL ? h->rec : NULL;
  const struct atr__self *self = atr__self();
  struct atr__ltable *t;
  if (o == NULL || self == NULL || n == 0 || h->kind != ATR_QUEUE ||
      atr__store_lock(h->store) != 0)
    return;
  if (o->kind == ATR_QUEUE && o->dead == ATR__LINGER &&
      atomic_load(&o->id) == 0 && (t = atr__lq_table(h->store, o)) != NULL) {
    bool gave = false;
    for (size_t k = 0; k < n; k++) {
      uint32_t i = (uint32_t)(receipts[k] & ATR__LQ_SLOT_MASK);
      if (receipts[k] != 0 && i < t->cap && t->slot[i].receipt == receipts[k] &&
          atr__hold_mine(&t->slot[i].hold, self)) {
        atr__hold_give(&t->slot[i].hold, self, 0, 0);
        gave = true;
      }
    }
    if (gave)
      atr__obj_unlinger(h->store, h->slot);
  }
  atr__store_unlock(h->store);
}

enum lq_settle_op { LQ_ACK, LQ_NACK, LQ_TOUCH };

static int lq_settle(const atr_handle *h, const uint64_t *receipts, size_t n,
                     enum lq_settle_op op, double secs, uint64_t *unknown,
                     size_t *n_unknown) {
  struct atr__obj *o;
  struct atr__ltable *t;
  size_t applied = 0, nu = 0, back = 0;
  int rc;
  if ((receipts == NULL && n > 0) || (unknown == NULL) != (n_unknown == NULL) ||
      !isfinite(secs) || secs < 0 || secs > 1e9 ||
      (op == LQ_TOUCH && !(secs > 0)))
    return ATR_EINVAL;
  if (n_unknown != NULL)
    *n_unknown = 0;
  struct atr__obj *live = atr__obj_of(h);
  if (live == NULL) {
    lq_let_go_deleted(h, receipts, n);
    return ATR_ENOENT;
  }
  if (__atomic_load_n(&live->data_off, __ATOMIC_ACQUIRE) == 0) {
    /* Never leased from: every receipt is unknown. */
    if (unknown != NULL && n > 0)
      memcpy(unknown, receipts, n * sizeof *receipts);
    if (n_unknown != NULL)
      *n_unknown = n;
    return 0;
  }
  const struct atr__self *self = atr__self();
  if ((rc = atr__lq_lock(h, &o, &t)) != 0)
    return rc;
  int64_t now = atr__lq_now(), secs_ns = (int64_t)(secs * 1e9);
  for (size_t k = 0; k < n; k++) {
    uint64_t r = receipts[k];
    uint32_t i = (uint32_t)(r & ATR__LQ_SLOT_MASK);
    struct atr__lslot *sl = i < t->cap ? &t->slot[i] : NULL;
    if (sl != NULL && sl->state == ATR__LQ_ORPHAN && sl->receipt == r &&
        self != NULL && atr__hold_mine(&sl->hold, self)) {
      /* Its lease ran out and its item went back: let go of the hold. */
      atr__hold_give(&sl->hold, self, 0, 0);
      sl->receipt = 0;
      sl->state = ATR__LQ_FREE;
      atr__lq_free_push(t, i);
      atr__lq_count(&t->linked, -1);
      sl = NULL;
    }
    if (sl == NULL || r == 0 || !lq_mine(sl, r, self, now)) {
      if (unknown != NULL)
        unknown[nu] = r;
      nu++;
      continue;
    }
    bool linked = atr__word_linked(atomic_load(&sl->hold.word));
    applied++;
    switch (op) {
    case LQ_ACK:
      atr__lq_ack_commit(o, t, i, self, ATR__LQ_ACK_STEPS);
      atr__lq_free_push(t, i);
      atr__lq_count(&t->leased, -1);
      break;
    case LQ_NACK:
      atr__lq_nack_commit(t, i, self,
                          secs_ns > 0 ? atr__lq_end(now, secs_ns) : 0,
                          ATR__LQ_NACK_STEPS);
      if (secs_ns > 0) {
        if (sl->until_ns < t->sweep_ns)
          t->sweep_ns = sl->until_ns;
      } else {
        atr__lq_count(&t->leased, -1);
        atr__lq_count(sl->state == ATR__LQ_READY ? &t->ready : &t->dead, 1);
        back++;
      }
      break;
    case LQ_TOUCH:
      atr__lq_touch_commit(t, i, atr__lq_end(now, secs_ns),
                           ATR__LQ_TOUCH_STEPS);
      linked = false;
      break;
    }
    if (linked)
      atr__lq_count(&t->linked, -1);
  }
  if (applied > 0 && op != LQ_TOUCH)
    atr__q_bump(o);
  atr__mutex_unlock(&o->lock);
  if (n_unknown != NULL)
    *n_unknown = nu;
  if (applied > 0 && op == LQ_ACK) {
    atr__lq_done_wake(o);
    atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_ACKED, &t->pend_ack);
  } else if (applied > 0 && op == LQ_NACK) {
    if (back > 0)
      atr__ec_signal(&o->u.q.ec_put, false);
    atr__feed_push(h->store, o, h->slot, ATR_OP_NACKED, NULL);
  }
  atr__lq_after(h, o, t, 0);
  return 0;
}

ATR__EXPORT int atr_queue_ack(const atr_handle *h, const uint64_t *receipts,
                              size_t n, uint64_t *unknown, size_t *n_unknown) {
  return lq_settle(h, receipts, n, LQ_ACK, 0, unknown, n_unknown);
}

ATR__EXPORT int atr_queue_nack(const atr_handle *h, const uint64_t *receipts,
                               size_t n, double delay, uint64_t *unknown,
                               size_t *n_unknown) {
  return lq_settle(h, receipts, n, LQ_NACK, delay, unknown, n_unknown);
}

ATR__EXPORT int atr_queue_touch(const atr_handle *h, const uint64_t *receipts,
                                size_t n, double lease, uint64_t *unknown,
                                size_t *n_unknown) {
  return lq_settle(h, receipts, n, LQ_TOUCH, lease, unknown, n_unknown);
}

ATR__EXPORT int atr_queue_done(const atr_handle *h, uint64_t n,
                               uint64_t *unfinished) {
  struct atr__obj *o;
  int rc;
  if (n == 0)
    return ATR_EINVAL;
  if ((rc = atr__q_lock_get(h, &o)) != 0)
    return rc;
  uint64_t d = atomic_load(&o->u.q.done), puts = atr__q_puts(o);
  uint64_t left = puts > d ? puts - d : 0;
  if (n > left) {
    rc = ATR_EDONE;
  } else {
    atomic_store(&o->u.q.done, d + n); /* one store: done */
    left -= n;
    atr__q_bump(o);
  }
  atr__mutex_unlock(&o->lock);
  if (unfinished != NULL)
    *unfinished = left;
  if (rc == 0) {
    atr__lq_done_wake(o);
    atr__feed_push(h->store, o, h->slot, ATR_OP_DONE, NULL);
  }
  return rc;
}

ATR__EXPORT int atr_queue_join(const atr_handle *h, double timeout,
                               uint64_t *unfinished) {
  double deadline = atr__deadline(timeout);
  int rc;
  for (;;) {
    struct atr__obj *o = atr__obj_of(h);
    if (o == NULL || __atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
      return ATR_ENOENT;
    /* The waiter bit first, then the count: whoever grows done after
     * this look wakes us. */
    uint32_t val = atr__ec_prepare(&o->u.q.ec_get);
    uint64_t d = atomic_load(&o->u.q.done), puts = atr__q_puts(o);
    uint64_t left = puts > d ? puts - d : 0;
    if (unfinished != NULL)
      *unfinished = left;
    if (left == 0)
      return 0;
    double wait = atr__remaining(deadline);
    if (wait == 0)
      return ATR_ETIMEDOUT;
    if ((rc = atr__futex_wait(&o->u.q.ec_get, val, wait)) == ATR_EINTR)
      return rc;
  }
}
