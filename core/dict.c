/*
 * dict.c - dicts: string keys to byte values, one hash table per dict in
 * one heap block (its arena), changed under the record lock. Its reads
 * are dict_read.c's; dict.h is what the two share.
 *
 * The arena (offsets from its start; all of it is read from the file and
 * checked before use, dict_view and dict_ent):
 *
 *   [header 64][key ring 4 KiB][buckets: nb x 8][entries ........ used)
 *
 * - A bucket is 0 (empty), DICT_TOMB (a deleted key: probes pass over
 *   it) or the offset of an entry. Open addressing, linear probing, at
 *   most 3/4 of the buckets in use (keys and tombs): O(1) by key.
 * - Entries are appended at `used` and never rewritten: a set writes a
 *   new entry and points the key's bucket at it; the old one becomes
 *   garbage. When the arena has no room (or too many tombs, or mostly
 *   garbage) the live entries are copied into a new arena sized for
 *   them (dict_resize, under the store lock as a queue's ring move), so
 *   deleting keys gives their space back to the store.
 * - The key ring keeps the keys of recent commits (for the events'
 *   readers, atr_dict_changes): records of {version, key length, delete
 *   bit, key, record length}, walked backwards from ring_head.
 *
 * A commit (atr__dict_commit below) is a redo log: every bucket store of
 * the change and the counters' new values are written aside in the arena
 * (past the entries, in space no committed state uses), log_valid is set
 * (the commit point), the stores are made, log_valid is cleared. A
 * process that dies before the commit point leaves nothing visible (its
 * entries lie past `used`); one that dies after it leaves a log that the
 * next holder of the record lock (dict_repair) makes again, whole.
 * Readers take no lock (dict_read.c): each commit and move bumps `seq`
 * before it clears its valid bit, and a reader that saw either bit set,
 * or seq move, while it read tries again (then takes the lock, which
 * repairs first).
 *
 * Versions: each commit takes the record's version + 1, and each key it
 * sets gets that version as its own, so a key's versions only grow,
 * across deletes and re-sets and (versions start above the store's
 * version_floor) across a delete and re-create of the dict.
 */
#include "dict.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int atr__dict_view(const atr_store *s, const struct atr__dict *d,
                   struct dict_view *v) {
  uint64_t off = d->arena_off, size = d->arena_size;
  if (off % 8 != 0 || !atr__heap_span_ok(s, off, size) ||
      size < DICT_BUCKETS_OFF + DICT_MIN_NB * 8)
    return ATR_ECORRUPT;
  const struct dict_arena *ar = (const void *)(s->base + off);
  uint64_t nb = ar->nb;
  if (memcmp(ar->magic, DICT_MAGIC, 8) != 0 || nb < DICT_MIN_NB ||
      ar->size != size || (nb & (nb - 1)) != 0 ||
      ar->buckets_off != DICT_BUCKETS_OFF ||
      nb > (size - DICT_BUCKETS_OFF) / 8 ||
      ar->entries_off != DICT_BUCKETS_OFF + nb * 8)
    return ATR_ECORRUPT;
  v->a = s->base + off;
  v->size = size;
  v->nb = nb;
  v->ents = ar->entries_off;
  v->used = d->used;
  v->bk = (_Atomic uint64_t *)(void *)(v->a + DICT_BUCKETS_OFF);
  if (v->used < v->ents || v->used > size || v->used % 8 != 0)
    return ATR_ECORRUPT;
  return 0;
}

/* The entry at off if it lies whole in the committed entries, with a
 * copy of its header read once (a lock-free reader's arena may change
 * under it: every length it then uses is the copy's, checked here), else
 * NULL (damage, or for such a reader a change to retry after). */
const struct dict_ent *atr__dict_ent_hdr(const struct dict_view *v,
                                         uint64_t off, struct dict_ent *x) {
  if (off % 8 != 0 || off < v->ents || off > v->used ||
      v->used - off < sizeof(struct dict_ent))
    return NULL;
  const struct dict_ent *e = (const void *)(v->a + off);
  uint64_t room = v->used - off - sizeof *e;
  x->version = __atomic_load_n(&e->version, __ATOMIC_RELAXED);
  x->hash = __atomic_load_n(&e->hash, __ATOMIC_RELAXED);
  x->vlen = __atomic_load_n(&e->vlen, __ATOMIC_RELAXED);
  x->klen = __atomic_load_n(&e->klen, __ATOMIC_RELAXED);
  if (x->klen == 0 || x->klen > ATR_DICT_KEY_MAX || x->klen > room ||
      x->vlen > room - x->klen)
    return NULL;
  return e;
}

