/*
 * order.c - the name order: every live record in bytewise name order,
 * a skip list of one node per record (atr__onode, beside the records),
 * for atr_list_page.
 *
 * Changed only under the store lock, with the name index, so a page
 * read under the lock sees every create and delete whole. It is derived
 * state: a process that dies holding the store lock may leave it half
 * linked, and the lock's recovery makes it again from the records
 * (atr__order_rebuild), as the heap's free list is made again. A node's
 * level comes from its name's hash (a quarter of nodes at each level
 * up), so a rebuild gives the same list.
 *
 * Links are read from the file: every step checks that a link names a
 * record and that names grow, and a walk is bounded by the records'
 * count; what fails is damage (a rebuild for writers, a scan for pages).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define HEAD 0u /* a position: 0 is the head, slot + 1 a record */

static unsigned ord_level(uint64_t hash) {
  unsigned level = 1;
  for (uint64_t x = hash >> 40; level < ATR__ORDER_LEVELS && (x & 3) == 0;
       x >>= 2)
    level++;
  return level;
}

/* The link at level lv out of position pos. */
static uint32_t *ord_link(atr_store *s, uint32_t pos, unsigned lv) {
  return pos == HEAD ? &s->hdr->order_head[lv]
                     : &atr__onode(s, pos - 1)->next[lv];
}

/* A name being looked for: itself, and its first 16 bytes zero-padded
 * as two big-endian words, so that a step compares two integers. */
struct ord_key {
  const char *name;
  size_t len;
  uint64_t hi, lo;
};

static uint64_t ord_word(const char *bytes) {
  uint64_t w;
  memcpy(&w, bytes, sizeof w);
  return __builtin_bswap64(w);
}

static void ord_key_init(struct ord_key *k, const char *name, size_t len) {
  char padded[16] = {0};
  memcpy(padded, name, len < sizeof padded ? len : sizeof padded);
  k->name = name;
  k->len = len;
  k->hi = ord_word(padded);
  k->lo = ord_word(padded + 8);
}

/* Bytewise order of record slot's name against k's; the node's key
 * decides most steps without reading the record: names are free of NUL
 * bytes, so two names of at most 16 bytes whose zero-padded keys are
 * equal are the same name. */
static int ord_cmp(atr_store *s, uint32_t slot, const struct ord_key *k) {
  struct atr__onode *n = atr__onode(s, slot);
  uint64_t hi = ord_word(n->key), lo = ord_word(n->key + 8);
  if (hi != k->hi)
    return hi < k->hi ? -1 : 1;
  if (lo != k->lo)
    return lo < k->lo ? -1 : 1;
  if (n->len <= sizeof n->key && k->len <= sizeof n->key)
    return n->len < k->len ? -1 : n->len > k->len;
  struct atr__obj *o = atr__slot(s, slot);
  size_t olen = o->name_len > ATR_NAME_MAX ? ATR_NAME_MAX : o->name_len;
  int c = memcmp(o->name, k->name, olen < k->len ? olen : k->len);
  return c != 0 ? c : olen < k->len ? -1 : olen > k->len;
}

/* Fills slot's node from its record: key, length, level. */
static void ord_node_fill(atr_store *s, uint32_t slot) {
  struct atr__obj *o = atr__slot(s, slot);
  struct atr__onode *n = atr__onode(s, slot);
  size_t len = o->name_len > ATR_NAME_MAX ? ATR_NAME_MAX : o->name_len;
  memset(n, 0, sizeof *n);
  memcpy(n->key, o->name, len < sizeof n->key ? len : sizeof n->key);
  n->len = (uint8_t)len;
  n->level = (uint8_t)ord_level(o->hash);
}

/* Fills preds[lv] with the last position at each level whose name is
 * below name[0..len). false on damage (a link out of range, or more
 * steps than records). */
static bool ord_find(atr_store *s, const char *name, size_t len,
                     uint32_t preds[ATR__ORDER_LEVELS]) {
  uint32_t pos = HEAD, max = s->hdr->max_objects;
  uint64_t steps = 0;
  struct ord_key k;
  ord_key_init(&k, name, len);
  for (unsigned lv = ATR__ORDER_LEVELS; lv-- > 0;) {
    for (;;) {
      uint32_t next = *ord_link(s, pos, lv);
      if (next == 0)
        break;
      if (next > max || ++steps > (uint64_t)max * ATR__ORDER_LEVELS)
        return false;
      if (ord_cmp(s, next - 1, &k) >= 0)
        break;
      pos = next;
    }
    preds[lv] = pos;
  }
  return true;
}

