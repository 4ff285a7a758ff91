/*
 * lease.c - a queue's leased items: the lease table, its places and holds,
 * sweeps and repair, and the leased take (tasks.c settles them).
 *
 * A queue's lease table (struct atr__ltable, the heap block at its
 * record's data_off) has one place per item out under a lease. A leased
 * get copies the item from the ring into its place's own heap block (kept
 * and reused by the next item that fits, so a steady get+ack loop does
 * not touch the heap) and commits the ring's getters' side: from then the
 * item lives in the place. An ack frees the place; a nack or a lease that
 * ran out makes it READY, which plain and leased gets take before the
 * ring (back at the head), oldest return first; an item that comes back
 * having had max_deliveries goes DEAD and is moved to the dead-letter
 * queue outside every lock (tasks.c, which also settles receipts and
 * keeps the task accounting).
 *
 * A place's hold (robust.c) is a lease (word LEASE_TID, the receipt as
 * its token, a deadline) or a process hold (the taking thread's TID,
 * linked in its robust list, plus a deadline). The kernel marks a dead
 * thread's words OWNER_DIED; whoever sweeps next (a getter, every 10 ms
 * while threads hold items, or atr_sync_expire) gives those items back.
 * A process hold past its deadline while its thread lives cannot be
 * taken from that thread's list: its item moves to a free place and the
 * old place stays ORPHAN until the thread settles its receipt (answered
 * unknown) or dies. A deleted queue keeps its table (not its ring or its
 * items' blocks, freed at once) while any of its words names a thread
 * (q_lingers), as robust.c's rule asks: that thread's settle of its
 * receipt (ATR_ENOENT) gives its hold back, and the last one frees the
 * table and the record (tasks.c); a thread that dies instead leaves them
 * to the next sweep of lingering records or recovery.
 *
 * Everything here changes under the getters' lock (the record's lock).
 * A change of more than one field is written aside in the table's log
 * first and committed by one store, as the queue's sides are: a lease
 * by the getters' side's commit (cons_after), an ack and a move by the
 * log's valid flag; the next locker after a death finishes or drops it
 * (atr__lq_repair), then recounts the places. The counters (ready,
 * leased, dead, linked) are derived from the places. The queue's `done`
 * count is in its record (on the getters' line), not here: a queue never
 * leased from needs no table for done, join or clear.
 *
 * Receipts: the place's index in the low 16 bits, 48 random bits above
 * (lq_random), redrawn if equal to the place's last; a receipt is spent
 * once its place is settled. unfinished = items put (the putters'
 * count) - done; done never passes the items put (tasks.c).
 */
#include "internal.h"

#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LQ_CAP_DEFAULT 1024u
#define LQ_CAP_MAX 65536u
#define LQ_BLK_MIN 256u
#define LQ_BLK_AHEAD 16u /* places given a block at once (see below) */
/* While threads hold items, sweeps for dead ones are due this often. */
#define LQ_LOOK_NS (10 * INT64_C(1000000))

static uint64_t lq_bytes(uint32_t cap) {
  return sizeof(struct atr__ltable) + (uint64_t)cap * sizeof(struct atr__lslot);
}

struct atr__ltable *atr__lq_table(const atr_store *s,
                                  const struct atr__obj *o) {
  uint64_t off = __atomic_load_n(&o->data_off, __ATOMIC_ACQUIRE);
  uint64_t size = o->data_size;
  if (off == 0 || off % 8 != 0 || size < sizeof(struct atr__ltable) ||
      !atr__heap_span_ok(s, off, size))
    return NULL;
  struct atr__ltable *t = (struct atr__ltable *)(void *)(s->base + off);
  if (t->magic != ATR__LQ_MAGIC || t->cap == 0 || t->cap > LQ_CAP_MAX ||
      lq_bytes(t->cap) > size)
    return NULL;
  return t;
}

/* The getters' lock of h's queue (*o) and its table (*t): 0 with the
 * lock held, or an error (ATR_ECORRUPT for a damaged table) without. */
int atr__lq_lock(const atr_handle *h, struct atr__obj **o,
                 struct atr__ltable **t) {
  int rc;
  if ((rc = atr__q_lock_get(h, o)) != 0)
    return rc;
  if ((*t = atr__lq_table(h->store, *o)) == NULL) {
    atr__mutex_unlock(&(*o)->lock);
    return ATR_ECORRUPT;
  }
  return 0;
}