const struct dict_ent *atr__dict_ent(const struct dict_view *v, uint64_t off) {
  struct dict_ent x;
  return atr__dict_ent_hdr(v, off, &x);
}

/* The entry of the next key from bucket *i on (*i moves past it): 1 with
 * *e, 0 past the last bucket, ATR_ECORRUPT on a damaged entry. */
int atr__dict_next(const struct dict_view *v, uint64_t *i,
                   const struct dict_ent **e) {
  for (; *i < v->nb; (*i)++) {
    uint64_t b = atomic_load_explicit(&v->bk[*i], memory_order_relaxed);
    if (b == 0 || b == DICT_TOMB)
      continue;
    (*i)++;
    return (*e = atr__dict_ent(v, b)) != NULL ? 1 : ATR_ECORRUPT;
  }
  return 0;
}

ATR__EXPORT int atr_dict_key_check(const char *key, size_t len) {
  const unsigned char *p = (const unsigned char *)key;
  if (key == NULL || len == 0 || len > ATR_DICT_KEY_MAX)
    return ATR_EKEY;
  for (size_t i = 0; i < len;) {
    unsigned c = p[i];
    size_t n;
    uint32_t cp;
    if (c == 0)
      return ATR_EKEY;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf)
      n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
      n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
      n = 3, cp = c & 0x07;
    else
      return ATR_EKEY;
    if (len - i - 1 < n)
      return ATR_EKEY;
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return ATR_EKEY;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    /* Overlong forms, surrogates and past U+10FFFF are not UTF-8. */
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return ATR_EKEY;
    i += n + 1;
  }
  return 0;
}

/* -------------------------------------------------------------- lookup */

static inline bool dict_taken(const uint8_t *taken, uint64_t i) {
  return taken != NULL && (taken[i / 8] >> (i % 8)) & 1;
}

/*
 * Finds key in the table: 0 with *pos its bucket and *e its entry, or 1
 * (absent) with *pos where it would go: the first tomb or empty bucket
 * of its probe that no earlier op of the same commit took (`taken`, may
 * be NULL). ATR_ECORRUPT on a damaged entry or a table with no room.
 */
int atr__dict_find(const struct dict_view *v, const char *key, size_t klen,
                   uint64_t hash, const uint8_t *taken, uint64_t *pos,
                   const struct dict_ent **e) {
  uint64_t mask = v->nb - 1, i = hash & mask, free_at = UINT64_MAX;
  bool absent = false;
  for (uint64_t n = 0; n < v->nb; n++, i = (i + 1) & mask) {
    uint64_t b = atomic_load_explicit(&v->bk[i], memory_order_relaxed);
    if (b == 0 || b == DICT_TOMB) {
      if (free_at == UINT64_MAX && !dict_taken(taken, i))
        free_at = i;
      if (b == 0)
        absent = true; /* the probe of key ends here */
      if (absent && free_at != UINT64_MAX) {
        *pos = free_at;
        return 1;
      }
      continue;
    }
    if (absent)
      continue; /* looking for a free bucket only */
    struct dict_ent hx;
    const struct dict_ent *x = atr__dict_ent_hdr(v, b, &hx);
    if (x == NULL)
      return ATR_ECORRUPT;
    if (hx.hash == hash && hx.klen == klen &&
        memcmp(dict_ent_key(x), key, klen) == 0) {
      *pos = i;
      *e = x;
      return 0;
    }
  }
  if (free_at != UINT64_MAX) {
    *pos = free_at;
    return 1;
  }
  return ATR_ECORRUPT;
}

/* ---------------------------------------------------------------- ring */

static void ring_write(uint8_t *ring, uint64_t at, const void *src, size_t n) {
  const uint8_t *p = src;
  for (size_t k = 0; k < n;) {
    uint64_t o = (at + k) % DICT_RING;
    size_t run = DICT_RING - o < n - k ? DICT_RING - o : n - k;
    memcpy(ring + o, p + k, run);
    k += run;
  }
}

