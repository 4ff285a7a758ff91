/*
 * page_shim.c - TEMPORARY: atr_list_page over atr_list until the core's
 * own lands (branch scale-core). Weak, so the core's wins once linked.
 */
#include <stdlib.h>
#include <string.h>

#include "atrium.h"

int atr_list_page(atr_store *store, const char *prefix, atr_kind kind,
                  const char *after, size_t limit,
                  int (*fn)(const atr_info *info, void *arg), void *arg,
                  int *more) __attribute__((weak));

struct shim {
  const char *prefix, *after;
  atr_kind kind;
  atr_info *v;
  size_t n, cap;
};

static int shim_one(const atr_info *i, void *arg) {
  struct shim *s = arg;
  if (s->kind != ATR_ANY && i->kind != s->kind)
    return 0;
  if (s->prefix && strncmp(i->name, s->prefix, strlen(s->prefix)) != 0)
    return 0;
  if (s->after && strcmp(i->name, s->after) <= 0)
    return 0;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    atr_info *p = realloc(s->v, cap * sizeof(*p));
    if (!p)
      return ATR_ENOMEM;
    s->v = p;
    s->cap = cap;
  }
  s->v[s->n++] = *i;
  return 0;
}

static int shim_cmp(const void *a, const void *b) {
  return strcmp(((const atr_info *)a)->name, ((const atr_info *)b)->name);
}

int atr_list_page(atr_store *store, const char *prefix, atr_kind kind,
                  const char *after, size_t limit,
                  int (*fn)(const atr_info *info, void *arg), void *arg,
                  int *more) {
  struct shim s = {prefix, after, kind, NULL, 0, 0};
  int rv;
  if (limit == 0 || more == NULL || fn == NULL)
    return ATR_EINVAL;
  if ((rv = atr_list(store, shim_one, &s)) != 0) {
    free(s.v);
    return rv;
  }
  qsort(s.v, s.n, sizeof(*s.v), shim_cmp);
  *more = s.n > limit;
  for (size_t i = 0; i < s.n && i < limit; i++)
    if ((rv = fn(&s.v[i], arg)) != 0)
      break;
  free(s.v);
  return rv;
}
