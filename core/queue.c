/*
 * queue.c - bounded FIFO queues of byte items.
 *
 * Items live in a byte ring ([u32 length][u32 0][bytes, padded to 8]; a
 * length of WRAP sends the reader back to the ring's start). Putters and
 * getters have a lock each, so a producer and a consumer never wait for
 * one another: a putter writes its items past the tail, then commits the
 * tail; a getter copies items out from the head, then commits the head.
 * A side (position and item count) is committed with plain stores: its
 * intent first, then the count, which is the commit point, then the
 * position. Each reads the other's side with plain loads. A process
 * killed at any point leaves each side as it was or committed, never a
 * half item; the next holder of its lock completes a committed intent
 * (and a move to a larger ring, below). Waiting uses futex eventcounts in
 * the record, never condition variables.
 *
 * A queue without a byte bound starts with a small ring and grows to one
 * twice as large (or as large as needed) when a put does not fit: under
 * the store lock and both of its own, into free space next to its ring
 * if there is enough, else to a new ring; it writes the new ring and
 * positions aside, commits them with one store and applies them; a crash
 * half-way is finished by the next locker. It is bounded by the store's
 * space, and a full store answers ATR_ENOSPC.
 *
 * The version is base + put commits + get commits (q_version): each side
 * counts its commit just before making it. Describing a queue (stat,
 * list, atr_queue_size) takes neither lock (q_describe).
 *
 * The ring's place and size, both sides' positions, every item's length
 * and a move written aside are read from the file: each is checked
 * against the ring (and the ring against the heap) before it is used, on
 * every path including repair, and a queue that fails answers
 * ATR_ECORRUPT (q_ring_ok, q_sides_ok, q_item_at).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define WRAP 0xffffffffu
#define ITEM_HDR 8u
#define GROW_START ((uint64_t)64 << 10) /* first ring of a growing queue */
#define GROW_MAX_ITEM ((uint64_t)1 << 20)

static uint64_t q_need(size_t len) {
  return ITEM_HDR + atr__round_up(len, 8);
}

/* The queue's version: every put commit and every get commit counts
 * one (each side counts before it commits), a clear moves the base. */
static inline uint64_t q_version(const struct atr__queue *q) {
  return __atomic_load_n(&q->base, __ATOMIC_ACQUIRE) +
         __atomic_load_n(&q->puts, __ATOMIC_ACQUIRE) +
         __atomic_load_n(&q->gets, __ATOMIC_ACQUIRE);
}

/* Counts one more commit of a side (holding its lock, the only writer);
 * describes read the count without a lock. */
static inline void q_count(uint64_t *count) {
  __atomic_store_n(count, *count + 1, __ATOMIC_RELEASE);
}

/* Whether a ring of size R at off lies in the heap, aligned. */
static bool q_ring_fits(const atr_store *s, uint64_t off, uint64_t R) {
  return R >= 64 && R % 8 == 0 && off % 8 == 0 && atr__heap_span_ok(s, off, R);
}

/* Whether q's ring lies in the heap and its items' lengths fit the
 * length word. Checked after taking either lock: the ring changes only
 * under both. */
static bool q_ring_ok(const atr_store *s, const struct atr__queue *q) {
  return q_ring_fits(s, q->ring_off, q->ring_size) &&
         q->max_item <= UINT32_MAX - 8;
}

/* Whether the positions of both sides fit a ring of size R: aligned, the
 * putters' at most a ring ahead and (with both sides' counts consistent,
 * as under both locks: items == true) no more items than their bytes
 * hold. */
static bool q_sides_ok(uint64_t R, struct atr__qside prod,
                       struct atr__qside cons, bool items) {
  uint64_t used = prod.pos - cons.pos;
  return ((prod.pos | cons.pos) & 7) == 0 && used <= R &&
         (!items || prod.items - cons.items <= used / ITEM_HDR);
}

static struct atr__obj *q_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_QUEUE ? o : NULL;
}

static uint8_t *q_ring(const atr_handle *h, const struct atr__queue *q) {
  return h->store->base + q->ring_off;
}

/*
 * The other side's committed state, read without writing its line. Both
 * fields only grow while we hold our own lock (what rewinds them, moving
 * to a new ring, takes both locks), and the other side moves past its
 * items (copies them in or out) before it commits either field, so a pair
 * read half before and half after a commit errs on the safe side: less
 * room, or fewer items.
 */
static struct atr__qside q_side_load(const struct atr__qside *side) {
  struct atr__qside v;
  v.items = __atomic_load_n(&side->items, __ATOMIC_ACQUIRE);
  v.pos = __atomic_load_n(&side->pos, __ATOMIC_ACQUIRE);
  return v;
}

/* Commits our own side (we hold its lock, so nobody else writes it);
 * see atr__qside_commit. */
static void q_side_store(struct atr__qside *side, struct atr__qside *intent,
                         struct atr__qside next) {
  atr__qside_commit(side, intent, next, ATR__QSIDE_STORES);
}

/* Each side keeps what it last read of the other, on its own line, and
 * reads the other's line again only when that says "full" or "empty":
 * both only grow, so a stale view errs on the safe side. What moves both
 * ends (holding both locks) resets the views. */
static void q_reset_hints(struct atr__queue *q) {
  q->cons_seen = q->cons;
  q->prod_seen = q->prod.items;
}

/* Finishes a move to a larger ring (under both locks, or after a crash
 * under either: a move is made holding both). A move that does not fit
 * the heap is damage: dropped, the queue stays on its ring. */