void atr__dict_ring_read(const uint8_t *ring, uint64_t at, void *dst,
                         size_t n) {
  uint8_t *p = dst;
  for (size_t k = 0; k < n;) {
    uint64_t o = (at + k) % DICT_RING;
    size_t run = DICT_RING - o < n - k ? DICT_RING - o : n - k;
    memcpy(p + k, ring + o, run);
    k += run;
  }
}

/* Appends one record at *head (moved past it). */
static void ring_put(uint8_t *ring, uint64_t *head, uint64_t version,
                     const char *key, size_t klen, int del) {
  struct dict_ring_rec r = {
      .version = version, .klen = (uint16_t)klen, .del = (uint8_t)del};
  uint64_t len = ring_rec_size(klen);
  static const char zeros[8];
  ring_write(ring, *head, &r, sizeof r);
  ring_write(ring, *head + sizeof r, key, klen);
  ring_write(ring, *head + sizeof r + klen, zeros, dict_r8(klen) - klen);
  ring_write(ring, *head + len - 8, &len, 8);
  *head += len;
}

/* ---------------------------------------------------------------- open */

/* Writes a fresh arena of nb buckets at a (got bytes): header, zeroed
 * buckets. The ring is the caller's. */
static void dict_arena_init(uint8_t *a, uint64_t nb, uint64_t size) {
  struct dict_arena *ar = (void *)a;
  memcpy(ar->magic, DICT_MAGIC, 8);
  ar->size = size;
  ar->nb = nb;
  ar->buckets_off = DICT_BUCKETS_OFF;
  ar->entries_off = DICT_BUCKETS_OFF + nb * 8;
  memset(a + DICT_BUCKETS_OFF, 0, nb * 8);
}

static int dict_init(atr_store *s, struct atr__obj *o, void *arg) {
  struct atr__dict *d = &o->u.d;
  uint64_t got, want = DICT_BUCKETS_OFF + DICT_MIN_NB * 8 + 1024;
  (void)arg;
  memset(d, 0, sizeof *d);
  uint64_t off = atr__heap_alloc(s, want, &got);
  if (off == 0)
    return ATR_ENOSPC;
  dict_arena_init(s->base + off, DICT_MIN_NB, got);
  memset(s->base + off + DICT_HDR, 0, DICT_RING);
  d->arena_off = off;
  d->arena_size = got;
  d->used = DICT_BUCKETS_OFF + DICT_MIN_NB * 8;
  return 0;
}

ATR__EXPORT int atr_dict_open(atr_store *s, const char *name, int flags,
                              atr_handle *h) {
  return atr__open(s, name, ATR_DICT, 0, flags, NULL, dict_init, NULL, h);
}

/* The record lock of a live dict and a view of its arena. */
int atr__dict_lock(const atr_handle *h, struct atr__obj **o,
                   struct dict_view *v) {
  int rc;
  if ((rc = atr__handle_lock(h, ATR_DICT, o)) != 0)
    return rc;
  if ((rc = atr__dict_view(h->store, &(*o)->u.d, v)) != 0)
    atr__mutex_unlock(&(*o)->lock);
  return rc;
}

/* ---------------------------------------------------------------- commit */

/* Finishes a committed move to a new arena (under the record lock, or in
 * its repair). */
static void dict_finish_move(struct atr__dict *d) {
  if (atomic_load(&d->mv.valid) == 0)
    return;
  /* A lock-free reader that reads any store below saw mv.valid = 1 or,
   * through the fence, the seq bump before its clearing. */
  atomic_thread_fence(memory_order_release);
  d->arena_size = d->mv.size;
  __atomic_store_n(&d->arena_off, d->mv.off, __ATOMIC_RELEASE);
  d->used = d->mv.used;
  d->tombs = 0;
  d->garbage = 0;
  atomic_fetch_add_explicit(&d->seq, 1, memory_order_relaxed);
  atomic_store_explicit(&d->mv.valid, 0, memory_order_release);
}