void atr__order_insert(atr_store *s, uint32_t slot) {
  struct atr__obj *o = atr__slot(s, slot);
  struct atr__onode *n = atr__onode(s, slot);
  uint32_t preds[ATR__ORDER_LEVELS];
  size_t len = o->name_len > ATR_NAME_MAX ? ATR_NAME_MAX : o->name_len;

  ord_node_fill(s, slot);
  if (!ord_find(s, o->name, len, preds)) {
    atr__order_rebuild(s); /* takes this record in, being live */
    return;
  }
  for (unsigned lv = 0; lv < n->level; lv++) {
    uint32_t *link = ord_link(s, preds[lv], lv);
    n->next[lv] = *link;
    *link = slot + 1;
  }
}

bool atr__order_remove(atr_store *s, uint32_t slot) {
  struct atr__obj *o = atr__slot(s, slot);
  struct atr__onode *n = atr__onode(s, slot);
  uint32_t preds[ATR__ORDER_LEVELS];
  size_t len = o->name_len > ATR_NAME_MAX ? ATR_NAME_MAX : o->name_len;

  if (!ord_find(s, o->name, len, preds) ||
      *ord_link(s, preds[0], 0) != slot + 1)
    return false;
  for (unsigned lv = 0; lv < ATR__ORDER_LEVELS && lv < n->level; lv++) {
    uint32_t *link = ord_link(s, preds[lv], lv);
    if (*link == slot + 1)
      *link = n->next[lv];
  }
  return true;
}

static atr_store *ord_sort_store; /* qsort has no argument; under the
                                     store lock, and the rebuild is rare */

static int ord_slot_cmp(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  struct atr__obj *ob = atr__slot(ord_sort_store, b);
  struct ord_key k;
  ord_key_init(&k, ob->name,
               ob->name_len > ATR_NAME_MAX ? ATR_NAME_MAX : ob->name_len);
  return ord_cmp(ord_sort_store, a, &k);
}

void atr__order_rebuild(atr_store *s) {
  struct atr__header *h = s->hdr;
  uint32_t n = 0, *live = malloc(((size_t)h->max_objects + 1) * sizeof *live);
  uint32_t last[ATR__ORDER_LEVELS];

  if (live == NULL)
    abort(); /* recovery cannot proceed without it; never leave it half */
  for (uint32_t i = 0; i < h->max_objects; i++) {
    struct atr__obj *o = atr__slot(s, i);
    if (atomic_load(&o->id) == 0 || o->dead)
      continue;
    ord_node_fill(s, i);
    live[n++] = i;
  }
  ord_sort_store = s;
  qsort(live, n, sizeof *live, ord_slot_cmp);
  for (unsigned lv = 0; lv < ATR__ORDER_LEVELS; lv++) {
    h->order_head[lv] = 0;
    last[lv] = HEAD;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct atr__onode *nd = atr__onode(s, live[i]);
    for (unsigned lv = 0; lv < nd->level; lv++) {
      *ord_link(s, last[lv], lv) = live[i] + 1;
      last[lv] = live[i] + 1;
    }
  }
  free(live);
}

int atr__order_walk(atr_store *s, const char *from, size_t from_len,
                    size_t max_steps, int (*fn)(uint32_t slot, void *arg),
                    void *arg) {
  uint32_t preds[ATR__ORDER_LEVELS], max = s->hdr->max_objects;
  uint32_t pos;
  if (from == NULL)
    pos = s->hdr->order_head[0];
  else if (!ord_find(s, from, from_len, preds))
    return ATR__WALK_DAMAGED;
  else
    pos = *ord_link(s, preds[0], 0);
  for (uint64_t steps = 0; pos != 0; steps++) {
    if (pos > max || steps > max)
      return ATR__WALK_DAMAGED;
    if (steps >= max_steps)
      return ATR__WALK_BUDGET;
    if (fn(pos - 1, arg) != 0)
      return ATR__WALK_STOPPED;
    pos = atr__onode(s, pos - 1)->next[0];
  }
  return ATR__WALK_END;
}
