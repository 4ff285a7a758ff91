/*
 * list.c - pages of objects in name order (atr_list_page).
 *
 * The candidates of a page (matching names after `after`, at most
 * limit + 1 of them: the one past the page says "more") are gathered
 * from the name order (order.c) under the store lock, then described one
 * by one with no lock held (atr__obj_info). Should the lock not come
 * (a stopped holder) or the order be damaged, they are gathered by a
 * scan of every record instead, keeping the smallest names: slower
 * (O(records) a page) but needing no lock.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* A name seen in a record, and which incarnation it belonged to. */
struct list_cand {
  uint64_t id;
  uint32_t slot;
  uint8_t len;
  char name[ATR_NAME_MAX];
};

/* What a page asks for. */
struct list_query {
  const char *prefix, *after;
  size_t prefix_len, after_len;
  atr_kind kind;
};

/* Bytewise order, a shorter name before the longer one it starts. */
static int list_cmp_bytes(const char *a, size_t alen, const char *b,
                          size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c != 0)
    return c;
  return alen < blen ? -1 : alen > blen;
}

static int list_cand_cmp(const struct list_cand *a, const struct list_cand *b) {
  return list_cmp_bytes(a->name, a->len, b->name, b->len);
}

static int list_cand_qcmp(const void *x, const void *y) {
  return list_cand_cmp(x, y);
}

/* Whether the name belongs to the query: after `after`, starting with
 * the prefix. */
static bool list_wanted(const struct list_query *q, const char *name,
                        size_t len) {
  if (q->after != NULL &&
      list_cmp_bytes(name, len, q->after, q->after_len) <= 0)
    return false;
  return len >= q->prefix_len && memcmp(name, q->prefix, q->prefix_len) == 0;
}

/* Copies the name and kind of slot's record if it is live, the copy
 * confirmed by an unchanged id (the record may be re-made under us).
 * false if the record is free, dying or damaged. */
static bool list_read_rec(atr_store *s, uint32_t slot, struct list_cand *c,
                          unsigned *kind) {
  struct atr__obj *o = atr__slot(s, slot);
  uint64_t id = atomic_load_explicit(&o->id, memory_order_acquire);
  if (id == 0)
    return false;
  size_t len = o->name_len;
  bool dead = o->dead != 0;
  *kind = o->kind;
  if (len > ATR_NAME_MAX)
    return false;
  memcpy(c->name, o->name, len);
  atomic_thread_fence(memory_order_acquire);
  if (dead || atomic_load(&o->id) != id)
    return false;
  c->id = id;
  c->slot = slot;
  c->len = (uint8_t)len;
  return true;
}

/* The largest-name-on-top heap of a page's candidates. */
static void list_heap_down(struct list_cand *hp, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && list_cand_cmp(&hp[l], &hp[m]) > 0)
      m = l;
    if (r < n && list_cand_cmp(&hp[r], &hp[m]) > 0)
      m = r;
    if (m == i)
      return;
    struct list_cand t = hp[i];
    hp[i] = hp[m];
    hp[m] = t;
    i = m;
  }
}

static void list_heap_up(struct list_cand *hp, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (list_cand_cmp(&hp[i], &hp[p]) <= 0)
      return;
    struct list_cand t = hp[i];
    hp[i] = hp[p];
    hp[p] = t;
    i = p;
  }
}

/* Every record once, keeping the cap smallest wanted names, sorted:
 * O(records * log cap), no lock. Returns how many were kept. */
static size_t list_scan(atr_store *s, const struct list_query *q,
                        struct list_cand *hp, size_t cap) {
  size_t n = 0;
  struct list_cand c;
  unsigned kind;
  for (uint32_t i = 0; i < s->hdr->max_objects; i++) {
    if (!list_read_rec(s, i, &c, &kind) ||
        (q->kind != ATR_ANY && kind != (unsigned)q->kind) ||
        !list_wanted(q, c.name, c.len))
      continue;
    if (n < cap) {
      hp[n] = c;
      list_heap_up(hp, n++);
    } else if (list_cand_cmp(&c, &hp[0]) < 0) {
      hp[0] = c;
      list_heap_down(hp, n, 0);
    }
  }
  qsort(hp, n, sizeof *hp, list_cand_qcmp);
  return n;
}

/* A page gathered from the name order, under the store lock. */
struct list_gather {
  atr_store *s;
  const struct list_query *q;
  struct list_cand *hp, last;
  size_t n, cap;
  bool have_last, damaged;
};

/* atr__order_walk's fn: takes slot's record if it belongs to the page;
 * non-zero once the page is full or past the prefix's names. */