int atr__lq_make(atr_store *s, struct atr__obj *o, uint32_t cap,
                 uint32_t max_deliveries, const char *dead_letter) {
  uint64_t got, off;
  if (cap == 0)
    cap = LQ_CAP_DEFAULT;
  if ((off = atr__heap_alloc(s, lq_bytes(cap), &got)) == 0)
    return ATR_ENOSPC;
  struct atr__ltable *t = (struct atr__ltable *)(void *)(s->base + off);
  memset(t, 0, lq_bytes(cap));
  t->cap = cap;
  t->max_deliveries = max_deliveries;
  if (dead_letter != NULL)
    strncpy(t->dead_letter, dead_letter, ATR_NAME_MAX);
  t->magic = ATR__LQ_MAGIC;
  o->data_size = got;
  /* The commit: a table is whole before the record names it. */
  __atomic_store_n(&o->data_off, off, __ATOMIC_RELEASE);
  return 0;
}

int atr__lq_ensure(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  if (__atomic_load_n(&o->data_off, __ATOMIC_ACQUIRE) != 0)
    return atr__lq_table(h->store, o) != NULL ? 0 : ATR_ECORRUPT;
  if ((rc = atr__store_lock(h->store)) != 0)
    return rc;
  if (atomic_load(&o->id) != h->id || o->dead)
    rc = ATR_ENOENT;
  else if (o->data_off == 0)
    rc = atr__lq_make(h->store, o, 0, 0, NULL);
  atr__store_unlock(h->store);
  return rc;
}

/* The coarse clock's tick (its resolution), once: 0 until known. */
static _Atomic int64_t lq_tick_ns;

int64_t atr__lq_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
    return atr__now_ns(); /* no coarse clock: the fine one */
  return (int64_t)ts.tv_sec * ATR__NS + ts.tv_nsec;
}

int64_t atr__lq_end(int64_t now, int64_t secs_ns) {
  int64_t tick = atomic_load_explicit(&lq_tick_ns, memory_order_relaxed);
  if (tick == 0) {
    struct timespec res;
    tick = clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0
               ? (int64_t)res.tv_sec * ATR__NS + res.tv_nsec
               : 1;
    if (tick <= 0 || tick > ATR__NS / 10)
      tick = ATR__NS / 10; /* no tick is that long: a safe bound */
    atomic_store_explicit(&lq_tick_ns, tick, memory_order_relaxed);
  }
  return now + secs_ns + tick;
}

/* Whether a place's block is whole in the heap and clear of its own
 * table: a damaged store may name the table itself as an item's block,
 * and a take's copy into it would then rewrite the table's cap under the
 * loops that trust it (found by the store fuzzer). */
static bool lq_blk_ok(const atr_store *s, const struct atr__ltable *t,
                      const struct atr__lslot *sl) {
  if (sl->blk_off == 0)
    return true;
  if (!atr__heap_span_ok(s, sl->blk_off, sl->blk_size))
    return false;
  uint64_t t_off = (uint64_t)((const uint8_t *)t - s->base);
  return sl->blk_off + sl->blk_size <= t_off ||
         sl->blk_off >= t_off + lq_bytes(t->cap);
}

/* done grows by n, never past the items put. The getters' last look at
 * the putters' count (prod_seen, under the lock we hold) is at most the
 * count, and mostly enough: the putters' line, which a busy putter
 * writes at each put, is read only when it is not. */
uint64_t atr__lq_done_after(const struct atr__obj *o, uint64_t n) {
  uint64_t d = atomic_load_explicit(&o->u.q.done, memory_order_relaxed);
  if (d + n >= d && d + n <= o->u.q.prod_seen)
    return d + n;
  uint64_t puts = atr__q_puts(o);
  return d + n < puts ? d + n : puts > d ? puts : d;
}

/* A place whose item came back (its hold already given back): READY at
 * the head, or DEAD past max_deliveries. */
void atr__lq_return(struct atr__ltable *t, struct atr__lslot *sl) {
  sl->receipt = 0;
  sl->order = ++t->next_order;
  sl->state = t->max_deliveries != 0 && sl->deliveries >= t->max_deliveries
                  ? ATR__LQ_DEAD
                  : ATR__LQ_READY;
}

/* A lease that ran out given back, in steps: 1 the hold given back;
 * 2 the place back (atr__lq_return: its state is the one store that
 * counts). A death after 1 leaves a LEASED place with a free word, which
 * the next sweep gives back as its holder's death. The counters are the
 * sweep's. */
void atr__lq_expire_commit(struct atr__ltable *t, struct atr__lslot *sl,
                           int steps) {
  if (steps < 1)
    return;
  atr__lease_give(&sl->hold, 0, 0);
  if (steps < 2)
    return;
  atr__lq_return(t, sl);
}

