/*
 * dict_read.c - a dict's reads: one key, some keys, a page in key order,
 * its length, and the keys its recent commits changed; and the items
 * they are copied into. Each takes the record lock (dict.h), so it sees
 * every commit whole or not at all.
 */
#include "dict.h"

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

int atr__dict_items_add_ent(atr_dict_items *out, const struct dict_ent *e) {
  return atr__dict_items_add(out, dict_ent_key(e), e->klen, dict_ent_val(e),
                             e->vlen, e->version, 0);
}

/* ----------------------------------------------------------------- reads */

ATR__EXPORT int atr_dict_get(const atr_handle *h, const char *key, size_t klen,
                             void *buf, size_t cap, size_t *len,
                             uint64_t *version) {
  struct atr__obj *o;
  struct dict_view v;
  const struct dict_ent *e = NULL;
  uint64_t pos;
  int rc;
  if (h == NULL || (buf == NULL && cap > 0))
    return ATR_EINVAL;
  if ((rc = atr_dict_key_check(key, klen)) != 0)
    return rc;
  uint64_t hash = atr__hash(key, klen);
  if ((rc = atr__dict_lock(h, &o, &v)) != 0)
    return rc;
  rc = atr__dict_find(&v, key, klen, hash, NULL, &pos, &e);
  if (rc == 1) {
    rc = ATR_ENOKEY;
  } else if (rc == 0) {
    if (len != NULL)
      *len = e->vlen;
    if (version != NULL)
      *version = e->version;
    if (e->vlen > cap)
      rc = ATR_ETOOBIG;
    else if (e->vlen > 0)
      memcpy(buf, dict_ent_val(e), e->vlen);
  }
  atr__mutex_unlock(&o->lock);
  return rc;
}

ATR__EXPORT int atr_dict_read(const atr_handle *h, const struct iovec *keys,
                              size_t n, atr_dict_items *out,
                              uint64_t *version) {
  struct atr__obj *o;
  struct dict_view v;
  size_t count, data_len;
  int rc;
  if (h == NULL || out == NULL || (keys == NULL && n > 0))
    return ATR_EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((rc = atr_dict_key_check(keys[i].iov_base, keys[i].iov_len)) != 0)
      return rc;
  count = out->count;
  data_len = out->data_len;
  if ((rc = atr__dict_lock(h, &o, &v)) != 0)
    return rc;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const struct dict_ent *e = NULL;
    uint64_t pos;
    const char *k = keys[i].iov_base;
    rc = atr__dict_find(&v, k, keys[i].iov_len, atr__hash(k, keys[i].iov_len),
                        NULL, &pos, &e);
    if (rc == 1)
      rc = 0;
    else if (rc == 0)
      rc = atr__dict_items_add_ent(out, e);
  }
  if (version != NULL)
    *version = o->version;
  atr__mutex_unlock(&o->lock);
  if (rc != 0) {
    out->count = count;
    out->data_len = data_len;
  }
  return rc;
}

static int dict_key_cmp(const struct dict_ent *a, const struct dict_ent *b) {
  size_t n = a->klen < b->klen ? a->klen : b->klen;
  int c = memcmp(dict_ent_key(a), dict_ent_key(b), n);
  if (c != 0)
    return c;
  return a->klen < b->klen ? -1 : a->klen > b->klen;
}

static int dict_ent_pcmp(const void *x, const void *y) {
  return dict_key_cmp(*(const struct dict_ent *const *)x,
                      *(const struct dict_ent *const *)y);
}

/* The largest-key-on-top heap of a page's candidates. */
static void heap_down(const struct dict_ent **hp, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && dict_key_cmp(hp[l], hp[m]) > 0)
      m = l;
    if (r < n && dict_key_cmp(hp[r], hp[m]) > 0)
      m = r;
    if (m == i)
      return;
    const struct dict_ent *t = hp[i];
    hp[i] = hp[m];
    hp[m] = t;
    i = m;
  }
}

static void heap_up(const struct dict_ent **hp, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (dict_key_cmp(hp[i], hp[p]) <= 0)
      return;
    const struct dict_ent *t = hp[i];
    hp[i] = hp[p];
    hp[p] = t;
    i = p;
  }
}

ATR__EXPORT int atr_dict_page(const atr_handle *h, const char *after,
                              size_t after_len, size_t limit,
                              atr_dict_items *out, int *more,
                              uint64_t *version) {
  struct atr__obj *o;
  struct dict_view v;
  const struct dict_ent **hp = NULL;
  size_t count, data_len, n = 0, cap;
  int rc;
  if (h == NULL || out == NULL || (after == NULL && after_len > 0) ||
      after_len > ATR_DICT_KEY_MAX)
    return ATR_EINVAL;
  /* A key made of after[0..after_len) and the entry header, for the
   * comparisons. */
  union {
    struct dict_ent e;
    char room[sizeof(struct dict_ent) + ATR_DICT_KEY_MAX];
  } a;
  memset(&a.e, 0, sizeof a.e);
  a.e.klen = (uint16_t)after_len;
  if (after_len > 0)
    memcpy(a.room + sizeof a.e, after, after_len);
  count = out->count;
  data_len = out->data_len;
  if ((rc = atr__dict_lock(h, &o, &v)) != 0)
    return rc;
  /* Room for limit + 1 candidates (the one past the page says "more"),
   * or for every key. */
  cap = limit == 0 || limit >= v.nb ? v.nb : limit + 1;
  if ((hp = malloc(cap * sizeof *hp)) == NULL) {
    rc = ATR_ENOMEM;
    goto out;
  }
  const struct dict_ent *e;
  for (uint64_t i = 0; (rc = atr__dict_next(&v, &i, &e)) == 1;) {
    if (after != NULL && dict_key_cmp(e, &a.e) <= 0)
      continue;
    if (n < cap) {
      hp[n] = e;
      heap_up(hp, n++);
    } else if (dict_key_cmp(e, hp[0]) < 0) {
      hp[0] = e;
      heap_down(hp, n, 0);
    }
  }
  if (rc < 0)
    goto out;
  rc = 0;
  qsort(hp, n, sizeof *hp, dict_ent_pcmp);
  size_t take = limit == 0 || n <= limit ? n : limit;
  if (more != NULL)
    *more = n > take;
  for (size_t i = 0; i < take && rc == 0; i++)
    rc = atr__dict_items_add_ent(out, hp[i]);
  if (version != NULL)
    *version = o->version;
out:
  atr__mutex_unlock(&o->lock);
  free(hp);
  if (rc != 0) {
    out->count = count;
    out->data_len = data_len;
  }
  return rc;
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

ATR__EXPORT int atr_dict_changes(const atr_handle *h, uint64_t since,
                                 atr_dict_items *out, int *truncated,
                                 uint64_t *version) {
  struct atr__obj *o;
  struct dict_view v;
  size_t count, data_len;
  int rc, trunc = 0;
  if (h == NULL || out == NULL)
    return ATR_EINVAL;
  count = out->count;
  data_len = out->data_len;
  if ((rc = atr__dict_lock(h, &o, &v)) != 0)
    return rc;
  const uint8_t *ring = v.a + DICT_HDR;
  uint64_t head = o->u.d.ring_head, p = head, prev = UINT64_MAX;
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
    if (r.version <= since)
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
  if (version != NULL)
    *version = o->version;
  atr__mutex_unlock(&o->lock);
  if (rc != 0) {
    out->count = count;
    out->data_len = data_len;
  } else if (truncated != NULL) {
    *truncated = trunc;
  }
  return rc;
}
