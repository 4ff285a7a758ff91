/*
 * dict_read.c - a dict's reads: one key, some keys, a page in key order,
 * its length, and the keys its recent commits changed; and the items
 * they are copied into.
 *
 * Reads take no lock (dict_read_run): a seqlock over the dict's `seq`,
 * which every commit and move bumps, with `log_valid` and `mv.valid` as
 * its "a writer is in the middle" bits. A reader notes seq, checks that
 * no commit or move is under way, reads, and checks again (after an
 * acquire fence that pairs with the writers' release fences): if
 * anything changed it drops what it read and tries again, and after
 * DICT_READ_TRIES tries takes the record lock (which also repairs what
 * a dead writer left). So a multi-key update is seen all or none, and a
 * writer stopped while holding the record lock (outside the few stores
 * of a commit) stops no reader.
 *
 * What a reader may touch: entries are never rewritten while their
 * arena is the dict's, so what changes under a reader is only a bucket
 * (a commit: seq moves) or the whole arena (a move: freed to the heap,
 * which may hand it to another object at once; seq moves before the
 * free, and a delete sets the record's id to 0 before its free). The
 * heap never gives memory back to the system, so the old arena stays
 * mapped; a reader reads only inside the arena it checked
 * (atr__dict_view) and uses only lengths it read once and checked
 * (atr__dict_ent_hdr), so garbage costs it a retry, never a read
 * outside the arena.
 */
#include "dict.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- items */

ATR__EXPORT void atr_dict_items_free(atr_dict_items *items) {
  if (items == NULL)
    return;
  free(items->data);
  free(items->item);
  memset(items, 0, sizeof *items);
}

int atr__dict_items_add(atr_dict_items *out, const char *key, size_t klen,
                        const char *val, size_t vlen, uint64_t version,
                        int del) {
  if (out->count == out->item_cap) {
    size_t cap = out->item_cap ? out->item_cap * 2 : 16;
    atr_dict_item *it = realloc(out->item, cap * sizeof *it);
    if (it == NULL)
      return ATR_ENOMEM;
    out->item = it;
    out->item_cap = cap;
  }
  if (out->data_cap - out->data_len < klen + vlen + 1) {
    size_t cap = out->data_cap ? out->data_cap : 256;
    while (cap - out->data_len < klen + vlen + 1)
      cap *= 2;
    char *data = realloc(out->data, cap);
    if (data == NULL)
      return ATR_ENOMEM;
    out->data = data;
    out->data_cap = cap;
  }
  atr_dict_item *it = &out->item[out->count++];
  it->key_off = out->data_len;
  it->key_len = klen;
  memcpy(out->data + out->data_len, key, klen);
  out->data_len += klen;
  it->value_off = out->data_len;
  it->value_len = vlen;
  if (vlen > 0)
    memcpy(out->data + out->data_len, val, vlen);
  out->data_len += vlen;
  out->data[out->data_len] = 0; /* a value that is text reads as a string */
  it->version = version;
  it->deleted = del;
  return 0;
}

/* The lengths are a copy of e's header checked against v: a lock-free
 * reader's entry may change under it, never the bounds of its copy. */
int atr__dict_items_add_ent(atr_dict_items *out, const struct dict_view *v,
                            const struct dict_ent *e) {
  struct dict_ent x;
  if (atr__dict_ent_hdr(v, (uint64_t)((const uint8_t *)e - v->a), &x) == NULL)
    return ATR_ECORRUPT;
  const char *key = (const char *)(e + 1);
  return atr__dict_items_add(out, key, x.klen, key + x.klen, x.vlen, x.version,
                             0);
}

/* ----------------------------------------------------------------- reads */

/* Lock-free tries before a reader takes the record lock. A commit's
 * stores take well under a microsecond; a writer stopped inside them
 * (or dead there, leaving its log) is what the lock path is for. */
#define DICT_READ_TRIES 16

/* A read's body, on a view of the arena: lock-free (its result is used
 * only if dict_read_valid says so after it) or under the record lock. */
typedef int (*dict_read_fn)(const struct dict_view *v, struct atr__obj *o,
                            void *arg);

/* A lock-free read's start: 0 with o, a view and the sequence to check
 * at its end; 1 if a commit or move is under way (or the view looks
 * damaged: the lock path says which); ATR_ENOENT. */