static void q_finish_move(const atr_store *s, struct atr__queue *q) {
  if (atomic_load(&q->move.valid) == 0)
    return;
  if (!q_ring_fits(s, q->move.ring_off, q->move.ring_size) ||
      !q_sides_ok(q->move.ring_size, (struct atr__qside){q->move.prod_pos, 0},
                  (struct atr__qside){q->move.cons_pos, 0}, false)) {
    atomic_store(&q->move.valid, 0);
    return;
  }
  /* The items are in the new ring already. */
  q->ring_off = q->move.ring_off;
  q->ring_size = q->move.ring_size;
  q_side_store(&q->prod, &q->prod_intent,
               (struct atr__qside){q->move.prod_pos, q->prod.items});
  q_side_store(&q->cons, &q->cons_intent,
               (struct atr__qside){q->move.cons_pos, q->cons.items});
  q_reset_hints(q);
  atomic_store(&q->move.valid, 0);
}

static void q_clear_finish(const atr_store *s, struct atr__obj *o);

/* The record's lock (the getters') was found with its holder dead: its
 * side and what it last saw of the other's are made whole again, and a
 * clear or a lease's step it was making is finished or dropped. */
static void q_repair(atr_store *s, struct atr__obj *o) {
  struct atr__queue *q = &o->u.q;
  q_finish_move(s, q);
  atr__qside_repair(&q->cons, &q->cons_intent);
  q->prod_seen = q_side_load(&q->prod).items;
  q_clear_finish(s, o);
  atr__lq_repair(s, o);
}

static void q_put_repair(void *arg) {
  struct atr__repair_arg *ra = arg;
  struct atr__queue *q = &ra->o->u.q;
  if (atomic_load(&ra->o->id) != 0 && ra->o->kind == ATR_QUEUE) {
    q_finish_move(ra->s, q);
    atr__qside_repair(&q->prod, &q->prod_intent);
    q->cons_seen = q_side_load(&q->cons);
  }
}

/* The getters' lock (the record's), with the object still alive and
 * its ring whole. */
static int q_lock_get(const atr_handle *h, struct atr__obj **out) {
  int rc = atr__handle_lock(h, ATR_QUEUE, out);
  if (rc == 0 && !q_ring_ok(h->store, &(*out)->u.q)) {
    atr__mutex_unlock(&(*out)->lock);
    return ATR_ECORRUPT;
  }
  return rc;
}

int atr__q_lock_get(const atr_handle *h, struct atr__obj **out) {
  return q_lock_get(h, out);
}

/* The putters' lock, with the object still alive. */
static int q_lock_put(const atr_handle *h, struct atr__obj **out) {
  struct atr__obj *o = q_of(h);
  int rc;
  if (o == NULL)
    return ATR_ENOENT;
  struct atr__repair_arg ra = {h->store, o};
  if ((rc = atr__mutex_lock(&o->u.q.put_lock, q_put_repair, &ra)) != 0)
    return rc;
  if (atomic_load(&o->id) != h->id || o->dead || o->kind != ATR_QUEUE) {
    atr__mutex_unlock(&o->u.q.put_lock);
    return ATR_ENOENT;
  }
  if (!q_ring_ok(h->store, &o->u.q) || (o->u.q.prod.pos & 7) != 0) {
    atr__mutex_unlock(&o->u.q.put_lock);
    return ATR_ECORRUPT;
  }
  *out = o;
  return 0;
}

/* Both locks, putters' first (the order every path uses). */
static int q_lock_both(const atr_handle *h, struct atr__obj **out) {
  int rc;
  if ((rc = q_lock_put(h, out)) != 0)
    return rc;
  if ((rc = q_lock_get(h, out)) != 0)
    atr__mutex_unlock(&(*out)->u.q.put_lock);
  return rc;
}

static void q_unlock_both(struct atr__obj *o) {
  atr__mutex_unlock(&o->lock);
  atr__mutex_unlock(&o->u.q.put_lock);
}

int atr__queue_lock_both(atr_store *s, struct atr__obj *o) {
  struct atr__repair_arg ra = {s, o};
  int rc;
  if ((rc = atr__mutex_lock(&o->u.q.put_lock, q_put_repair, &ra)) != 0)
    return rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    atr__mutex_unlock(&o->u.q.put_lock);
  return rc;
}

void atr__queue_unlock_both(struct atr__obj *o) {
  q_unlock_both(o);
}

/* A pause in a busy wait: lets the core's other thread run and costs
 * the waiter little power. */
static inline void q_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/*
 * Before it sleeps, a waiter watches the other side for up to Q_SPIN_NS
 * (less if its deadline is nearer). A busy other side moves within a
 * microsecond or so, and a sleep costs more than the watch: the other
 * side's next commit then makes a FUTEX_WAKE system call (about 1.3 us
 * of CPU on the benchmarks' VM, where a put is 45 ns), and the sleeper
 * a wake-up. Looks at the other side's line are spaced by pauses, so the
 * watch takes that line from its writer at most every ~150 ns.
 */
#define Q_SPIN_NS 10000
#define Q_SPIN_PAUSES 8

static struct atr__q_watch q_watch(const struct atr__queue *q,
                                   const _Atomic uint32_t *ec) {
  struct atr__q_watch w;
  w.ec = atomic_load(ec) & ~ATR__EC_WAITERS;
  w.gets = __atomic_load_n(&q->gets, __ATOMIC_ACQUIRE);
  return w;
}

