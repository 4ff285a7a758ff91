/*
 * queue.c - bounded FIFO queues of byte items.
 *
 * Items live in a byte ring ([u32 length][u32 0][bytes, padded to 8]; a
 * length of WRAP sends the reader back to the ring's start). The queue's
 * state (head, tail, count, version) has two copies; a change writes the
 * items and the spare copy, then flips `cur` with one aligned store. A
 * process killed at any point leaves the old state or the new, never a
 * half item, so recovery has nothing to repair. Waiting uses futex
 * eventcounts in the queue's record, never condition variables.
 *
 * A queue without a byte bound starts with a small ring and moves to one
 * twice as large (or as large as needed) when a put does not fit: under
 * the store lock and its own, it copies the items over, commits the new
 * ring like any other state, and frees the old one. It is bounded by the
 * store's space, and a full store answers ATR_ENOSPC.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define WRAP 0xffffffffu
#define ITEM_HDR 8u
#define GROW_START ((uint64_t)64 << 10) /* first ring of a growing queue */
#define GROW_MAX_ITEM ((uint64_t)1 << 20)

static uint64_t need_of(size_t len) {
  return ITEM_HDR + atr__round_up(len, 8);
}

static struct atr__obj *queue_of(const atr_handle *h) {
  struct atr__obj *o = atr__obj_of(h);
  return o != NULL && h->kind == ATR_QUEUE ? o : NULL;
}

static uint8_t *ring(const atr_handle *h, const struct atr__qstate *st) {
  return h->store->base + st->ring_off;
}

static struct atr__qstate state(struct atr__obj *o) {
  return o->u.q.st[atomic_load_explicit(&o->u.q.cur, memory_order_acquire) & 1];
}

/* Makes next the queue's state: one store commits it. */
static void commit(struct atr__obj *o, const struct atr__qstate *next) {
  uint32_t cur = atomic_load(&o->u.q.cur) & 1;
  o->u.q.st[cur ^ 1] = *next;
  atomic_store_explicit(&o->u.q.cur, cur ^ 1, memory_order_release);
}

static int queue_lock(const atr_handle *h, struct atr__obj **out) {
  return atr__handle_lock(h, ATR_QUEUE, out);
}

/* Called holding o's lock, which it releases: sleeps until ec moves or
 * the deadline passes. 0 to look again, ATR_ETIMEDOUT when time is up.
 * The waiter bit is set under the lock, so a change committed after it
 * cannot miss us. */
static int wait_locked(struct atr__obj *o, _Atomic uint32_t *ec,
                       double deadline) {
  double left = atr__remaining(deadline);
  if (left == 0) {
    atr__mutex_unlock(&o->lock);
    return ATR_ETIMEDOUT;
  }
  uint32_t seen = atr__ec_prepare(ec);
  atr__mutex_unlock(&o->lock);
  atr__futex_wait(ec, seen, left);
  return 0;
}

ATR__EXPORT void atr_queue_opts_init(atr_queue_opts *opts) {
  opts->maxsize = 0;
  opts->max_bytes = (uint64_t)1 << 20;
  opts->max_item = 0;
}

static int queue_init(atr_store *s, struct atr__obj *o, void *arg) {
  const atr_queue_opts *opts = arg;
  struct atr__queue *q = &o->u.q;
  uint64_t got, want = opts->max_bytes != 0 ? opts->max_bytes : GROW_START;
  uint64_t off = atr__heap_alloc(s, atr__round_up(want, 8), &got);

  if (off == 0)
    return ATR_ENOSPC;
  memset(q->st, 0, sizeof q->st);
  q->st[0].version = o->version;
  q->st[0].ring_off = off;
  /* A bounded ring is exactly as large as asked; a growing one uses
   * the whole block. */
  q->st[0].ring_size = opts->max_bytes != 0 ? atr__round_up(want, 8) : got;
  atomic_store(&q->cur, 0);
  q->grow = opts->max_bytes == 0;
  q->maxsize = opts->maxsize;
  q->max_item = opts->max_item != 0 ? opts->max_item
                : q->grow           ? GROW_MAX_ITEM
                                    : q->st[0].ring_size / 4;
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
      o.max_bytes > ((uint64_t)1 << 40) || o.max_item > UINT32_MAX - 8)
    return ATR_EINVAL;
  return atr__open(s, name, ATR_QUEUE, 0, flags, NULL, queue_init, &o, h);
}

/* Where n items of the given sizes would end, from st; false if they do
 * not fit now. An empty queue restarts at the ring's beginning. */