/* Whether a place may take an item: FREE, and no hold on its word. */
static bool lq_place_free(const struct atr__lslot *sl) {
  return sl->state == ATR__LQ_FREE &&
         atr__word_free(
             atomic_load_explicit(&sl->hold.word, memory_order_relaxed));
}

/*
 * The free places' list (free_head, free_next) lets a take find a place
 * without a scan, and a place freed last is taken first (its block is
 * warm). It is a hint: pushed where a place becomes FREE on the hot
 * paths, popped by a take, and made again from the places' states when
 * its head is not a free place (a death half-way, a repair, damage, a
 * place taken by a scan) or it ran out. A FREE place missing from it
 * is found by the scan that follows.
 */
void atr__lq_free_rebuild(struct atr__ltable *t) {
  uint32_t head = 0;
  for (uint32_t i = t->cap; i-- > 0;)
    if (lq_place_free(&t->slot[i])) {
      t->slot[i].free_next = head;
      head = i + 1;
    }
  t->free_head = head;
}

void atr__lq_free_push(struct atr__ltable *t, uint32_t i) {
  t->slot[i].free_next = t->free_head;
  t->free_head = i + 1;
}

/* Place i was taken (it is no longer FREE): off the list, in O(1) when it
 * was its head (what lq_free_place offers first). */
static void lq_free_taken(struct atr__ltable *t, uint32_t i) {
  uint32_t next = t->slot[i].free_next;
  if (t->free_head == i + 1 && next <= t->cap && next != i + 1)
    t->free_head = next;
  else
    atr__lq_free_rebuild(t);
}

/* A free place for an item of len bytes: one whose block fits, else any
 * (*fits false); UINT32_MAX if none is free. The list's head first; a
 * scan of the table only when it does not do. */
static uint32_t lq_free_place(const atr_store *s, const struct atr__ltable *t,
                              uint32_t len, bool *fits) {
  uint32_t any = UINT32_MAX, head = t->free_head;
  if (head != 0 && head <= t->cap) {
    const struct atr__lslot *sl = &t->slot[head - 1];
    if (lq_place_free(sl) && sl->blk_off != 0 && sl->blk_size >= len &&
        lq_blk_ok(s, t, sl)) {
      *fits = true;
      return head - 1;
    }
  }
  for (uint32_t i = 0; i < t->cap; i++) {
    const struct atr__lslot *sl = &t->slot[i];
    if (!lq_place_free(sl))
      continue;
    if (sl->blk_off != 0 && sl->blk_size >= len && lq_blk_ok(s, t, sl)) {
      *fits = true;
      return i;
    }
    if (any == UINT32_MAX)
      any = i;
  }
  *fits = false;
  return any;
}

/* Moves the item of place i (a live thread's process hold past its
 * deadline) to the free place j: the blocks are exchanged, so nothing is
 * copied; written aside first (ATR__LQ_OP_MOVE). */
static void lq_move_apply(struct atr__ltable *t, uint32_t i, uint32_t j,
                          uint64_t j_off, uint64_t j_size) {
  struct atr__lslot *a = &t->slot[i], *b = &t->slot[j];
  if (b->state == ATR__LQ_FREE) {
    b->blk_off = a->blk_off;
    b->blk_size = a->blk_size;
    b->len = a->len;
    b->deliveries = a->deliveries;
    atomic_store(&b->hold.word, 0);
    atr__lq_return(t, b);
  }
  a->blk_off = j_off;
  a->blk_size = j_size;
  a->state = ATR__LQ_ORPHAN;
}

static void lq_move(struct atr__ltable *t, uint32_t i, uint32_t j) {
  struct atr__lq_log *lg = &t->log;
  lg->op = ATR__LQ_OP_MOVE;
  lg->slot = i;
  lg->slot2 = j;
  lg->blk_off = t->slot[j].blk_off;
  lg->blk_size = t->slot[j].blk_size;
  atomic_store(&lg->valid, 1);
  lq_move_apply(t, i, j, lg->blk_off, lg->blk_size);
  atomic_store(&lg->valid, 0);
}

/*
 * Under the getters' lock: gives back what ran out, whose holder died or
 * whose nack's delay ended (returns how many: each is published as
 * "expired" and wakes getters), and recounts the places. A LEASED place
 * whose word is free lost its holder (or, after a death under the lock,
 * a settle died half-way): given back too.
 */