/* Whether anything the waiter's look depended on changed since w. */
static bool q_moved(const struct atr__queue *q, const _Atomic uint32_t *ec,
                    const struct atr__qside *other, uint64_t seen_items,
                    const struct atr__q_watch *w) {
  return __atomic_load_n(&other->items, __ATOMIC_ACQUIRE) != seen_items ||
         __atomic_load_n(&q->gets, __ATOMIC_ACQUIRE) != w->gets ||
         (atomic_load(ec) & ~ATR__EC_WAITERS) != w->ec;
}

static bool q_spin(const struct atr__queue *q, const _Atomic uint32_t *ec,
                   const struct atr__qside *other, uint64_t seen_items,
                   const struct atr__q_watch *w, double left) {
  int64_t budget = Q_SPIN_NS;
  if (left >= 0 && left * 1e9 < (double)budget)
    budget = (int64_t)(left * 1e9);
  int64_t end = atr__now_ns() + budget;
  for (unsigned n = 1;; n++) {
    for (int k = 0; k < Q_SPIN_PAUSES; k++)
      q_relax();
    if (q_moved(q, ec, other, seen_items, w))
      return true;
    if (n % 8 == 0 && atr__now_ns() >= end)
      return false;
  }
}

/*
 * Called holding lock after a look that found no room (or no item): w
 * was taken (q_watch) before that look, and the look saw the other
 * side's count at seen_items. Releases lock, watches a moment (q_spin),
 * then sleeps on ec until something moves or the deadline passes.
 *
 * What is watched is all that can change the look's answer: the other
 * side's count, the getters' commits and the lease table's changes (a
 * put's room under maxsize, items back at the head: each counts in
 * q->gets), and the eventcount itself (a delete's forced signal). The
 * waiter bit is set before they are looked at again, and whoever
 * changes them does so before it looks at the bit (its unlock, a locked
 * instruction, keeps the two in order), so one of the two always sees
 * the other; a change between the look and the bit is in the values
 * compared. 0 to look again, ATR_ETIMEDOUT when time is up, ATR_EINTR
 * when a signal handler ran during the sleep (the caller gives up:
 * Ctrl-C must stop a program blocked here).
 */
static int q_wait_side(pthread_mutex_t *lock, const struct atr__queue *q,
                       _Atomic uint32_t *ec, const struct atr__qside *other,
                       uint64_t seen_items, struct atr__q_watch w,
                       double deadline) {
  double left = atr__remaining(deadline);
  atr__mutex_unlock(lock);
  if (left == 0)
    return ATR_ETIMEDOUT;
  if (q_spin(q, ec, other, seen_items, &w, left) ||
      (left = atr__remaining(deadline)) == 0)
    return 0; /* look again (and time out there) */
  uint32_t val = atr__ec_prepare(ec);
  if (!q_moved(q, ec, other, seen_items, &w) &&
      atr__futex_wait(ec, val, left) == ATR_EINTR)
    return ATR_EINTR;
  return 0;
}

ATR__EXPORT void atr_queue_opts_init(atr_queue_opts *opts) {
  opts->maxsize = 0;
  opts->max_bytes = (uint64_t)1 << 20;
  opts->max_item = 0;
  opts->max_deliveries = 0;
  opts->max_leased = 0;
  opts->dead_letter = NULL;
}

static int q_init(atr_store *s, struct atr__obj *o, void *arg) {
  const atr_queue_opts *opts = arg;
  struct atr__queue *q = &o->u.q;
  uint64_t got, want = opts->max_bytes != 0 ? opts->max_bytes : GROW_START;
  uint64_t off = atr__heap_alloc(s, atr__round_up(want, 8), &got);

  if (off == 0)
    return ATR_ENOSPC;
  /* Field by field: the locks in this struct are never rewritten. */
  q->cons = q->cons_intent = q->prod = q->prod_intent =
      (struct atr__qside){0, 0};
  q->gets = q->puts = 0;
  q->clear_cons = q->clear_done = 0;
  atomic_store(&q->done, 0);
  atomic_store(&q->pend_pop, 0);
  q_reset_hints(q);
  q->base = o->version;
  q->ring_off = off;
  /* A bounded ring is exactly as large as asked; a growing one uses
   * the whole block. */
  q->ring_size = opts->max_bytes != 0 ? atr__round_up(want, 8) : got;
  atomic_store(&q->move.valid, 0);
  q->grow = opts->max_bytes == 0;
  q->maxsize = opts->maxsize;
  q->max_item = opts->max_item != 0 ? opts->max_item
                : q->grow           ? GROW_MAX_ITEM
                                    : q->ring_size / 4;
  /* Settings of leased items live in the lease table: made now if the
   * queue has any, else at its first leased get. */
  if (opts->max_deliveries != 0 || opts->dead_letter != NULL ||
      opts->max_leased != 0) {
    int rc = atr__lq_make(s, o, opts->max_leased, opts->max_deliveries,
                          opts->dead_letter);
    if (rc != 0) {
      atr__heap_free(s, off);
      return rc;
    }
  }
  return 0;
}

ATR__EXPORT int atr_queue_open(atr_store *s, const char *name, int flags,
                               const atr_queue_opts *opts, atr_handle *h) {
  atr_queue_opts o;
  atr_queue_opts_init(&o);
  if (opts != NULL)
    o = *opts;
  if ((o.max_bytes != 0 &&
       (o.max_bytes < 64 ||
        o.max_item > atr__round_up(o.max_bytes, 8) - ITEM_HDR)) ||
      o.max_bytes > ((uint64_t)1 << 40) || o.max_item > UINT32_MAX - 8 ||
      o.max_leased > 65536)
    return ATR_EINVAL;
  if (o.dead_letter != NULL) {
    if (atr_name_check(o.dead_letter, strlen(o.dead_letter)) != 0)
      return ATR_ENAME;
    if (strcmp(o.dead_letter, name) == 0)
      return ATR_EINVAL; /* an item would never leave */
  }
  return atr__open(s, name, ATR_QUEUE, 0, flags, NULL, q_init, &o, h);
}