/* The log at d->log_off, if it lies whole in the arena. */
static struct dict_log *dict_log_of(const struct dict_view *v,
                                    const struct atr__dict *d) {
  uint64_t off = d->log_off;
  if (off % 8 != 0 || off < v->ents || off > v->size ||
      v->size - off < sizeof(struct dict_log))
    return NULL;
  struct dict_log *l = (void *)(v->a + off);
  if (l->n > (v->size - off - sizeof *l) / sizeof(struct dict_store))
    return NULL;
  return l;
}

/*
 * The commit of the log at d->log_off: stores in this order, each a
 * plain store with release order: log_valid = 1 (the commit point); each
 * bucket store of the log; the counters (len, tombs, used, garbage,
 * ring_head, and the record's version); log_valid = 0. `stores` cuts it
 * short (test_dict dies after each prefix); repair makes it again from
 * the second store, which is harmless to repeat.
 */
static void dict_commit(struct atr__obj *o, const struct dict_view *v,
                        struct dict_log *l, int stores, bool redo) {
  struct atr__dict *d = &o->u.d;
  const struct dict_store *st = (const void *)(l + 1);
  int k = 0;
  if (!redo) {
    if (k++ >= stores)
      return;
    atomic_store_explicit(&d->log_valid, 1, memory_order_release);
    /* Orders log_valid = 1 before every store below, for the lock-free
     * readers (their acquire fence pairs with it). */
    atomic_thread_fence(memory_order_release);
  }
  for (uint64_t i = 0; i < l->n; i++) {
    if (!redo && k++ >= stores)
      return;
    if (st[i].pos < v->nb)
      atomic_store_explicit(&v->bk[st[i].pos], st[i].val, memory_order_release);
  }
  if (!redo && k++ >= stores)
    return;
  d->len = l->len;
  d->tombs = l->tombs;
  d->used = l->used;
  d->garbage = l->garbage;
  d->ring_head = l->ring_head;
  __atomic_store_n(&o->version, l->version, __ATOMIC_RELEASE);
  /* Not a store of the sequence: the bump readers validate against,
   * published by the release of log_valid = 0 (a death before it leaves
   * log_valid set, which no reader gets past). */
  atomic_fetch_add_explicit(&d->seq, 1, memory_order_relaxed);
  if (!redo && k++ >= stores)
    return;
  atomic_store_explicit(&d->log_valid, 0, memory_order_release);
}

/* After a holder of the record lock died: a committed log is made
 * again, a committed move finished; anything else it wrote lies where
 * no committed state looks. */
static void dict_repair(atr_store *s, struct atr__obj *o) {
  struct atr__dict *d = &o->u.d;
  struct dict_view v;
  if (atomic_load(&d->log_valid) != 0) {
    struct dict_log *l;
    /* The log's bucket stores name entries up to its `used`. */
    if (atr__dict_view(s, d, &v) == 0 && (l = dict_log_of(&v, d)) != NULL &&
        l->used >= v.ents && l->used <= v.size && l->used <= d->log_off) {
      dict_commit(o, &v, l, INT_MAX, true);
    }
    atomic_fetch_add(&d->seq, 1);
    atomic_store(&d->log_valid, 0);
  }
  dict_finish_move(d);
}

/* --------------------------------------------------------------- resize */

static bool dict_needs_shrink(const struct dict_view *v,
                              const struct atr__dict *d) {
  /* An emptied dict goes back to the size it was made with. */
  if (d->len == 0 && d->arena_size > DICT_SHRINK_MIN / 8)
    return true;
  if (d->arena_size <= DICT_SHRINK_MIN)
    return false;
  return d->garbage > (d->used - v->ents) / 2 ||
         (v->nb > 64 && d->len * 8 < v->nb);
}

/*
 * Moves the dict to a new arena with room for need_bytes more of
 * entries and log and need_keys more keys, dropping garbage and tombs
 * (it may be smaller than the old one). Takes the store lock, then the
 * record's. 0 (also if the dict went meanwhile: the caller's next lock
 * says so), ATR_ENOSPC, ATR_ECORRUPT.
 */