static int lq_sweep(const atr_store *s, struct atr__ltable *t, int64_t now) {
  uint32_t ready = 0, leased = 0, dead = 0, linked = 0;
  int64_t next = INT64_MAX;
  int n = 0;
  for (uint32_t i = 0; i < t->cap; i++) {
    struct atr__lslot *sl = &t->slot[i];
    uint32_t w = atomic_load(&sl->hold.word);
    bool lease = (w & ATR__TID_MASK) == ATR__LEASE_TID;
    switch (sl->state) {
    case ATR__LQ_LEASED:
      if (atr__word_free(w)) { /* its thread died */
        atomic_store(&sl->hold.word, 0);
        atr__lq_return(t, sl);
        n++;
      } else if (now >= sl->hold.deadline_ns) {
        if (lease) {
          atr__lq_expire_commit(t, sl, ATR__LQ_EXPIRE_STEPS);
          n++;
        } else {
          bool fits;
          uint32_t j = lq_free_place(s, t, 0, &fits);
          if (j != UINT32_MAX) {
            lq_move(t, i, j);
            lq_free_taken(t, j);
            n++;
          } else if (now + LQ_LOOK_NS < next) {
            next = now + LQ_LOOK_NS;
          }
        }
      } else if (sl->hold.deadline_ns < next) {
        next = sl->hold.deadline_ns;
      }
      break;
    case ATR__LQ_DELAYED:
      if (now >= sl->until_ns) { /* a nack's delay ended: back too */
        atr__lq_return(t, sl);
        n++;
      } else if (sl->until_ns < next)
        next = sl->until_ns;
      break;
    case ATR__LQ_MOVING:
      if (now >= sl->until_ns)
        sl->state = ATR__LQ_DEAD; /* its mover died: move it again */
      break;
    case ATR__LQ_ORPHAN:
      if (atr__word_free(w)) {
        atomic_store(&sl->hold.word, 0);
        sl->receipt = 0;
        sl->state = ATR__LQ_FREE;
        atr__lq_free_push(t, i);
      }
      break;
    default:
      break;
    }
    w = atomic_load(&sl->hold.word);
    switch (sl->state) {
    case ATR__LQ_LEASED:
    case ATR__LQ_DELAYED:
      leased++;
      break;
    case ATR__LQ_READY:
      ready++;
      break;
    case ATR__LQ_DEAD:
    case ATR__LQ_MOVING:
      dead++;
      break;
    default:
      break;
    }
    if (atr__word_linked(w))
      linked++;
  }
  if (linked > 0 && now + LQ_LOOK_NS < next)
    next = now + LQ_LOOK_NS; /* a death publishes nothing: look again */
  atomic_store(&t->ready, ready);
  atomic_store(&t->leased, leased);
  atomic_store(&t->dead, dead);
  atomic_store(&t->linked, linked);
  t->sweep_ns = next;
  return n;
}

/* A sweep if one is due by now (holding the getters' lock); a change
 * counts in the queue's version. */
static int lq_sweep_due(const atr_store *s, struct atr__obj *o,
                        struct atr__ltable *t, int64_t now) {
  if (atomic_load(&t->leased) == 0 && atomic_load(&t->linked) == 0)
    return 0;
  int n = now >= t->sweep_ns ? lq_sweep(s, t, now) : 0;
  if (n > 0)
    atr__q_bump(o);
  return n;
}

void atr__lq_repair(atr_store *s, struct atr__obj *o) {
  struct atr__ltable *t = atr__lq_table(s, o);
  if (t == NULL)
    return;
  struct atr__lq_log *lg = &t->log;
  if (atomic_load(&lg->valid) != 0 && lg->slot < t->cap && lg->slot2 < t->cap) {
    struct atr__lslot *sl = &t->slot[lg->slot];
    uint64_t cons = o->u.q.cons.items;
    switch (lg->op) {
    case ATR__LQ_OP_LEASE: /* committed by the getters' side */
      atomic_store(&sl->hold.word, 0);
      if (cons >= lg->cons_after) {
        atr__lq_return(t, sl); /* out of the ring, to nobody alive */
      } else {
        sl->receipt = 0;
        sl->state = ATR__LQ_FREE;
      }
      break;
    case ATR__LQ_OP_ACK:
      atomic_store(&sl->hold.word, 0);
      sl->receipt = 0;
      sl->state = ATR__LQ_FREE;
      atomic_store(&o->u.q.done, lg->done_after);
      break;
    case ATR__LQ_OP_MOVE:
      lq_move_apply(t, lg->slot, lg->slot2, lg->blk_off, lg->blk_size);
      break;
    default:
      break;
    }
    atomic_store(&lg->valid, 0);
  }
  /* A place left READY (or FREE) by a taker that died half-way keeps no
   * hold; a LEASED one whose word is free is given back by the sweep. */
  for (uint32_t i = 0; i < t->cap; i++) {
    struct atr__lslot *sl = &t->slot[i];
    if (sl->state == ATR__LQ_READY || sl->state == ATR__LQ_FREE ||
        sl->state == ATR__LQ_DEAD) {
      uint32_t w = atomic_load(&sl->hold.word);
      if (!atr__word_free(w) && !atr__word_linked(w))
        atomic_store(&sl->hold.word, 0); /* a lease half taken */
      else if (atr__word_free(w))
        atomic_store(&sl->hold.word, 0);
    }
    if (!lq_blk_ok(s, t, sl)) {
      sl->blk_off = sl->blk_size = 0;
      if (sl->state != ATR__LQ_FREE && sl->state != ATR__LQ_ORPHAN)
        sl->state = ATR__LQ_FREE; /* damage: its item is lost */
    }
  }
  lq_sweep(s, t, atr__now_ns());
  atr__lq_free_rebuild(t);
}