/* Where n items would end if written from prod.pos; false if they do
 * not fit beside what cons has not taken yet. */
static bool q_plan_put(const atr_handle *h, const struct atr__obj *o,
                       struct atr__qside prod, struct atr__qside cons,
                       const struct iovec *items, size_t n, uint64_t *end) {
  const struct atr__queue *q = &o->u.q;
  uint64_t R = q->ring_size, pos = prod.pos;
  /* maxsize bounds the waiting items and the leased ones together. */
  if (q->maxsize != 0 &&
      prod.items - cons.items + n + atr__lq_held(h->store, o) > q->maxsize)
    return false;
  for (size_t i = 0; i < n; i++) {
    uint64_t need = q_need(items[i].iov_len), phys = pos % R;
    if (R - phys < need)
      pos += R - phys;
    pos += need;
  }
  *end = pos;
  return pos - cons.pos <= R;
}

static void q_write_items(uint8_t *base, uint64_t R, uint64_t pos,
                          const struct iovec *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t need = q_need(items[i].iov_len), phys = pos % R;
    uint32_t hdr[2] = {(uint32_t)items[i].iov_len, 0};
    if (R - phys < need) {
      uint32_t wrap = WRAP;
      memcpy(base + phys, &wrap, 4);
      pos += R - phys;
      phys = 0;
    }
    memcpy(base + phys, hdr, sizeof hdr);
    if (items[i].iov_len > 0)
      memcpy(base + phys + ITEM_HDR, items[i].iov_base, items[i].iov_len);
    pos += need;
  }
}

/* Reads the item at pos, which must end at most limit bytes past start
 * (the side's position): sets *len, *at to its bytes and *next to the
 * position after it. false if its length runs past the ring or the
 * limit (damage). */
static bool q_item_at(const uint8_t *base, uint64_t R, uint64_t start,
                      uint64_t limit, uint64_t pos, uint32_t *len,
                      const uint8_t **at, uint64_t *next) {
  uint64_t phys = pos % R;
  if (phys > R - ITEM_HDR)
    return false;
  memcpy(len, base + phys, 4);
  if (*len == WRAP) {
    pos += R - phys;
    phys = 0;
    memcpy(len, base, 4);
  }
  if (*len > R - ITEM_HDR - phys)
    return false;
  *at = base + phys + ITEM_HDR;
  *next = pos + q_need(*len);
  return *next - start <= limit;
}

/* Copies the items, packed, into the ring `to` of size R from position
 * 0 (R must hold the bytes between the sides); false if an item runs
 * past them (damage: nothing is committed). *end: where they end. */
static bool q_pack_items(const atr_handle *h, const struct atr__queue *q,
                         uint8_t *to, uint64_t R, uint64_t *end) {
  uint8_t *from = q_ring(h, q);
  uint64_t pos = q->cons.pos, used = q->prod.pos - q->cons.pos;
  *end = 0;
  for (uint64_t k = q->cons.items; k != q->prod.items; k++) {
    const uint8_t *at;
    uint32_t len;
    if (!q_item_at(from, q->ring_size, q->cons.pos, used, pos, &len, &at, &pos))
      return false;
    struct iovec one = {(void *)(uintptr_t)at, len};
    q_write_items(to, R, *end, &one, 1);
    *end += q_need(len);
  }
  return true;
}

/* The bytes of the items from head to the ring's end, less the room a
 * wrap marker leaves unused. */
static uint64_t q_lap_items(const uint8_t *r, uint64_t R, uint64_t head) {
  uint64_t pos = head;
  while (pos + ITEM_HDR <= R) {
    uint32_t len;
    memcpy(&len, r + pos, 4);
    if (len == WRAP)
      break;
    pos += q_need(len);
  }
  return pos - head;
}

/*
 * Moves a growing queue to a ring with room for `more` bytes beyond what
 * it holds. Takes the store lock, then the queue's two. 0 (also when
 * room appeared meanwhile), ATR_ENOSPC or ATR_ENOENT.
 *
 * The ring's own block grows into a free neighbour if one has the room:
 * then no second ring is needed, and a queue can fill the store. Items
 * that do not wrap stay where they are. Of wrapped ones, the smaller
 * part moves, in one copy into the part that was free: the first lap's
 * items (head to ring end) to just before the second lap's or to the new
 * ring's end, or the second lap's (ring start to tail) to the new ring's
 * start or just after the first lap's. Otherwise the items are copied to
 * a new block. Either way nothing live is overwritten before the move is
 * committed, and the heap is rebuilt from the records after a crash.
 */