static int dict_resize(const atr_handle *h, uint64_t need_bytes,
                       uint64_t need_keys, int stores) {
  atr_store *s = h->store;
  struct atr__obj *o;
  struct dict_view v;
  int rc;
  if ((rc = atr__store_lock(s)) != 0)
    return rc;
  if ((rc = atr__dict_lock(h, &o, &v)) != 0) {
    atr__store_unlock(s);
    return rc == ATR_ENOENT ? 0 : rc;
  }
  struct atr__dict *d = &o->u.d;
  const struct dict_ent *e;
  uint64_t live = 0, keys = 0;
  for (uint64_t i = 0; (rc = atr__dict_next(&v, &i, &e)) == 1; keys++)
    live += dict_ent_size(e->klen, e->vlen);
  if (rc < 0)
    goto out;
  rc = 0;
  uint64_t nb = DICT_MIN_NB;
  while (nb < 2 * (keys + need_keys))
    nb *= 2;
  uint64_t least = DICT_BUCKETS_OFF + nb * 8 + live + need_bytes;
  uint64_t want = least + (live + need_bytes) / 2 + 1024;
  uint64_t got, off = atr__heap_alloc(s, want, &got);
  if (off == 0 && (off = atr__heap_alloc(s, least, &got)) == 0) {
    rc = ATR_ENOSPC;
    goto out;
  }
  uint64_t cur = d->arena_off;
  if (off < cur + v.size && cur < off + got) {
    /* A block over the live arena: the heap's free list is damaged (the
     * file is input). Nothing is written, and the block stays taken (so
     * nothing else is put over the arena) until a recovery rebuilds the
     * heap from the records. */
    rc = ATR_ECORRUPT;
    goto out;
  }
  uint8_t *a = s->base + off;
  dict_arena_init(a, nb, got);
  memcpy(a + DICT_HDR, v.a + DICT_HDR, DICT_RING);
  _Atomic uint64_t *bk = (_Atomic uint64_t *)(void *)(a + DICT_BUCKETS_OFF);
  uint64_t at = DICT_BUCKETS_OFF + nb * 8, mask = nb - 1;
  for (uint64_t i = 0; atr__dict_next(&v, &i, &e) == 1;) {
    uint64_t size = dict_ent_size(e->klen, e->vlen), j = e->hash & mask;
    memcpy(a + at, e, size);
    while (atomic_load_explicit(&bk[j], memory_order_relaxed) != 0)
      j = (j + 1) & mask;
    atomic_store_explicit(&bk[j], at, memory_order_relaxed);
    at += size;
  }
  /* Written aside; one store commits it (a death after it: the repair
   * finishes it; before it: the heap rebuild takes the block back). The
   * steps after the writes aside: the commit, the move made, the old
   * block freed; `stores` cuts them short (test_dict), returning with
   * both locks held. */
  uint64_t old = d->arena_off;
  d->mv.off = off;
  d->mv.size = got;
  d->mv.used = at;
  if (stores < 1)
    return 0;
  atomic_store(&d->mv.valid, 1);
  if (stores < 2)
    return 0;
  dict_finish_move(d);
  if (stores < 3)
    return 0;
  atr__heap_free(s, old);
  d->len = keys;
out:
  atr__mutex_unlock(&o->lock);
  atr__store_unlock(s);
  return rc;
}

/* ---------------------------------------------------------------- update */

static int dict_op_cmp(const void *x, const void *y) {
  const atr_dict_op *a = *(const atr_dict_op *const *)x;
  const atr_dict_op *b = *(const atr_dict_op *const *)y;
  if (a->key_len != b->key_len)
    return a->key_len < b->key_len ? -1 : 1;
  return memcmp(a->key, b->key, a->key_len);
}

/* ATR_EINVAL if two ops name one key. */
static int dict_dups(const atr_dict_op *ops, size_t n) {
  if (n < 2)
    return 0;
  const atr_dict_op **p = malloc(n * sizeof *p);
  int rc = 0;
  if (p == NULL)
    return ATR_ENOMEM;
  for (size_t i = 0; i < n; i++)
    p[i] = &ops[i];
  qsort(p, n, sizeof *p, dict_op_cmp);
  for (size_t i = 1; i < n && rc == 0; i++)
    if (dict_op_cmp(&p[i - 1], &p[i]) == 0)
      rc = ATR_EINVAL;
  free(p);
  return rc;
}

