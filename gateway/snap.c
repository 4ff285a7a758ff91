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

static int snap_collect(const atr_info *info, void *arg) {
  struct gw_snap *s = arg;
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

static int snap_by_name(const void *a, const void *b) {
  return strcmp(((const struct gw_snap_obj *)a)->name,
                ((const struct gw_snap_obj *)b)->name);
}

void gw_snap_free(struct gw_snap *s) {
  free(s->objs);
  gw_buf_fini(&s->states);
  memset(s, 0, sizeof(*s));
}

int gw_snap_read(atr_store *store, struct gw_snap *s) {
  int rv;

  memset(s, 0, sizeof(*s));
  gw_buf_init(&s->states);
  if ((rv = atr_list(store, snap_collect, s)) != 0)
    goto fail;
  if (s->n > 1)
    qsort(s->objs, s->n, sizeof(*s->objs), snap_by_name);
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