static int list_take(uint32_t slot, void *arg) {
  struct list_gather *g = arg;
  const struct list_query *q = g->q;
  struct list_cand c;
  unsigned kind;
  if (!list_read_rec(g->s, slot, &c, &kind))
    return 0;
  if (g->have_last) {
    int order = list_cand_cmp(&c, &g->last);
    if (order == 0)
      return 0; /* where the last lock hold stopped */
    if (order < 0) {
      g->damaged = true; /* names must grow along the order */
      return 1;
    }
  }
  g->last = c;
  g->have_last = true;
  if (q->after != NULL &&
      list_cmp_bytes(c.name, c.len, q->after, q->after_len) <= 0)
    return 0;
  if (c.len < q->prefix_len || memcmp(c.name, q->prefix, q->prefix_len) != 0)
    return list_cmp_bytes(c.name, c.len, q->prefix, q->prefix_len) > 0;
  if (q->kind != ATR_ANY && kind != (unsigned)q->kind)
    return 0;
  g->hp[g->n++] = c;
  return g->n == g->cap;
}

/* Records per hold of the store lock: creates and deletes wait at most
 * this many steps behind a page (a kind filter may skip many). */
#define LIST_STEPS 4096
/* How long a page waits for the store lock before it scans instead: a
 * create holds it for microseconds; a stopped holder never lets go. */
#define LIST_LOCK_WAIT 0.02

/* The cap smallest wanted names, sorted, from the name order: O(log n +
 * what the page skips and takes). -1 if the lock could not be had or
 * the order is damaged (the caller scans). */
static ssize_t list_ordered(atr_store *s, const struct list_query *q,
                            struct list_cand *hp, size_t cap) {
  struct list_gather g = {s, q, hp, {0}, 0, cap, false, false};
  const char *from = q->prefix;
  size_t from_len = q->prefix_len;
  if (q->after != NULL &&
      list_cmp_bytes(q->after, q->after_len, q->prefix, q->prefix_len) >= 0) {
    from = q->after;
    from_len = q->after_len;
  }
  for (;;) {
    if (atr__store_lock_for(s, LIST_LOCK_WAIT) != 0)
      return -1;
    int w = atr__order_walk(s, from_len > 0 ? from : NULL, from_len, LIST_STEPS,
                            list_take, &g);
    atr__store_unlock(s);
    if (w == ATR__WALK_DAMAGED || g.damaged)
      return -1;
    if (w != ATR__WALK_BUDGET)
      return (ssize_t)g.n;
    from = g.last.name; /* go on from there in the next hold */
    from_len = g.last.len;
  }
}

ATR__EXPORT int atr_list_page(atr_store *s, const char *prefix, atr_kind kind,
                              const char *after, size_t limit,
                              int (*fn)(const atr_info *info, void *arg),
                              void *arg, int *more) {
  struct list_query q = {prefix != NULL ? prefix : "", after, 0, 0, kind};
  struct list_cand *hp;
  atr_info info;
  size_t cap, n;
  int rc = 0;

  if (s == NULL || fn == NULL || limit == 0 ||
      (kind != ATR_ANY && atr__kind_ops_of((unsigned)kind) == NULL))
    return ATR_EINVAL;
  q.prefix_len = strlen(q.prefix);
  q.after_len = after != NULL ? strlen(after) : 0;
  if (more != NULL)
    *more = 0;
  if (q.prefix_len > ATR_NAME_MAX)
    return 0; /* no name is that long */
  /* limit + 1 candidates, but never more than there can be objects. */
  cap = limit < s->hdr->max_objects ? limit + 1 : s->hdr->max_objects + 1u;
  if ((hp = malloc(cap * sizeof *hp)) == NULL)
    return ATR_ENOMEM;
  /* Candidates deleted before they were described leave the page short:
   * gather again after the last one (never the same ones twice). */
  size_t given = 0;
  char after_buf[ATR_NAME_MAX];
  for (;;) {
    size_t i;
    ssize_t got = list_ordered(s, &q, hp, cap);
    n = got >= 0 ? (size_t)got : list_scan(s, &q, hp, cap);
    for (i = 0; i < n && given < limit; i++) {
      if (atr__obj_info(s, hp[i].slot, hp[i].id, &info) != 0)
        continue; /* deleted meanwhile, or damaged: as atr_list */
      given++;
      if ((rc = fn(&info, arg)) != 0)
        goto out;
    }
    if (given == limit || n < cap) {
      if (more != NULL)
        *more = i < n || n == cap;
      break;
    }
    memcpy(after_buf, hp[n - 1].name, hp[n - 1].len);
    q.after = after_buf;
    q.after_len = hp[n - 1].len;
  }
out:
  free(hp);
  return rc;
}