static int dict_read_begin(const atr_handle *h, struct atr__obj **o,
                           struct dict_view *v, uint64_t *seq) {
  struct atr__obj *x = atr__obj_of(h);
  if (x == NULL || h->kind != ATR_DICT)
    return ATR_ENOENT;
  struct atr__dict *d = &x->u.d;
  *seq = atomic_load_explicit(&d->seq, memory_order_acquire);
  if (atomic_load_explicit(&d->log_valid, memory_order_acquire) != 0 ||
      atomic_load_explicit(&d->mv.valid, memory_order_acquire) != 0)
    return 1;
  if (__atomic_load_n(&x->dead, __ATOMIC_ACQUIRE) != 0)
    return ATR_ENOENT;
  if (atr__dict_view(h->store, d, v) != 0)
    return 1;
  *o = x;
  return 0;
}

/* Whether nothing a lock-free read read changed while it read: no
 * commit or move began or ended (seq, the two valid bits) and the
 * record is still the handle's (a delete clears the id before it frees
 * the arena). */
static bool dict_read_valid(const atr_handle *h, struct atr__obj *o,
                            uint64_t seq) {
  struct atr__dict *d = &o->u.d;
  atomic_thread_fence(memory_order_acquire);
  return atomic_load_explicit(&d->log_valid, memory_order_acquire) == 0 &&
         atomic_load_explicit(&d->mv.valid, memory_order_acquire) == 0 &&
         atomic_load_explicit(&d->seq, memory_order_relaxed) == seq &&
         atomic_load_explicit(&o->id, memory_order_relaxed) == h->id;
}

/* Runs fn lock-free, or under the record lock after DICT_READ_TRIES
 * tries. out (may be NULL) is put back as it was after a try that does
 * not count and on an error. */
static int dict_read_run(const atr_handle *h, dict_read_fn fn, void *arg,
                         atr_dict_items *out) {
  size_t count = out ? out->count : 0, data_len = out ? out->data_len : 0;
  struct atr__obj *o;
  struct dict_view v;
  uint64_t seq;
  int rc;
  for (int tries = 0; tries < DICT_READ_TRIES; tries++) {
    if (tries >= DICT_READ_TRIES / 2)
      sched_yield(); /* a writer in its commit, on this core perhaps */
    if ((rc = dict_read_begin(h, &o, &v, &seq)) < 0)
      return rc;
    if (rc == 1)
      continue;
    rc = fn(&v, o, arg);
    if (dict_read_valid(h, o, seq) && rc != ATR_ENOMEM)
      goto done;
    if (out != NULL) {
      out->count = count;
      out->data_len = data_len;
    }
    if (rc == ATR_ENOMEM)
      return rc;
  }
  if ((rc = atr__dict_lock(h, &o, &v)) != 0)
    return rc;
  rc = fn(&v, o, arg);
  atr__mutex_unlock(&o->lock);
done:
  if (rc != 0 && out != NULL) {
    out->count = count;
    out->data_len = data_len;
  }
  return rc;
}

struct dict_get_arg {
  const char *key;
  size_t klen;
  uint64_t hash;
  void *buf;
  size_t cap, *len;
  uint64_t *version;
};

static int dict_get_fn(const struct dict_view *v, struct atr__obj *o,
                       void *arg) {
  struct dict_get_arg *a = arg;
  const struct dict_ent *e = NULL;
  struct dict_ent x;
  uint64_t pos;
  (void)o;
  int rc = atr__dict_find(v, a->key, a->klen, a->hash, NULL, &pos, &e);
  if (rc == 1)
    return ATR_ENOKEY;
  if (rc < 0)
    return rc;
  if (atr__dict_ent_hdr(v, (uint64_t)((const uint8_t *)e - v->a), &x) == NULL)
    return ATR_ECORRUPT;
  if (a->len != NULL)
    *a->len = x.vlen;
  if (a->version != NULL)
    *a->version = x.version;
  if (x.vlen > a->cap)
    return ATR_ETOOBIG;
  if (x.vlen > 0)
    memcpy(a->buf, (const char *)(e + 1) + x.klen, x.vlen);
  return 0;
}

ATR__EXPORT int atr_dict_get(const atr_handle *h, const char *key, size_t klen,
                             void *buf, size_t cap, size_t *len,
                             uint64_t *version) {
  int rc;
  if (h == NULL || (buf == NULL && cap > 0))
    return ATR_EINVAL;
  if ((rc = atr_dict_key_check(key, klen)) != 0)
    return rc;
  struct dict_get_arg a = {key, klen,   atr__hash(key, klen), buf, cap,
                           len, version};
  return dict_read_run(h, dict_get_fn, &a, NULL);
}