/* What one update asks of the arena. */
struct dict_need {
  uint64_t set_bytes; /* entries of the sets      */
  uint64_t bytes;     /* those plus the log      */
  uint64_t keys;      /* keys it may add (sets)  */
};

static int dict_check_ops(const atr_dict_op *ops, size_t n,
                          struct dict_need *need) {
  int rc;
  memset(need, 0, sizeof *need);
  for (size_t i = 0; i < n; i++) {
    if ((rc = atr_dict_key_check(ops[i].key, ops[i].key_len)) != 0)
      return rc;
    if (ops[i].del)
      continue;
    if (ops[i].value_len > ATR_DICT_VALUE_MAX)
      return ATR_ETOOBIG;
    if (ops[i].value == NULL && ops[i].value_len > 0)
      return ATR_EINVAL;
    need->set_bytes += dict_ent_size(ops[i].key_len, ops[i].value_len);
    need->keys++;
  }
  need->bytes =
      need->set_bytes + sizeof(struct dict_log) + n * sizeof(struct dict_store);
  return dict_dups(ops, n);
}

static bool dict_has_room(const struct dict_view *v, const struct atr__dict *d,
                          const struct dict_need *need) {
  return need->bytes <= v->size - v->used &&
         (d->len + d->tombs + need->keys) * 4 <= v->nb * 3;
}

/*
 * The body of every change: under the record lock, each op is checked
 * and written aside (entries past `used`, the ring past its head, the
 * log past the entries), then committed with `stores` stores. *created
 * counts keys added, *old (may be NULL) gets the deleted values;
 * *changed: whether anything was committed. For pop, a delete of an
 * absent key is ATR_ENOKEY.
 */
struct dict_result {
  uint64_t version;
  int created;
  bool set, deleted; /* which ops the commit made */
  bool shrink;
};