static int q_grow(const atr_handle *h, uint64_t more) {
  atr_store *s = h->store;
  struct atr__obj *o;
  uint64_t got = 0, off = 0;
  int rc;

  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if ((rc = q_lock_both(h, &o)) != 0)
    goto out_store;
  struct atr__queue *q = &o->u.q;
  uint64_t R = q->ring_size, old = q->ring_off;
  uint64_t used = q->prod.pos - q->cons.pos, want, least = used + 2 * more;
  if (!q_sides_ok(R, q->prod, q->cons, true)) {
    rc = ATR_ECORRUPT;
    goto out;
  }
  if (more > s->size || least > s->size) {
    rc = ATR_ENOSPC;
    goto out;
  }
  /* Items wrap whole, wasting less than one item's room; with twice
   * the room free a put always fits. */
  if (R - used >= 2 * more)
    goto out; /* drained meanwhile */
  for (want = 2 * R; want < least; want *= 2)
    ;
  uint8_t *base = s->base;
  uint64_t head = q->cons.pos % R, lap_end = q->cons.pos - head + R;
  bool wrapped = q->prod.pos > lap_end;
  /* The bytes of the first lap's items and of the second lap's. */
  uint64_t tail = wrapped ? q->prod.pos - lap_end : 0;
  uint64_t first = wrapped ? q_lap_items(base + old, R, head) : 0;
  if (first > R - head) {
    rc = ATR_ECORRUPT;
    goto out;
  }
  /* What moves: backwards, the smaller part; forwards, the first lap's
   * items unless that lap ends at the ring's end (no wrap marker) and the
   * second is smaller. */
  bool tail_moves = tail <= first;
  bool fwd_first = head + first < R || !tail_moves;
  uint64_t copy_fwd = !wrapped ? 0 : fwd_first ? first : tail;
  uint64_t copy_back = !wrapped ? 0 : tail_moves ? tail : first;
  bool fwd = false;
  /* Doubling keeps moves rare; near the store's end, take just enough. */
  for (int i = 0; i < 2 && off == 0; i++) {
    uint64_t by = (i == 0 ? want : least) - R;
    off = atr__heap_extend(s, old, by > copy_fwd ? by : copy_fwd, true, &got);
    if ((fwd = off != 0))
      break;
    off =
        atr__heap_extend(s, old, by > copy_back ? by : copy_back, false, &got);
  }
  bool in_place = off != 0;
  if (in_place) {
    uint64_t taken = got - R, at = old - off; /* old ring in the new */
    struct atr__qmove *m = &q->move;
    if (!wrapped) { /* the items stay */
      m->cons_pos = at + head;
      m->prod_pos = m->cons_pos + used;
    } else if (fwd && fwd_first) { /* first lap to the end */
      memcpy(base + off + got - first, base + old + head, first);
      m->cons_pos = got - first;
      m->prod_pos = got + tail;
    } else if (fwd) { /* second lap after the first, which ends at R */
      memcpy(base + old + R, base + old, tail);
      m->cons_pos = head;
      m->prod_pos = R + tail;
    } else if (tail_moves) { /* second lap to the start */
      memcpy(base + off, base + old, tail);
      m->cons_pos = at + head;
      m->prod_pos = got + tail;
    } else { /* first lap just before the second */
      memcpy(base + old - first, base + old + head, first);
      m->cons_pos = taken - first;
      m->prod_pos = taken + tail;
    }
  } else if ((off = atr__heap_alloc(s, want, &got)) != 0 ||
             (off = atr__heap_alloc(s, least, &got)) != 0) {
    q->move.cons_pos = 0;
    if (!q_pack_items(h, q, s->base + off, got, &q->move.prod_pos)) {
      atr__heap_free(s, off);
      rc = ATR_ECORRUPT;
      goto out;
    }
  } else {
    rc = ATR_ENOSPC;
    goto out;
  }
  /* Write the move aside, commit it with one store and apply it. */
  q->move.ring_off = off;
  q->move.ring_size = got;
  atomic_store(&q->move.valid, 1);
  q_finish_move(s, q);
  if (!in_place)
    atr__heap_free(s, old);
out:
  q_unlock_both(o);
out_store:
  atr__store_unlock(s);
  return rc;
}

/*
 * An empty queue whose ends stand mid-ring may not fit a batch that the
 * ring from its start would: move both ends to the next lap. Holding
 * put_lock; takes the getters' lock too. A WRAP marker goes first, so a
 * getter at the old head follows even if we die between the commits.
 * 0, ATR_ELOCKED, or ATR_ECORRUPT if the sides do not fit the ring.
 */
static int q_restart_empty(const atr_handle *h, struct atr__obj *o) {
  struct atr__queue *q = &o->u.q;
  int rc;
  /* A getters' lock that stays held (ATR_ELOCKED) is passed up: looping
   * back would spin on it. */
  if ((rc = atr__record_lock(h->store, o)) != 0)
    return rc;
  struct atr__qside prod = q->prod, cons = q->cons;
  if (!q_sides_ok(q->ring_size, prod, cons, true))
    rc = ATR_ECORRUPT;
  else if (atomic_load(&o->id) == h->id && !o->dead &&
           prod.items == cons.items) {
    if (prod.pos % q->ring_size != 0) {
      uint32_t wrap = WRAP;
      memcpy(q_ring(h, q) + prod.pos % q->ring_size, &wrap, 4);
      prod.pos = atr__round_up(prod.pos, q->ring_size);
      q_side_store(&q->prod, &q->prod_intent, prod);
    }
    /* Also finishes a restart whose maker died between the two. */
    if (cons.pos != prod.pos)
      q_side_store(&q->cons, &q->cons_intent,
                   (struct atr__qside){prod.pos, cons.items});
    q_reset_hints(q);
  }
  atr__mutex_unlock(&o->lock);
  return rc;
}