uint32_t atr__lq_ready(const atr_handle *h, struct atr__obj *o) {
  struct atr__ltable *t = atr__lq_table(h->store, o);
  if (t == NULL)
    return 0;
  if (atomic_load(&t->leased) > 0 || atomic_load(&t->linked) > 0)
    lq_sweep_due(h->store, o, t, atr__lq_now());
  return atomic_load(&t->ready);
}

/* The READY place taken next (the oldest return), or UINT32_MAX. */
static uint32_t lq_first_ready(const struct atr__ltable *t) {
  uint32_t best = UINT32_MAX;
  if (atomic_load(&t->ready) == 0)
    return best;
  for (uint32_t i = 0; i < t->cap; i++)
    if (t->slot[i].state == ATR__LQ_READY &&
        (best == UINT32_MAX || t->slot[i].order < t->slot[best].order))
      best = i;
  return best;
}

const uint8_t *atr__lq_item(const atr_store *s, const struct atr__ltable *t,
                            const struct atr__lslot *sl) {
  if (sl->blk_off == 0 || sl->len > sl->blk_size || !lq_blk_ok(s, t, sl))
    return NULL;
  return s->base + sl->blk_off;
}

int atr__lq_take_ready(const atr_handle *h, struct atr__obj *o,
                       int (*sink)(void *arg, const uint8_t *item,
                                   uint32_t len),
                       void *arg) {
  struct atr__ltable *t = atr__lq_table(h->store, o);
  uint32_t i = t != NULL ? lq_first_ready(t) : UINT32_MAX;
  int rc;
  if (i == UINT32_MAX)
    return 0;
  struct atr__lslot *sl = &t->slot[i];
  const uint8_t *item = atr__lq_item(h->store, t, sl);
  if (item == NULL)
    return ATR_ECORRUPT;
  if ((rc = sink(arg, item, sl->len)) != 0)
    return rc;
  sl->state = ATR__LQ_FREE; /* one store: the item is taken */
  atr__lq_count(&t->ready, -1);
  atr__lq_free_push(t, i);
  return 1;
}

/* Receipts come from a per-thread generator keyed by a random secret
 * (atr__token, a getrandom call: too slow for each item): splitmix64 of
 * key + counter, unguessable enough that a made-up receipt is just
 * unknown. A forked child draws a new key (its thread's nonce is new). */
static _Thread_local struct {
  uint64_t key, n;
  uint64_t nonce;
} lq_rng;

