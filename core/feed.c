/*
 * feed.c - the change feed: a ring of events in the store that every
 * process writes lock-free and any number of readers follow.
 *
 * A writer takes a sequence number with one fetch_add, fills the slot
 * (seq % entries) and publishes it by storing the number in the slot. A
 * reader expecting s finds s (an event), something larger (it was
 * lapped: ATR_EGAP), or nothing yet (wait on the feed's eventcount; if
 * s was handed out but stays unpublished, its writer died: ATR_EGAP).
 *
 * Coalescing keeps hot paths off the shared ring: an object's `pend`
 * holds (seq << 8 | op) of its newest unread event, and a change of the
 * same op skips publishing while that is set (a queue keeps its pops'
 * mark apart, so puts and pops taking turns coalesce too). A reader clears
 * `pend` (compare-and-swap, so only that exact mark) before it reads the
 * object, so a change after its read always finds `pend` clear and publishes.
 * A cursor that starts later than a mark's event will never read it: so
 * opening (or resyncing) a cursor raises the feed's epoch to where it
 * starts, and marks older than the epoch no longer count.
 */
#include "internal.h"

#include <sched.h>
#include <string.h>

/* How long a handed-out but unpublished slot may stay so before the
 * reader decides its writer died. */
#define HOLE_WAIT 0.2

static void feed_fill(struct atr__fentry *e, struct atr__obj *o, uint32_t slot,
                      atr_op op) {
  e->id = atomic_load_explicit(&o->id, memory_order_relaxed);
  e->slot = slot;
  e->op = (uint8_t)op;
  e->kind = o->kind;
  e->name_len = o->name_len;
  memcpy(e->name, o->name, sizeof e->name);
}

static void feed_write(atr_store *s, uint64_t seq, struct atr__obj *o,
                       uint32_t slot, atr_op op) {
  struct atr__fentry *e = atr__fentry(s, seq);
  atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  if (o != NULL)
    feed_fill(e, o, slot, op);
  else
    memset(&e->id, 0, sizeof *e - offsetof(struct atr__fentry, id));
  atomic_store_explicit(&e->seq, seq, memory_order_release);
  atomic_thread_fence(memory_order_seq_cst); /* before the waiter bit */
  atr__ec_signal(&s->hdr->feed_ec, false);
}

void atr__feed_push(atr_store *s, struct atr__obj *o, uint32_t slot, atr_op op,
                    _Atomic uint64_t *mark) {
  if (mark != NULL) {
    /* The change must be visible before we look at the mark, or a
     * reader could clear it and read the old state in between. */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t seen = atomic_load_explicit(mark, memory_order_relaxed);
    if (!atr__feed_covered(s, seen, op))
      atr__feed_publish(s, o, slot, op, mark, seen);
    return;
  }
  feed_write(s, atomic_fetch_add(&s->hdr->feed_head, 1), o, slot, op);
}

void atr__feed_publish(atr_store *s, struct atr__obj *o, uint32_t slot,
                       atr_op op, _Atomic uint64_t *mark, uint64_t seen) {
  uint64_t seq = atomic_fetch_add(&s->hdr->feed_head, 1);
  atomic_compare_exchange_strong(mark, &seen, seq << 8 | (uint64_t)op);
  feed_write(s, seq, o, slot, op);
}

void atr__feed_push_resync(atr_store *s) {
  feed_write(s, atomic_fetch_add(&s->hdr->feed_head, 1), NULL, 0, 0);
}

/* Starts c at the feed's end; from here on no older mark hides a change. */
static void feed_start_at_end(atr_store *s, atr_cursor *c) {
  uint64_t head = atomic_load(&s->hdr->feed_head);
  uint64_t epoch = atomic_load(&s->hdr->feed_epoch);
  while (epoch < head &&
         !atomic_compare_exchange_weak(&s->hdr->feed_epoch, &epoch, head))
    ;
  c->store = s;
  c->next = head;
  c->wakes = atomic_load(&s->hdr->feed_wakes);
}