ATR__EXPORT int atr_queue_put_batch(const atr_handle *h,
                                    const struct iovec *items, size_t n,
                                    double timeout) {
  struct atr__obj *o = q_of(h);
  double deadline = atr__deadline(timeout);
  uint64_t total = 0, end;
  int rc;

  if (o == NULL)
    return ATR_ENOENT;
  if (items == NULL && n > 0)
    return ATR_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (items[i].iov_len > o->u.q.max_item)
      return ATR_ETOOBIG;
    if (items[i].iov_base == NULL && items[i].iov_len > 0)
      return ATR_EINVAL;
    total += q_need(items[i].iov_len);
  }
  if (n == 0)
    return 0;
  if ((o->u.q.maxsize != 0 && n > o->u.q.maxsize) ||
      (!o->u.q.grow && total > o->u.q.ring_size &&
       q_ring_ok(h->store, &o->u.q)))
    return ATR_EFULL; /* could never fit (a damaged ring: see below) */
  for (;;) {
    if ((rc = q_lock_put(h, &o)) != 0)
      return rc;
    struct atr__queue *q = &o->u.q;
    struct atr__q_watch w = q_watch(q, &q->ec_get); /* before the look */
    struct atr__qside prod = q->prod, cons = q->cons_seen;
    bool fits = q_plan_put(h, o, prod, cons, items, n, &end);
    if (!fits) {
      cons = q->cons_seen = q_side_load(&q->cons);
      if (!q_sides_ok(q->ring_size, prod, cons, false)) {
        atr__mutex_unlock(&q->put_lock);
        return ATR_ECORRUPT;
      }
      fits = q_plan_put(h, o, prod, cons, items, n, &end);
    }
    if (fits) {
      q_write_items(q_ring(h, q), q->ring_size, prod.pos, items, n);
      q_count(&q->puts);
      q_side_store(&q->prod, &q->prod_intent,
                   (struct atr__qside){end, prod.items + n});
      atr__mutex_unlock(&q->put_lock);
      atr__ec_signal(&q->ec_put, false);
      atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_PUT, &o->pend);
      return 0;
    }
    if (prod.items == cons.items &&
        (prod.pos % q->ring_size != 0 || cons.pos != prod.pos)) {
      rc = q_restart_empty(h, o);
      atr__mutex_unlock(&q->put_lock);
      if (rc != 0)
        return rc;
      continue;
    }
    if (q->grow && (q->maxsize == 0 ||
                    prod.items - cons.items + n + atr__lq_held(h->store, o) <=
                        q->maxsize)) {
      /* Short of bytes, not of items: move to a larger ring. */
      atr__mutex_unlock(&q->put_lock);
      if ((rc = q_grow(h, total)) != 0)
        return rc;
      continue;
    }
    if ((rc = q_wait_side(&q->put_lock, q, &q->ec_get, &q->cons, cons.items, w,
                          deadline)) != 0)
      return rc == ATR_EINTR ? rc : ATR_EFULL;
  }
}

ATR__EXPORT int atr_queue_put(const atr_handle *h, const void *item, size_t len,
                              double timeout) {
  struct iovec one = {(void *)(uintptr_t)item, len};
  return atr_queue_put_batch(h, &one, 1, timeout);
}

/* Copies up to max items out of the queue; the sink takes each item and
 * says whether it took it. Waits while the queue is empty. */
typedef int (*q_sink_fn)(void *arg, const uint8_t *item, uint32_t len);

static int q_take(const atr_handle *h, size_t max, double timeout,
                  q_sink_fn sink, void *arg) {
  struct atr__obj *o = q_of(h);
  double deadline = atr__deadline(timeout);
  int rc;

  if (o == NULL)
    return ATR_ENOENT;
  if (max == 0)
    return ATR_EINVAL;
  for (;;) {
    if ((rc = q_lock_get(h, &o)) != 0)
      return rc;
    struct atr__queue *q = &o->u.q;
    struct atr__q_watch w = q_watch(q, &q->ec_put); /* before the look */
    /* Items back from a lease stand at the head: taken first. */
    if (o->data_off != 0 && atr__lq_ready(h, o) > 0) {
      size_t k = 0;
      while (k < max && (rc = atr__lq_take_ready(h, o, sink, arg)) == 1)
        k++;
      if (k > 0)
        q_count(&q->gets);
      atr__mutex_unlock(&o->lock);
      if (k > 0) {
        atr__ec_signal(&q->ec_get, false);
        atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_POP, &q->pend_pop);
      }
      return k > 0 ? 0 : rc < 0 ? rc : ATR_EEMPTY;
    }
    struct atr__qside cons = q->cons, prod = {0, q->prod_seen};
    uint64_t waiting = prod.items - cons.items;
    /* The hint is as old as our last look: with fewer items than asked
     * for, look at the putters' side again, so that a batch takes every
     * item committed before it started (up to max), not just those the
     * hint knew of. A get of one item seldom needs the look. */
    if (waiting < max) {
      prod = q_side_load(&q->prod);
      q->prod_seen = prod.items;
      waiting = prod.items - cons.items;
    }
    if (waiting > 0) {
      size_t k = 0;
      uint64_t pos = cons.pos;
      while (k < max && k < waiting) {
        const uint8_t *at;
        uint64_t next;
        uint32_t len;
        if (!q_item_at(q_ring(h, q), q->ring_size, cons.pos, q->ring_size, pos,
                       &len, &at, &next)) {
          rc = ATR_ECORRUPT;
          break;
        }
        if ((rc = sink(arg, at, len)) != 0)
          break;
        pos = next;
        k++;
      }
      if (k > 0) {
        q_count(&q->gets);
        q_side_store(&q->cons, &q->cons_intent,
                     (struct atr__qside){pos, cons.items + k});
        rc = 0;
      }
      atr__mutex_unlock(&o->lock);
      if (k > 0) {
        atr__ec_signal(&q->ec_get, false);
        atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_POP, &q->pend_pop);
      }
      return rc;
    }
    if ((rc = atr__q_wait_items(h, o, &w, deadline)) != 0)
      return rc == ATR_EINTR ? rc : ATR_EEMPTY;
  }
}

