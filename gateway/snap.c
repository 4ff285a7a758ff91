/*
 * snap.c - events as JSON, and snapshots of every object (snap.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snap.h"

size_t gw_event_topic(char *out, atr_kind kind, const char *name,
                      const char *op) {
  int n =
      snprintf(out, GW_TOPIC_MAX, "%s/%s/%s", atr_kind_name(kind), name, op);

  return n < 0 ? 0 : (size_t)n < GW_TOPIC_MAX ? (size_t)n : GW_TOPIC_MAX - 1;
}

void gw_event_json(gw_buf *b, uint64_t seq, atr_kind kind, const char *name,
                   const char *op, const char *state, size_t state_len) {
  gw_buf_str(b, "{\"seq\":");
  gw_buf_u64(b, seq);
  gw_buf_add(b, ",", 1);
  gw_repr_head(b, kind, name);
  gw_buf_str(b, ",\"op\":\"");
  gw_buf_str(b, op);
  gw_buf_add(b, "\"", 1);
  gw_buf_add(b, state, state_len);
  gw_buf_add(b, "}", 1);
}

int gw_topic_is_exact(const char *topic, size_t len) {
  const char *slash = memchr(topic, '/', len);

  return slash != NULL &&
         memchr(slash + 1, '/', len - (size_t)(slash + 1 - topic)) != NULL;
}

/* Whether the object's topic with want's op starts with one of want's. */
static int snap_wanted(const struct gw_snap_want *want, atr_kind kind,
                       const char *name) {
  char topic[GW_TOPIC_MAX];
  size_t tl;

  if (want == NULL || want->n == 0)
    return 1;
  tl = gw_event_topic(topic, kind, name, want->op ? want->op : "");
  for (size_t i = 0; i < want->n; i++) {
    size_t n = want->topic_len[i];
    /* Any op: "<kind>/<name>/" and the topic agree as far as both go. */
    if (want->op == NULL && n > tl)
      n = tl;
    if (n <= tl && memcmp(want->topic[i], topic, n) == 0)
      return 1;
  }
  return 0;
}

struct snap_walk {
  struct gw_snap *s;
  const struct gw_snap_want *want;
};

static int snap_add(struct gw_snap *s, const atr_info *info) {
  struct gw_snap_obj *o;

  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    struct gw_snap_obj *p = realloc(s->objs, cap * sizeof(*p));
    if (p == NULL)
      return ATR_ENOMEM;
    s->objs = p;
    s->cap = cap;
  }
  o = &s->objs[s->n++];
  memset(o, 0, sizeof(*o));
  memcpy(o->name, info->name, sizeof(o->name));
  o->kind = info->kind;
  o->id = info->id;
  return 0;
}

static int snap_collect(const atr_info *info, void *arg) {
  struct snap_walk *w = arg;

  if (!snap_wanted(w->want, info->kind, info->name))
    return 0;
  return snap_add(w->s, info);
}

/* The objects of topics that each name one: a lookup per topic. */
static int snap_lookup(atr_store *store, const struct gw_snap_want *want,
                       struct gw_snap *s) {
  for (size_t i = 0; i < want->n; i++) {
    const char *t = want->topic[i];
    const char *name = (const char *)memchr(t, '/', want->topic_len[i]) + 1;
    const char *end =
        memchr(name, '/', want->topic_len[i] - (size_t)(name - t));
    char buf[ATR_NAME_MAX + 1];
    atr_info info;
    int rv;
    if (end == NULL || end - name == 0 || end - name > ATR_NAME_MAX)
      continue; /* no object has such a name */
    memcpy(buf, name, (size_t)(end - name));
    buf[end - name] = '\0';
    if (atr_stat(store, buf, &info) != 0 ||
        !snap_wanted(want, info.kind, info.name))
      continue;
    if ((rv = snap_add(s, &info)) != 0)
      return rv;
  }
  return 0;
}

static int snap_by_name(const void *a, const void *b) {
  return strcmp(((const struct gw_snap_obj *)a)->name,
                ((const struct gw_snap_obj *)b)->name);
}

void gw_snap_free(struct gw_snap *s) {
  free(s->objs);
  gw_buf_fini(&s->states);
  memset(s, 0, sizeof(*s));
}

int gw_snap_read(atr_store *store, const struct gw_snap_want *want,
                 struct gw_snap *s) {
  struct snap_walk w = {s, want};
  int rv, exact = want != NULL && want->n > 0;
  size_t n = 0;

  memset(s, 0, sizeof(*s));
  gw_buf_init(&s->states);
  for (size_t i = 0; exact && i < want->n; i++)
    exact = gw_topic_is_exact(want->topic[i], want->topic_len[i]);
  rv = exact ? snap_lookup(store, want, s) : atr_list(store, snap_collect, &w);
  if (rv != 0)
    goto fail;
  if (s->n > 1)
    qsort(s->objs, s->n, sizeof(*s->objs), snap_by_name);
  for (size_t i = 0; i < s->n; i++) /* topics may name one object twice */
    if (n == 0 || strcmp(s->objs[n - 1].name, s->objs[i].name) != 0)
      s->objs[n++] = s->objs[i];
  s->n = n;
  for (size_t i = 0; i < s->n; i++) {
    struct gw_snap_obj *o = &s->objs[i];
    atr_handle h;
    o->state_off = s->states.len;
    if (gw_repr_open(store, o->kind, o->name, o->id, &h) == 0 &&
        gw_repr_state(&s->states, &h, &gw_repr_list, NULL) == 0)
      o->state_len = s->states.len - o->state_off;
    /* else deleted meanwhile: state_len stays 0 */
  }
  if (s->states.failed) {
    rv = ATR_ENOMEM;
    goto fail;
  }
  return 0;
fail:
  gw_snap_free(s);
  return rv;
}

void gw_snap_event(gw_buf *out, const struct gw_snap *s, size_t i, uint64_t seq,
                   const char *op) {
  const struct gw_snap_obj *o = &s->objs[i];

  gw_buf_reset(out);
  gw_event_json(out, seq, o->kind, o->name, op, s->states.data + o->state_off,
                o->state_len);
}