struct dict_keys_arg {
  const struct iovec *keys;
  size_t n;
  atr_dict_items *out;
  uint64_t *version;
};

static int dict_keys_fn(const struct dict_view *v, struct atr__obj *o,
                        void *arg) {
  struct dict_keys_arg *a = arg;
  int rc = 0;
  for (size_t i = 0; i < a->n && rc == 0; i++) {
    const struct dict_ent *e = NULL;
    uint64_t pos;
    const char *k = a->keys[i].iov_base;
    size_t kl = a->keys[i].iov_len;
    rc = atr__dict_find(v, k, kl, atr__hash(k, kl), NULL, &pos, &e);
    if (rc == 1)
      rc = 0;
    else if (rc == 0)
      rc = atr__dict_items_add_ent(a->out, v, e);
  }
  if (a->version != NULL)
    *a->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  return rc;
}

ATR__EXPORT int atr_dict_read(const atr_handle *h, const struct iovec *keys,
                              size_t n, atr_dict_items *out,
                              uint64_t *version) {
  int rc;
  if (h == NULL || out == NULL || (keys == NULL && n > 0))
    return ATR_EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((rc = atr_dict_key_check(keys[i].iov_base, keys[i].iov_len)) != 0)
      return rc;
  struct dict_keys_arg a = {keys, n, out, version};
  return dict_read_run(h, dict_keys_fn, &a, out);
}

/* A page's candidate: its entry and the key length read once (the
 * comparisons read no length from the arena, which may change under a
 * lock-free reader). */
struct dict_cand {
  const char *key;
  uint16_t klen;
  const struct dict_ent *e;
};

static int dict_key_cmp(const struct dict_cand *a, const struct dict_cand *b) {
  size_t n = a->klen < b->klen ? a->klen : b->klen;
  int c = memcmp(a->key, b->key, n);
  if (c != 0)
    return c;
  return a->klen < b->klen ? -1 : a->klen > b->klen;
}

static int dict_cand_cmp(const void *x, const void *y) {
  return dict_key_cmp(x, y);
}

/* The largest-key-on-top heap of a page's candidates. */
static void heap_down(struct dict_cand *hp, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && dict_key_cmp(&hp[l], &hp[m]) > 0)
      m = l;
    if (r < n && dict_key_cmp(&hp[r], &hp[m]) > 0)
      m = r;
    if (m == i)
      return;
    struct dict_cand t = hp[i];
    hp[i] = hp[m];
    hp[m] = t;
    i = m;
  }
}

static void heap_up(struct dict_cand *hp, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (dict_key_cmp(&hp[i], &hp[p]) <= 0)
      return;
    struct dict_cand t = hp[i];
    hp[i] = hp[p];
    hp[p] = t;
    i = p;
  }
}

struct dict_page_arg {
  const char *after;
  size_t after_len, limit;
  atr_dict_items *out;
  int *more;
  uint64_t *version;
};

static int dict_page_fn(const struct dict_view *v, struct atr__obj *o,
                        void *arg) {
  struct dict_page_arg *a = arg;
  struct dict_cand *hp, c, after = {a->after, (uint16_t)a->after_len, NULL};
  size_t n = 0;
  /* Room for limit + 1 candidates (the one past the page says "more"),
   * or for every key. */
  size_t cap = a->limit == 0 || a->limit >= v->nb ? v->nb : a->limit + 1;
  const struct dict_ent *e;
  int rc;
  if ((hp = malloc(cap * sizeof *hp)) == NULL)
    return ATR_ENOMEM;
  for (uint64_t i = 0; (rc = atr__dict_next(v, &i, &e)) == 1;) {
    struct dict_ent x;
    if (atr__dict_ent_hdr(v, (uint64_t)((const uint8_t *)e - v->a), &x) ==
        NULL) {
      rc = ATR_ECORRUPT;
      break;
    }
    c = (struct dict_cand){dict_ent_key(e), x.klen, e};
    if (a->after != NULL && dict_key_cmp(&c, &after) <= 0)
      continue;
    if (n < cap) {
      hp[n] = c;
      heap_up(hp, n++);
    } else if (dict_key_cmp(&c, &hp[0]) < 0) {
      hp[0] = c;
      heap_down(hp, n, 0);
    }
  }
  if (rc == 0) {
    qsort(hp, n, sizeof *hp, dict_cand_cmp);
    size_t take = a->limit == 0 || n <= a->limit ? n : a->limit;
    if (a->more != NULL)
      *a->more = n > take;
    for (size_t i = 0; i < take && rc == 0; i++)
      rc = atr__dict_items_add_ent(a->out, v, hp[i].e);
    if (a->version != NULL)
      *a->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  }
  free(hp);
  return rc;
}