/* A leased item comes back by itself when its holder dies, and nothing
 * is put then: while threads hold leased items, an empty queue's getters
 * look again every 10 ms. */
#define Q_LEASE_LOOK 0.01

struct atr__q_watch atr__q_watch_items(const struct atr__obj *o) {
  return q_watch(&o->u.q, &o->u.q.ec_put);
}

int atr__q_wait_items(const atr_handle *h, struct atr__obj *o,
                      const struct atr__q_watch *w, double deadline) {
  struct atr__queue *q = &o->u.q;
  const struct atr__ltable *t = atr__lq_table(h->store, o);
  double until = deadline;
  if (t != NULL &&
      (atomic_load(&t->linked) > 0 || atomic_load(&t->leased) > 0)) {
    double look = atr__deadline(Q_LEASE_LOOK);
    if (deadline < 0 || look < deadline)
      until = look;
  }
  /* The look found the putters' count at prod_seen (it reads the
   * putters' side into it whenever it runs out). */
  int rc =
      q_wait_side(&o->lock, q, &q->ec_put, &q->prod, q->prod_seen, *w, until);
  return rc == ATR_ETIMEDOUT && until != deadline ? 0 : rc;
}

bool atr__q_head(const atr_handle *h, struct atr__obj *o, const uint8_t **at,
                 uint32_t *len, uint64_t *next, int *rc) {
  struct atr__queue *q = &o->u.q;
  struct atr__qside cons = q->cons;
  *rc = 0;
  if (q->prod_seen == cons.items)
    q->prod_seen = q_side_load(&q->prod).items;
  if (q->prod_seen == cons.items)
    return false;
  if (!q_item_at(q_ring(h, q), q->ring_size, cons.pos, q->ring_size, cons.pos,
                 len, at, next)) {
    *rc = ATR_ECORRUPT;
    return false;
  }
  return true;
}

void atr__q_take_commit(struct atr__obj *o, uint64_t next, uint64_t k,
                        int stores) {
  struct atr__queue *q = &o->u.q;
  q_count(&q->gets);
  atr__qside_commit(&q->cons, &q->cons_intent,
                    (struct atr__qside){next, q->cons.items + k}, stores);
}

void atr__q_bump(struct atr__obj *o) {
  q_count(&o->u.q.gets);
}

uint64_t atr__q_puts(const struct atr__obj *o) {
  return q_side_load(&o->u.q.prod).items;
}

struct q_one_sink {
  void *buf;
  size_t cap, *len;
};

static int q_one_item(void *arg, const uint8_t *item, uint32_t len) {
  struct q_one_sink *os = arg;
  *os->len = len;
  if (len > os->cap)
    return ATR_ETOOBIG;
  if (len > 0)
    memcpy(os->buf, item, len);
  return 0;
}

ATR__EXPORT int atr_queue_get(const atr_handle *h, void *buf, size_t cap,
                              size_t *len, double timeout) {
  size_t dummy;
  struct q_one_sink os = {buf, cap, len != NULL ? len : &dummy};
  if (buf == NULL && cap > 0)
    return ATR_EINVAL;
  return q_take(h, 1, timeout, q_one_item, &os);
}

int atr__items_append(void *arg, const uint8_t *item, uint32_t len) {
  atr_items *it = arg;
  size_t used =
      it->count > 0 ? it->off[it->count - 1] + it->len[it->count - 1] : 0;
  if (it->count == it->item_cap) {
    size_t cap = it->item_cap ? 2 * it->item_cap : 16;
    size_t *off = realloc(it->off, cap * sizeof *off);
    if (off == NULL)
      return ATR_ENOMEM;
    it->off = off;
    size_t *lens = realloc(it->len, cap * sizeof *lens);
    if (lens == NULL)
      return ATR_ENOMEM;
    it->len = lens;
    it->item_cap = cap;
  }
  if (used + len > it->data_cap || it->data == NULL) {
    size_t cap = it->data_cap ? it->data_cap : 4096;
    while (cap < used + len)
      cap *= 2;
    char *data = realloc(it->data, cap);
    if (data == NULL)
      return ATR_ENOMEM;
    it->data = data;
    it->data_cap = cap;
  }
  if (len > 0)
    memcpy(it->data + used, item, len);
  it->off[it->count] = used;
  it->len[it->count] = len;
  it->count++;
  return 0;
}

ATR__EXPORT int atr_queue_get_batch(const atr_handle *h, size_t max,
                                    double timeout, atr_items *out) {
  size_t before;
  int rc;
  if (out == NULL)
    return ATR_EINVAL;
  before = out->count;
  rc = q_take(h, max, timeout, atr__items_append, out);
  if (rc != 0)
    out->count = before; /* nothing was taken */
  return rc;
}

ATR__EXPORT void atr_items_free(atr_items *items) {
  if (items == NULL)
    return;
  free(items->data);
  free(items->off);
  free(items->len);
  memset(items, 0, sizeof *items);
}

/*
 * What a describe sees of a queue, read without either lock, so that it
 * never waits for (nor on a dead holder of) a producer's or a consumer's
 * lock. It is no atomic snapshot of both sides, but:
 * - items is never negative: the getters' count is read first, and both
 *   counts only grow (clears and moves keep them), so the putters' count
 *   read after it is at least as large;
 * - bytes lies between 0 and the ring's size; it is exact when no side
 *   committed during the read (a move or a clear may rewind positions);
 * - version never goes back for one reader: its three terms only grow.
 *   It may count a commit whose items the counts do not show yet.
 */
struct q_view {
  uint64_t items, bytes, version;
};