ATR__EXPORT int atr_feed_open(atr_store *s, atr_cursor *c) {
  if (s == NULL || c == NULL)
    return ATR_EINVAL;
  feed_start_at_end(s, c);
  return 0;
}

/* Copies the published entry seq into ev; false if it was overwritten
 * meanwhile. */
static bool feed_read_entry(atr_store *s, uint64_t seq, atr_event *ev,
                            uint32_t *slot) {
  struct atr__fentry *e = atr__fentry(s, seq), copy;
  memcpy(&copy, e, sizeof copy);
  atomic_thread_fence(memory_order_acquire);
  if (atomic_load_explicit(&e->seq, memory_order_relaxed) != seq)
    return false;
  memset(ev, 0, sizeof *ev);
  ev->seq = seq;
  ev->id = copy.id;
  ev->kind = (atr_kind)copy.kind;
  ev->op = (atr_op)copy.op;
  size_t n = copy.name_len <= ATR_NAME_MAX ? copy.name_len : ATR_NAME_MAX;
  memcpy(ev->name, copy.name, n);
  ev->name[n] = 0;
  *slot = copy.slot;
  return true;
}

ATR__EXPORT int atr_feed_next(atr_cursor *c, atr_event *ev, double timeout) {
  atr_store *s;
  double deadline = atr__deadline(timeout), hole_since = -1;
  if (c == NULL || c->store == NULL || ev == NULL)
    return ATR_EINVAL;
  s = c->store;
  for (;;) {
    uint64_t want = c->next, n = s->hdr->feed_entries;
    struct atr__fentry *e = atr__fentry(s, want);
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
    uint64_t head = atomic_load(&s->hdr->feed_head);
    uint32_t slot;

    if (seq == want) {
      if (!feed_read_entry(s, want, ev, &slot))
        return ATR_EGAP;
      c->next = want + 1;
      if (ev->id == 0)
        return ATR_EGAP; /* a writer died holding the store: re-read all */
      if (slot < s->hdr->max_objects) {
        /* Clear the coalescing mark before the caller reads the state. */
        uint64_t mark = want << 8 | (uint64_t)ev->op;
        atomic_compare_exchange_strong(atr__mark(atr__slot(s, slot), ev->op),
                                       &mark, 0);
      }
      return 0;
    }
    if (seq > want || head > want + n)
      return ATR_EGAP; /* lapped */
    if (head > want) {
      /* Handed out, not yet published: a writer between two stores,
       * or one that died there. */
      double now = atr__now();
      if (hole_since < 0)
        hole_since = now;
      if (now - hole_since > HOLE_WAIT)
        return ATR_EGAP;
      sched_yield();
      continue;
    }
    double left = atr__remaining(deadline);
    if (left == 0)
      return ATR_ETIMEDOUT;
    /* Announce the sleep first, then look for a wake: atr_feed_wake
     * counts first, then signals, so one of the two sees the other. */
    uint32_t seen = atr__ec_prepare(&s->hdr->feed_ec);
    uint32_t wakes = atomic_load(&s->hdr->feed_wakes);
    if (wakes != c->wakes) {
      c->wakes = wakes;
      return ATR_ETIMEDOUT;
    }
    if (atomic_load(&s->hdr->feed_head) != head)
      continue;
    /* A signal here is not the caller's business (the gateway's
     * follower must not see it): look again. */
    (void)atr__futex_wait(&s->hdr->feed_ec, seen, left);
  }
}

ATR__EXPORT int atr_feed_resync(atr_cursor *c) {
  if (c == NULL || c->store == NULL)
    return ATR_EINVAL;
  /* What comes after the end is read as events (no older mark hides a
   * change any more); what came before, the caller's full re-read covers. */
  feed_start_at_end(c->store, c);
  return 0;
}

ATR__EXPORT void atr_feed_wake(atr_store *s) {
  if (s == NULL)
    return;
  atomic_fetch_add(&s->hdr->feed_wakes, 1);
  atr__ec_signal(&s->hdr->feed_ec, true);
}