static int dict_update(const atr_handle *h, const atr_dict_op *ops, size_t n,
                       int stores, bool pop, atr_dict_items *old,
                       struct dict_result *res) {
  struct atr__obj *o;
  struct dict_view v;
  struct dict_need need;
  uint8_t *taken = NULL;
  unsigned char one_chg, *chg = &one_chg;
  size_t old_count = old ? old->count : 0, old_len = old ? old->data_len : 0;
  int rc;

  memset(res, 0, sizeof *res);
  if (h == NULL || (ops == NULL && n > 0))
    return ATR_EINVAL;
  if ((rc = dict_check_ops(ops, n, &need)) != 0)
    return rc;
  if (n > 1 && (chg = calloc(n, 1)) == NULL)
    return ATR_ENOMEM;
  for (int tries = 0;; tries++) {
    if ((rc = atr__dict_lock(h, &o, &v)) != 0)
      goto out_free;
    if (dict_has_room(&v, &o->u.d, &need))
      break;
    atr__mutex_unlock(&o->lock);
    /* A resize that found room makes room for this change, but other
     * writers may fill it before this one locks again (each takes what
     * it needs first): try again while resizes succeed, which is
     * progress for them. A store without room answers ATR_ENOSPC from
     * the resize; the bound is only against a loop nothing ends. */
    if (tries == 64) {
      rc = ATR_ENOSPC;
      goto out_free;
    }
    if ((rc = dict_resize(h, need.bytes, need.keys, INT_MAX)) != 0)
      goto out_free;
  }
  struct atr__dict *d = &o->u.d;
  if (n > 1 && (taken = calloc(v.nb / 8 + 1, 1)) == NULL) {
    rc = ATR_ENOMEM;
    goto out;
  }
  uint64_t version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE) + 1;
  uint64_t at = v.used, log_off = v.used + need.set_bytes;
  struct dict_log *l = (void *)(v.a + log_off);
  struct dict_store *st = (void *)(l + 1);
  struct dict_log next = {0,          d->len,       d->tombs, 0,
                          d->garbage, d->ring_head, version};
  for (size_t i = 0; i < n; i++) {
    const atr_dict_op *op = &ops[i];
    const struct dict_ent *e = NULL;
    uint64_t pos, hash = atr__hash(op->key, op->key_len);
    int found = atr__dict_find(&v, op->key, op->key_len, hash, taken, &pos, &e);
    if (found < 0) {
      rc = found;
      goto out;
    }
    found = found == 0;
    chg[i] = 0;
    if (op->del && !found) {
      if (pop) {
        rc = ATR_ENOKEY;
        goto out;
      }
      if (op->expect != 0 && op->expect != ATR_DICT_ABSENT) {
        rc = ATR_EVERSION;
        goto out;
      }
      continue;
    }
    if (op->expect == ATR_DICT_ABSENT && found) {
      rc = ATR_EEXIST;
      goto out;
    }
    if (op->expect != 0 && op->expect != ATR_DICT_ABSENT &&
        (!found || e->version != op->expect)) {
      rc = ATR_EVERSION;
      goto out;
    }
    chg[i] = 1;
    if (found)
      next.garbage += dict_ent_size(e->klen, e->vlen);
    if (op->del) {
      if (old != NULL && (rc = atr__dict_items_add_ent(old, &v, e)) != 0)
        goto out;
      st[next.n++] = (struct dict_store){pos, DICT_TOMB};
      next.len--;
      next.tombs++;
      res->deleted = true;
      continue;
    }
    struct dict_ent *w = (void *)(v.a + at);
    w->version = version;
    w->hash = hash;
    w->vlen = (uint32_t)op->value_len;
    w->klen = (uint16_t)op->key_len;
    w->pad = 0;
    memcpy(w + 1, op->key, op->key_len);
    if (op->value_len > 0)
      memcpy((char *)(w + 1) + op->key_len, op->value, op->value_len);
    st[next.n++] = (struct dict_store){pos, at};
    at += dict_ent_size(op->key_len, op->value_len);
    if (!found) {
      if (atomic_load_explicit(&v.bk[pos], memory_order_relaxed) == DICT_TOMB)
        next.tombs--;
      next.len++;
      res->created++;
      if (taken != NULL)
        taken[pos / 8] |= (uint8_t)(1u << (pos % 8));
    }
    res->set = true;
  }
  if (next.n == 0) { /* only deletes of absent keys */
    res->version = version - 1;
    goto out;
  }
  /* The keys, into the ring past its head (a marker past the budget). */
  uint8_t *ring = v.a + DICT_HDR;
  uint64_t head = d->ring_head, start = head;
  for (size_t i = 0; i < n; i++) {
    if (!chg[i])
      continue;
    if (head - start + ring_rec_size(ops[i].key_len) + ring_rec_size(0) >
        DICT_RING_BUDGET) {
      ring_put(ring, &head, version, "", 0, 0);
      break;
    }
    ring_put(ring, &head, version, ops[i].key, ops[i].key_len, ops[i].del);
  }
  next.ring_head = head;
  next.used = at;
  *l = next;
  d->log_off = log_off;
  res->version = version;
  dict_commit(o, &v, l, stores, false);
  if (stores < ATR__DICT_STORES(next.n))
    goto cut; /* test_dict: the caller dies holding the lock */
  res->shrink = dict_needs_shrink(&v, d);
out:
  atr__mutex_unlock(&o->lock);
out_free:
  if (rc != 0 && old != NULL) {
    old->count = old_count;
    old->data_len = old_len;
  }
  if (chg != &one_chg)
    free(chg);
  free(taken);
  return rc;
cut:
  if (chg != &one_chg)
    free(chg);
  free(taken);
  return 0;
}

/* Publishes what a commit made, and shrinks a dict that is mostly
 * garbage (best effort: it stays usable either way). */
static void dict_after(const atr_handle *h, const struct dict_result *res) {
  struct atr__obj *o = atr__obj_of(h);
  if (o == NULL)
    return;
  if (res->set)
    atr__feed_push(h->store, o, h->slot, ATR_OP_SET, &o->pend);
  if (res->deleted)
    atr__feed_push(h->store, o, h->slot, ATR_OP_DELETE, &o->u.d.pend_del);
  if (res->shrink)
    (void)dict_resize(h, 0, 0, INT_MAX);
}

int atr__dict_resize_cut(const atr_handle *h, int stores) {
  return dict_resize(h, 0, 0, stores);
}

int atr__dict_update_cut(const atr_handle *h, const atr_dict_op *ops, size_t n,
                         uint64_t *version, int stores) {
  struct dict_result res;
  int rc = dict_update(h, ops, n, stores, false, NULL, &res);
  if (rc != 0)
    return rc;
  if (version != NULL)
    *version = res.version;
  if (stores == INT_MAX)
    dict_after(h, &res);
  return 0;
}