static uint64_t lq_random(void) {
  /* The thread's nonce is drawn again after a fork (robust.c). */
  const struct atr__self *self = atr__self();
  uint64_t nonce = self != NULL ? self->nonce : (uint64_t)getpid();
  if (lq_rng.key == 0 || lq_rng.nonce != nonce) {
    lq_rng.key = atr__token();
    lq_rng.n = atr__token();
    lq_rng.nonce = nonce;
  }
  uint64_t z = lq_rng.key + (++lq_rng.n) * UINT64_C(0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static uint64_t lq_receipt(const struct atr__lslot *sl, uint32_t i) {
  uint64_t r;
  do
    r = (lq_random() & ~(uint64_t)ATR__LQ_SLOT_MASK) | i;
  while (r == sl->receipt || r == i);
  return r;
}

/* Takes place i's hold for its taker (self NULL: a detached lease). */
static void lq_hold(struct atr__lslot *sl, const struct atr__self *self,
                    uint64_t receipt, int64_t deadline) {
  uint32_t seen;
  if (self == NULL) {
    atr__lease_take(&sl->hold, receipt, deadline, 0, &seen);
  } else {
    __atomic_store_n(&sl->hold.deadline_ns, deadline, __ATOMIC_RELAXED);
    atr__hold_take(&sl->hold, self, 0, &seen);
  }
}

struct lq_out {
  atr_items *items;
  uint64_t *receipts;
  uint32_t *deliveries;
  size_t k;
};

/* Hands an item to the caller (nothing in the store changes). */
static int lq_out_add(struct lq_out *out, const uint8_t *item, uint32_t len,
                      uint64_t receipt, uint32_t deliveries) {
  int rc;
  if ((rc = atr__items_append(out->items, item, len)) != 0)
    return rc;
  out->receipts[out->k] = receipt;
  out->deliveries[out->k] = deliveries;
  out->k++;
  return 0;
}

/* A new lease's sweep is due at its deadline, or soon for a thread's
 * hold (its death publishes nothing). */
static void lq_due(struct atr__ltable *t, const struct atr__self *self,
                   int64_t deadline, int64_t now) {
  int64_t due = self != NULL ? now + LQ_LOOK_NS : deadline;
  if (due < t->sweep_ns)
    t->sweep_ns = due;
}

/* Leases the READY place i (its item in its block) to the caller. */
static int lq_lease_place(struct atr__ltable *t, uint32_t i,
                          const struct atr__self *self, int64_t deadline,
                          int64_t now, struct lq_out *out,
                          const uint8_t *item) {
  struct atr__lslot *sl = &t->slot[i];
  uint64_t receipt = lq_receipt(sl, i);
  int rc;
  if ((rc = lq_out_add(out, item, sl->len, receipt, sl->deliveries + 1)) != 0)
    return rc;
  /* A death from here leaves it READY (repair clears the hold). */
  sl->receipt = receipt;
  sl->deliveries++;
  lq_hold(sl, self, receipt, deadline);
  lq_due(t, self, deadline, now);
  return 0;
}

/*
 * The take of the ring's head item (at, len bytes, the next item at
 * next) into the free place i, as a fixed sequence of steps (a test
 * stops after each, white-box): 1 the bytes, length, deliveries and
 * receipt into the place (still FREE); 2 the hold; 3 the log, valid; 4-7
 * the getters' side's commit (atr__qside_commit's four stores: the
 * commit point is its count, at 6); 8 the place LEASED; 9 the log done.
 * A death before 6 leaves the item in the ring, from 6 on in the place
 * (given back READY: its taker died), never both, never neither.
 */
void atr__lq_take_commit(const atr_store *s, struct atr__obj *o,
                         struct atr__ltable *t, uint32_t i, const uint8_t *at,
                         uint32_t len, uint64_t next,
                         const struct atr__self *self, uint64_t receipt,
                         int64_t deadline, int steps) {
  struct atr__lslot *sl = &t->slot[i];
  if (steps < 1)
    return;
  if (len > 0)
    memcpy(s->base + sl->blk_off, at, len);
  sl->len = len;
  sl->deliveries = 1;
  sl->receipt = receipt;
  if (steps < 2)
    return;
  lq_hold(sl, self, receipt, deadline);
  if (steps < 3)
    return;
  t->log.op = ATR__LQ_OP_LEASE;
  t->log.slot = i;
  t->log.slot2 = 0;
  t->log.cons_after = o->u.q.cons.items + 1;
  atomic_store_explicit(&t->log.valid, 1, memory_order_release);
  if (steps < 4)
    return;
  atr__q_take_commit(o, next, 1, steps - 3 < 4 ? steps - 3 : 4);
  if (steps < 8)
    return;
  __atomic_store_n(&sl->state, ATR__LQ_LEASED, __ATOMIC_RELEASE);
  if (steps < 9)
    return;
  atomic_store_explicit(&t->log.valid, 0, memory_order_release);
}

ATR__EXPORT int atr_queue_get_leased(const atr_handle *h, size_t max,
                                     double lease, int flags, double timeout,
                                     atr_items *out, uint64_t *receipts,
                                     uint32_t *deliveries) {
  const struct atr__self *self = NULL;
  double deadline = atr__deadline(timeout);
  struct lq_out lo = {out, receipts, deliveries, 0};
  int rc;

  if (out == NULL || receipts == NULL || deliveries == NULL || max == 0 ||
      !(lease > 0) || !isfinite(lease) || lease > 1e9 ||
      (flags & ~ATR_LEASE_DETACHED) != 0)
    return ATR_EINVAL;
  if (!(flags & ATR_LEASE_DETACHED) && (self = atr__self()) == NULL)
    return ATR_ESYS;
  if ((rc = atr__lq_ensure(h)) != 0)
    return rc;
  size_t before = out->count;
  for (;;) {
    struct atr__obj *o;
    struct atr__ltable *t;
    uint32_t grow = UINT32_MAX, grow_len = 0;
    int returned;
    if ((rc = atr__lq_lock(h, &o, &t)) != 0)
      return rc;
    struct atr__q_watch w = atr__q_watch_items(o); /* before the look */
    /* One look at the (coarse) clock serves the whole call. */
    int64_t now = atr__lq_now();
    returned = lq_sweep_due(h->store, o, t, now);
    int64_t until = atr__lq_end(now, (int64_t)(lease * 1e9));
    while (lo.k < max) {
      uint32_t i = lq_first_ready(t);
      if (i != UINT32_MAX) { /* back at the head: first */
        const uint8_t *item = atr__lq_item(h->store, t, &t->slot[i]);
        if (item == NULL) {
          rc = ATR_ECORRUPT;
          break;
        }
        if ((rc = lq_lease_place(t, i, self, until, now, &lo, item)) != 0)
          break;
        t->slot[i].state = ATR__LQ_LEASED;
        atr__q_bump(o);
        atr__lq_count(&t->ready, -1);
        atr__lq_count(&t->leased, 1);
        if (self != NULL)
          atr__lq_count(&t->linked, 1);
        continue;
      }
      const uint8_t *at;
      uint32_t len;
      uint64_t next;
      if (!atr__q_head(h, o, &at, &len, &next, &rc))
        break;
      bool fits;
      if ((i = lq_free_place(h->store, t, len, &fits)) == UINT32_MAX) {
        if (lo.k == 0)
          rc = ATR_EFULL;
        break;
      }
      if (!fits) { /* its block is to be made: under the store lock */
        grow = i;
        grow_len = len;
        break;
      }
      uint64_t receipt = lq_receipt(&t->slot[i], i);
      if ((rc = lq_out_add(&lo, at, len, receipt, 1)) != 0)
        break;
      atr__lq_take_commit(h->store, o, t, i, at, len, next, self, receipt,
                          until, ATR__LQ_TAKE_STEPS);
      lq_free_taken(t, i);
      lq_due(t, self, until, now);
      atr__lq_count(&t->leased, 1);
      if (self != NULL)
        atr__lq_count(&t->linked, 1);
    }
    if (lo.k > 0 && (rc != 0 || grow == UINT32_MAX)) {
      atr__mutex_unlock(&o->lock);
      atr__ec_signal(&o->u.q.ec_get, false);
      atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_LEASED,
                            &t->pend_lease);
      atr__lq_after(h, o, t, returned);
      return 0; /* what was taken is the caller's, whatever came next */
    }
    if (rc != 0 || grow != UINT32_MAX) {
      atr__mutex_unlock(&o->lock);
      if (rc != 0) {
        atr__lq_after(h, o, t, returned);
        out->count = before;
        return rc;
      }
      /* Lock order: the store's, then the record's. */
      if ((rc = atr__store_lock(h->store)) != 0)
        return rc;
      if ((rc = atr__q_lock_get(h, &o)) != 0) {
        atr__store_unlock(h->store);
        return rc;
      }
      /* Blocks for this item's place and for the rest of the batch, and
       * for a few places more: a getter that keeps its items (gets one
       * at a time, acks later) then takes the store lock once per
       * LQ_BLK_AHEAD items, not for each. */
      size_t want = max - lo.k > LQ_BLK_AHEAD ? max - lo.k : LQ_BLK_AHEAD;
      for (uint32_t i = grow;
           want > 0 && i < t->cap && atr__lq_table(h->store, o) == t; i++) {
        struct atr__lslot *sl = &t->slot[i];
        uint32_t len = i == grow ? grow_len : 0;
        if (sl->state != ATR__LQ_FREE ||
            (sl->blk_off != 0 && sl->blk_size >= (len > 0 ? len : 1)))
          continue;
        uint64_t got, off = atr__heap_alloc(
                          h->store, len > LQ_BLK_MIN ? len : LQ_BLK_MIN, &got);
        if (off == 0) {
          if (i == grow)
            rc = ATR_ENOSPC;
          break;
        }
        uint64_t old = sl->blk_off;
        /* The place owns the new block from one store on; the old one is
         * free after (a death between leaks it until recovery). */
        sl->blk_size = got;
        __atomic_store_n(&sl->blk_off, off, __ATOMIC_RELEASE);
        if (old != 0)
          atr__heap_free(h->store, old);
        want--;
      }
      atr__mutex_unlock(&o->lock);
      atr__store_unlock(h->store);
      if (rc != 0)
        return rc;
      continue;
    }
    if (returned > 0) {
      atr__mutex_unlock(&o->lock);
      atr__lq_after(h, o, t, returned);
      continue;
    }
    if ((rc = atr__q_wait_items(h, o, &w, deadline)) != 0)
      return rc == ATR_EINTR ? rc : ATR_EEMPTY;
  }
}

int atr__lq_expire(const atr_handle *h, struct atr__obj *o) {
  struct atr__ltable *t;
  int rc, n;
  if (atr__lq_table(h->store, o) == NULL)
    return 0;
  if ((rc = atr__lq_lock(h, &o, &t)) != 0)
    return rc;
  if ((n = lq_sweep(h->store, t, atr__now_ns())) > 0)
    atr__q_bump(o);
  atr__mutex_unlock(&o->lock);
  atr__lq_after(h, o, t, n);
  return n;
}

uint64_t atr__lq_clear_ready(const atr_store *s, struct atr__obj *o) {
  struct atr__ltable *t = atr__lq_table(s, o);
  uint64_t n = 0;
  if (t == NULL)
    return 0;
  for (uint32_t i = 0; i < t->cap; i++)
    if (t->slot[i].state == ATR__LQ_READY) {
      t->slot[i].state = ATR__LQ_FREE; /* one store each */
      atr__lq_free_push(t, i);
      n++;
    }
  atomic_store(&t->ready, 0);
  return n;
}

uint64_t atr__lq_ready_count(const atr_store *s, const struct atr__obj *o) {
  const struct atr__ltable *t = atr__lq_table(s, o);
  return t != NULL ? atomic_load(&t->ready) : 0;
}

bool atr__lq_free(atr_store *s, struct atr__obj *o) {
  struct atr__ltable *t = atr__lq_table(s, o);
  if (t == NULL)
    return true;
  /* The items' blocks go back at once, also when the table lingers: no
   * settle of a deleted queue reads an item. Each is unnamed first, so
   * a death in between leaves it to the recovery's heap rebuild. */
  for (uint32_t i = 0; i < t->cap; i++) {
    struct atr__lslot *sl = &t->slot[i];
    uint64_t blk = sl->blk_off;
    bool ok = lq_blk_ok(s, t, sl);
    sl->blk_off = 0;
    sl->blk_size = 0;
    if (blk != 0 && ok)
      atr__heap_free(s, blk);
  }
  if (atr__holds_linked(&t->slot[0].hold, sizeof(struct atr__lslot), t->cap))
    return false; /* lingers: its holds stay where their threads link them */
  uint64_t off = o->data_off;
  __atomic_store_n(&o->data_off, 0, __ATOMIC_RELEASE);
  atr__heap_free(s, off);
  return true;
}

size_t atr__lq_spans(const atr_store *s, const struct atr__obj *o,
                     struct atr__span *live, size_t n_max) {
  const struct atr__ltable *t = atr__lq_table(s, o);
  size_t n = 0;
  if (t == NULL)
    return 0;
  if (live == NULL) {
    return 1 + t->cap;
  }
  if (n < n_max)
    live[n++] = (struct atr__span){o->data_off, o->data_size};
  for (uint32_t i = 0; i < t->cap && n < n_max; i++)
    if (t->slot[i].blk_off != 0 && lq_blk_ok(s, t, &t->slot[i]))
      live[n++] = (struct atr__span){t->slot[i].blk_off, t->slot[i].blk_size};
  return n;
}

void atr__lq_info(const atr_store *s, const struct atr__obj *o,
                  uint64_t prod_items, atr_info *info) {
  const struct atr__ltable *t = atr__lq_table(s, o);
  info->leased = info->dead_lettered = info->dropped = 0;
  info->max_deliveries = 0;
  info->dead_letter[0] = '\0';
  info->expires_in = -1;
  uint64_t d = atomic_load(&o->u.q.done);
  info->unfinished = prod_items > d ? prod_items - d : 0;
  if (t == NULL)
    return;
  info->size += atomic_load(&t->ready);
  info->leased = atomic_load(&t->leased) + atomic_load(&t->dead);
  info->dead_lettered = atomic_load(&t->dead_lettered);
  info->dropped = atomic_load(&t->dropped);
  info->max_deliveries = t->max_deliveries;
  /* When the next lease may end (the sweep's due time): the gateway
   * calls atr_sync_expire then. */
  int64_t due = t->sweep_ns, now = atr__now_ns();
  info->expires_in = info->leased == 0 || due == INT64_MAX ? -1
                     : due <= now                          ? 0
                                  : (double)(due - now) / 1e9;
  memcpy(info->dead_letter, t->dead_letter, ATR_NAME_MAX);
  info->dead_letter[ATR_NAME_MAX] = '\0';
}