ATR__EXPORT int atr_dict_page(const atr_handle *h, const char *after,
                              size_t after_len, size_t limit,
                              atr_dict_items *out, int *more,
                              uint64_t *version) {
  if (h == NULL || out == NULL || (after == NULL && after_len > 0) ||
      after_len > ATR_DICT_KEY_MAX)
    return ATR_EINVAL;
  struct dict_page_arg a = {after, after_len, limit, out, more, version};
  return dict_read_run(h, dict_page_fn, &a, out);
}

static bool dict_alive(const atr_handle *h, struct atr__obj *o) {
  return atomic_load_explicit(&o->id, memory_order_acquire) == h->id &&
         !__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE);
}

ATR__EXPORT int atr_dict_len(const atr_handle *h, uint64_t *len,
                             uint64_t *version) {
  struct atr__obj *o = h != NULL ? atr__obj_of(h) : NULL;
  if (o == NULL || h->kind != ATR_DICT)
    return ATR_ENOENT;
  uint64_t n = __atomic_load_n(&o->u.d.len, __ATOMIC_ACQUIRE);
  uint64_t ver = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  if (!dict_alive(h, o))
    return ATR_ENOENT;
  if (len != NULL)
    *len = n;
  if (version != NULL)
    *version = ver;
  return 0;
}

/* Whether items already names key (a key changed twice since `since`
 * is listed once: its newest change, met first). */
static bool items_has(const atr_dict_items *it, size_t from, const char *key,
                      size_t klen) {
  for (size_t i = from; i < it->count; i++)
    if (it->item[i].key_len == klen &&
        memcmp(it->data + it->item[i].key_off, key, klen) == 0)
      return true;
  return false;
}

struct dict_changes_arg {
  uint64_t since;
  atr_dict_items *out;
  int *truncated;
  uint64_t *version;
};

static int dict_changes_fn(const struct dict_view *v, struct atr__obj *o,
                           void *arg) {
  struct dict_changes_arg *a = arg;
  atr_dict_items *out = a->out;
  size_t count = out->count;
  int rc = 0, trunc = 0;
  const uint8_t *ring = v->a + DICT_HDR;
  uint64_t head = __atomic_load_n(&o->u.d.ring_head, __ATOMIC_RELAXED);
  uint64_t p = head, prev = UINT64_MAX;
  uint64_t low = head > DICT_RING_TRUST ? head - DICT_RING_TRUST : 0;
  while (rc == 0) {
    uint64_t len;
    struct dict_ring_rec r;
    char key[ATR_DICT_KEY_MAX];
    if (p == 0)
      break; /* the dict's first change: nothing before it */
    if (p - low < 8) {
      trunc = 1;
      break;
    }
    atr__dict_ring_read(ring, p - 8, &len, 8);
    if (len % 8 != 0 || len < ring_rec_size(0) ||
        len > ring_rec_size(ATR_DICT_KEY_MAX) || len > p - low) {
      trunc = 1; /* past what the ring keeps */
      break;
    }
    atr__dict_ring_read(ring, p - len, &r, sizeof r);
    if (r.version <= a->since)
      break;
    if (r.version > prev || ring_rec_size(r.klen) != len) {
      trunc = 1; /* not a record: damage */
      break;
    }
    prev = r.version;
    p -= len;
    if (r.klen == 0) {
      trunc = 1; /* that commit changed more keys than it recorded */
      continue;
    }
    atr__dict_ring_read(ring, p + sizeof r, key, r.klen);
    if (!items_has(out, count, key, r.klen))
      rc = atr__dict_items_add(out, key, r.klen, "", 0, r.version, r.del);
  }
  if (a->version != NULL)
    *a->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  if (rc == 0 && a->truncated != NULL)
    *a->truncated = trunc;
  return rc;
}

ATR__EXPORT int atr_dict_changes(const atr_handle *h, uint64_t since,
                                 atr_dict_items *out, int *truncated,
                                 uint64_t *version) {
  if (h == NULL || out == NULL)
    return ATR_EINVAL;
  struct dict_changes_arg a = {since, out, truncated, version};
  return dict_read_run(h, dict_changes_fn, &a, out);
}