ATR__EXPORT int atr_dict_update(const atr_handle *h, const atr_dict_op *ops,
                                size_t n, uint64_t *version) {
  return atr__dict_update_cut(h, ops, n, version, INT_MAX);
}

ATR__EXPORT int atr_dict_set(const atr_handle *h, const char *key, size_t klen,
                             const void *value, size_t vlen, uint64_t expect,
                             uint64_t *version) {
  atr_dict_op op = {key, klen, value, vlen, 0, expect};
  struct dict_result res;
  int rc = dict_update(h, &op, 1, INT_MAX, false, NULL, &res);
  if (rc != 0)
    return rc;
  if (version != NULL)
    *version = res.version;
  dict_after(h, &res);
  return res.created ? ATR_CREATED : 0;
}

ATR__EXPORT int atr_dict_pop(const atr_handle *h, const char *key, size_t klen,
                             uint64_t expect, atr_dict_items *old) {
  atr_dict_op op = {key, klen, NULL, 0, 1, expect};
  struct dict_result res;
  int rc = dict_update(h, &op, 1, INT_MAX, true, old, &res);
  if (rc == 0)
    dict_after(h, &res);
  return rc;
}

/* ------------------------------------------------------------------ ops */

static int dict_kill(atr_store *s, struct atr__obj *o, uint64_t *last) {
  int rc;
  if ((rc = atr__record_lock(s, o)) != 0)
    return rc;
  __atomic_store_n(&o->dead, 1, __ATOMIC_SEQ_CST);
  *last = __atomic_load_n(&o->version, __ATOMIC_SEQ_CST);
  atr__mutex_unlock(&o->lock);
  return 0;
}

/* Lock-free, as every describe: the counters as a moment's view. The
 * arena's size is read from its header, so that one field (arena_off,
 * changed by a move) names both; a move meanwhile is read again. */
static int dict_info(atr_store *s, struct atr__obj *o, atr_info *info) {
  struct atr__dict *d = &o->u.d;
  uint64_t off, size = 0;
  bool ok = false;
  if (__atomic_load_n(&o->dead, __ATOMIC_ACQUIRE))
    return ATR_ENOENT;
  for (int tries = 0; tries < 4 && !ok; tries++) {
    off = __atomic_load_n(&d->arena_off, __ATOMIC_ACQUIRE);
    if (off % 8 != 0 || !atr__heap_span_ok(s, off, DICT_HDR))
      continue;
    size =
        __atomic_load_n(&((struct dict_arena *)(void *)(s->base + off))->size,
                        __ATOMIC_RELAXED);
    ok = size >= DICT_BUCKETS_OFF + DICT_MIN_NB * 8 &&
         atr__heap_span_ok(s, off, size) &&
         __atomic_load_n(&d->arena_off, __ATOMIC_ACQUIRE) == off;
  }
  if (!ok)
    return ATR_ECORRUPT;
  info->version = __atomic_load_n(&o->version, __ATOMIC_ACQUIRE);
  info->size = __atomic_load_n(&d->len, __ATOMIC_RELAXED);
  info->bytes = size;
  info->expires_in = -1;
  return 0;
}

/* The arena; a committed move owns the new one (the old one is free). */
static uint64_t dict_data(const struct atr__obj *o, uint64_t *size) {
  const struct atr__dict *d = &o->u.d;
  bool moved = atomic_load(&d->mv.valid) != 0;
  *size = moved ? d->mv.size : d->arena_size;
  return moved ? d->mv.off : d->arena_off;
}

static uint64_t dict_last_version(const struct atr__obj *o) {
  return o->version;
}

static _Atomic uint64_t *dict_mark(struct atr__obj *o, atr_op op) {
  return op == ATR_OP_DELETE ? &o->u.d.pend_del : &o->pend;
}

const struct atr__kind_ops atr__dict_ops = {
    .name = "dict",
    .kill = dict_kill,
    .repair = dict_repair,
    .info = dict_info,
    .data = dict_data,
    .last_version = dict_last_version,
    .mark = dict_mark,
};