static struct q_view q_describe(const struct atr__queue *q) {
  struct q_view v;
  struct atr__qside cons = q_side_load(&q->cons), prod = q_side_load(&q->prod);
  uint64_t ring_size = __atomic_load_n(&q->ring_size, __ATOMIC_ACQUIRE);
  v.items = prod.items - cons.items;
  v.bytes = v.items == 0 || prod.pos < cons.pos ? 0 : prod.pos - cons.pos;
  if (v.bytes > ring_size)
    v.bytes = ring_size;
  v.version = q_version(q);
  return v;
}

ATR__EXPORT int atr_queue_size(const atr_handle *h, uint64_t *items,
                               uint64_t *bytes, uint64_t *version) {
  struct atr__obj *o = q_of(h);
  if (o == NULL)
    return ATR_ENOENT;
  struct q_view v = q_describe(&o->u.q);
  const struct atr__ltable *t = atr__lq_table(h->store, o);
  if (atomic_load(&o->id) != h->id ||
      __atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  if (items != NULL)
    *items = v.items + (t != NULL ? atomic_load(&t->ready) : 0);
  if (bytes != NULL)
    *bytes = v.bytes;
  if (version != NULL)
    *version = v.version;
  return 0;
}

/* A clear committed by the getters' side: the items back from a lease
 * go too, and all of them are done (under both locks, or in repair). */
static void q_clear_finish(const atr_store *s, struct atr__obj *o) {
  struct atr__queue *q = &o->u.q;
  if (q->clear_cons == 0)
    return;
  if (q->cons.items + 1 >= q->clear_cons) {
    atr__lq_clear_ready(s, o);
    atomic_store(&q->done, q->clear_done);
  }
  q->clear_cons = 0;
}

ATR__EXPORT int atr_queue_clear(const atr_handle *h) {
  struct atr__obj *o;
  int rc;
  if ((rc = q_lock_both(h, &o)) != 0)
    return rc;
  struct atr__queue *q = &o->u.q;
  /* The items removed are done: how many is written aside first and
   * committed with the getters' side. */
  q->clear_done = atr__lq_done_after(o, q->prod.items - q->cons.items +
                                            atr__lq_ready_count(h->store, o));
  q->clear_cons = q->prod.items + 1;
  q_count(&q->base);
  q_side_store(&q->cons, &q->cons_intent, q->prod);
  q_clear_finish(h->store, o);
  q_reset_hints(q);
  q_unlock_both(o);
  atr__ec_signal(&q->ec_get, false);
  atr__feed_push_fenced(h->store, o, h->slot, ATR_OP_CLEAR, &o->pend);
  return 0;
}

/* Under the store lock: no change can follow; the last version is
 * final. */
static int q_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  struct atr__queue *q = &o->u.q;
  int rc;
  if ((rc = atr__queue_lock_both(s, o)) != 0)
    return rc;
  o->dead = 1;
  *last = q_version(q);
  if (!atr__lq_free(s, o) && atomic_load(&q->move.valid) == 0 &&
      q->ring_off != 0) {
    /* Its lease table lingers for a thread's hold; the ring need not:
     * it goes now (unnamed first, so the lingering record's data is
     * nothing, as a recovery's heap rebuild would then find). */
    uint64_t ring = q->ring_off;
    q->ring_off = 0;
    q->ring_size = 0;
    atr__heap_free(s, ring);
  }
  q_unlock_both(o);
  /* Waiters wake, find the record dead and answer ATR_ENOENT. */
  atr__ec_signal(&q->ec_put, true);
  atr__ec_signal(&q->ec_get, true);
  return 0;
}

/* Lock-free (see q_describe). */
static int q_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  struct atr__queue *q = &o->u.q;
  struct q_view v = q_describe(q);
  (void)s;
  info->size = v.items;
  info->bytes = v.bytes;
  info->version = v.version;
  info->maxsize = q->maxsize;
  info->max_bytes = q->grow ? 0 : q->ring_size;
  info->max_item = q->max_item;
  atr__lq_info(s, o, q_side_load(&q->prod).items, info);
  return 0;
}

/* The ring; a committed move owns the new one (the old one is free). */
static uint64_t q_data(const struct atr__obj *o, uint64_t *size) {
  const struct atr__queue *q = &o->u.q;
  bool moved = atomic_load(&q->move.valid) != 0;
  *size = moved ? q->move.ring_size : q->ring_size;
  return moved ? q->move.ring_off : q->ring_off;
}

static uint64_t q_last_version(const struct atr__obj *o) {
  return q_version(&o->u.q);
}

/* Pops keep their mark apart, so that puts and pops taking turns
 * coalesce too. */
static _Atomic uint64_t *q_mark(struct atr__obj *o, atr_op op) {
  return op == ATR_OP_POP ? &o->u.q.pend_pop : &o->pend;
}

/* A deleted queue whose leased items a thread still holds (its lease
 * table was kept: see atr__lq_free). */
static bool q_lingers(const atr_store *s, const struct atr__obj *o) {
  const struct atr__ltable *t = atr__lq_table(s, o);
  return t != NULL &&
         atr__holds_linked(&t->slot[0].hold, sizeof(struct atr__lslot), t->cap);
}

static int q_slot_init(struct atr__obj *o) {
  return atr__mutex_init(&o->u.q.put_lock);
}

const struct atr__kind_ops atr__queue_ops = {
    .name = "queue",
    .kill = q_kill,
    .repair = q_repair,
    .info = q_info,
    .data = q_data,
    .last_version = q_last_version,
    .mark = q_mark,
    .slot_init = q_slot_init,
    .lingers = q_lingers,
    .expire = atr__lq_expire,
    .spans = atr__lq_spans,
};