static bool plan_put(const struct atr__queue *q, struct atr__qstate *st,
                     const struct iovec *items, size_t n, uint64_t *end) {
  uint64_t R = st->ring_size, pos;
  if (q->maxsize != 0 && st->count + n > q->maxsize)
    return false;
  if (st->count == 0)
    st->head = st->tail = atr__round_up(st->tail, R);
  pos = st->tail;
  for (size_t i = 0; i < n; i++) {
    uint64_t need = need_of(items[i].iov_len), phys = pos % R;
    if (R - phys < need)
      pos += R - phys;
    pos += need;
  }
  *end = pos;
  return pos - st->head <= R;
}

static void write_items(uint8_t *base, uint64_t R, uint64_t pos,
                        const struct iovec *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t need = need_of(items[i].iov_len), phys = pos % R;
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

/* Reads the item at pos; returns its length and sets *at to its bytes
 * and *next to the position after it. */
static uint32_t item_at(uint8_t *base, uint64_t R, uint64_t pos,
                        const uint8_t **at, uint64_t *next) {
  uint64_t phys = pos % R;
  uint32_t len;
  memcpy(&len, base + phys, 4);
  if (len == WRAP) {
    pos += R - phys;
    phys = 0;
    memcpy(&len, base, 4);
  }
  *at = base + phys + ITEM_HDR;
  *next = pos + need_of(len);
  return len;
}

/* Moves a growing queue to a ring with room for `more` bytes beyond what
 * it holds. Takes the store lock, then the queue's (the order deletes
 * use). 0 (also when room appeared meanwhile), ATR_ENOSPC or ATR_ENOENT. */
static int grow(const atr_handle *h, uint64_t more) {
  atr_store *s = h->store;
  struct atr__obj *o;
  uint64_t got, want, off;
  int rc;

  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if ((rc = queue_lock(h, &o)) != 0)
    goto out_store;
  struct atr__qstate st = state(o);
  uint64_t used = st.tail - st.head;
  /* Items wrap whole, wasting less than one item's room; with twice
   * the room free a put always fits. */
  if (st.ring_size - used >= 2 * more)
    goto out; /* drained meanwhile */
  for (want = 2 * st.ring_size; want < used + more; want *= 2)
    ;
  /* Doubling keeps moves rare; near the store's end, take just enough. */
  if ((off = atr__heap_alloc(s, want, &got)) == 0 &&
      (off = atr__heap_alloc(s, used + 2 * more, &got)) == 0) {
    rc = ATR_ENOSPC;
    goto out;
  }
  /* Copy the items, packed from the new ring's start, then commit the
   * new ring with one store; the old one is free from then on. */
  uint8_t *from = ring(h, &st), *to = s->base + off;
  uint64_t pos = st.head, end = 0;
  for (uint64_t k = 0; k < st.count; k++) {
    const uint8_t *at;
    uint32_t len = item_at(from, st.ring_size, pos, &at, &pos);
    struct iovec one = {(void *)(uintptr_t)at, len};
    write_items(to, got, end, &one, 1);
    end += need_of(len);
  }
  uint64_t old = st.ring_off;
  st.head = 0;
  st.tail = end;
  st.ring_off = off;
  st.ring_size = got;
  commit(o, &st);
  atr__heap_free(s, old);
out:
  atr__mutex_unlock(&o->lock);
out_store:
  atr__store_unlock(s);
  return rc;
}

ATR__EXPORT int atr_queue_put_batch(const atr_handle *h,
                                    const struct iovec *items, size_t n,
                                    double timeout) {
  struct atr__obj *o = queue_of(h);
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
    total += need_of(items[i].iov_len);
  }
  if (n == 0)
    return 0;
  if ((o->u.q.maxsize != 0 && n > o->u.q.maxsize) ||
      (!o->u.q.grow && total > state(o).ring_size))
    return ATR_EFULL; /* could never fit */
  for (;;) {
    if ((rc = queue_lock(h, &o)) != 0)
      return rc;
    struct atr__qstate st = state(o);
    if (plan_put(&o->u.q, &st, items, n, &end)) {
      write_items(ring(h, &st), st.ring_size, st.tail, items, n);
      st.tail = end;
      st.count += n;
      st.version++;
      commit(o, &st);
      atr__mutex_unlock(&o->lock);
      atr__ec_signal(&o->u.q.ec_put, false);
      atr__feed_push(h->store, o, h->slot, ATR_OP_PUT, true);
      return 0;
    }
    if (o->u.q.grow &&
        (o->u.q.maxsize == 0 || st.count + n <= o->u.q.maxsize)) {
      /* Short of bytes, not of items: move to a larger ring. */
      atr__mutex_unlock(&o->lock);
      if ((rc = grow(h, total)) != 0)
        return rc;
      continue;
    }
    if (wait_locked(o, &o->u.q.ec_get, deadline) != 0)
      return ATR_EFULL;
  }
}

ATR__EXPORT int atr_queue_put(const atr_handle *h, const void *item, size_t len,
                              double timeout) {
  struct iovec one = {(void *)(uintptr_t)item, len};
  return atr_queue_put_batch(h, &one, 1, timeout);
}

/* Copies up to max items out of the queue; the sink takes each item and
 * says whether it took it. Waits while the queue is empty. */
typedef int (*sink_fn)(void *arg, const uint8_t *item, uint32_t len);

static int take(const atr_handle *h, size_t max, double timeout, sink_fn sink,
                void *arg) {
  struct atr__obj *o = queue_of(h);
  double deadline = atr__deadline(timeout);
  int rc;

  if (o == NULL)
    return ATR_ENOENT;
  if (max == 0)
    return ATR_EINVAL;
  for (;;) {
    if ((rc = queue_lock(h, &o)) != 0)
      return rc;
    struct atr__qstate st = state(o);
    if (st.count > 0) {
      size_t k = 0;
      uint64_t pos = st.head;
      while (k < max && k < st.count) {
        const uint8_t *at;
        uint64_t next;
        uint32_t len = item_at(ring(h, &st), st.ring_size, pos, &at, &next);
        if (len > st.ring_size - ITEM_HDR) {
          rc = ATR_ECORRUPT;
          break;
        }
        if ((rc = sink(arg, at, len)) != 0)
          break;
        pos = next;
        k++;
      }
      if (k > 0) {
        st.head = pos;
        st.count -= k;
        st.version++;
        commit(o, &st);
        rc = 0;
      }
      atr__mutex_unlock(&o->lock);
      if (k > 0) {
        atr__ec_signal(&o->u.q.ec_get, false);
        atr__feed_push(h->store, o, h->slot, ATR_OP_POP, true);
      }
      return rc;
    }
    if (wait_locked(o, &o->u.q.ec_put, deadline) != 0)
      return ATR_EEMPTY;
  }
}

struct one_sink {
  void *buf;
  size_t cap, *len;
};

static int one_item(void *arg, const uint8_t *item, uint32_t len) {
  struct one_sink *os = arg;
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
  struct one_sink os = {buf, cap, len != NULL ? len : &dummy};
  if (buf == NULL && cap > 0)
    return ATR_EINVAL;
  return take(h, 1, timeout, one_item, &os);
}

static int items_append(void *arg, const uint8_t *item, uint32_t len) {
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
  rc = take(h, max, timeout, items_append, out);
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

ATR__EXPORT int atr_queue_size(const atr_handle *h, uint64_t *items,
                               uint64_t *bytes, uint64_t *version) {
  struct atr__obj *o;
  int rc;
  if ((rc = queue_lock(h, &o)) != 0)
    return rc;
  struct atr__qstate st = state(o);
  atr__mutex_unlock(&o->lock);
  if (items != NULL)
    *items = st.count;
  if (bytes != NULL)
    *bytes = st.tail - st.head;
  if (version != NULL)
    *version = st.version;
  return 0;
}

ATR__EXPORT int atr_queue_clear(const atr_handle *h) {
  struct atr__obj *o;
  int rc;
  if ((rc = queue_lock(h, &o)) != 0)
    return rc;
  struct atr__qstate st = state(o);
  st.head = st.tail;
  st.count = 0;
  st.version++;
  commit(o, &st);
  atr__mutex_unlock(&o->lock);
  atr__ec_signal(&o->u.q.ec_get, false);
  atr__feed_push(h->store, o, h->slot, ATR_OP_CLEAR, true);
  return 0;
}

int atr__queue_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  o->dead = 1;
  *last = state(o).version;
  atr__mutex_unlock(&o->lock);
  /* Waiters wake, find the record dead and answer ATR_ENOENT. */
  atr__ec_signal(&o->u.q.ec_put, true);
  atr__ec_signal(&o->u.q.ec_get, true);
  return 0;
}

int atr__queue_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  struct atr__qstate st = state(o);
  info->size = st.count;
  info->bytes = st.tail - st.head;
  info->version = st.version;
  info->maxsize = o->u.q.maxsize;
  info->max_bytes = o->u.q.grow ? 0 : st.ring_size;
  info->max_item = o->u.q.max_item;
  atr__mutex_unlock(&o->lock);
  return 0;
}
