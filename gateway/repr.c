/*
 * repr.c - objects as JSON (repr.h): a table with one row per kind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "repr.h"

const struct gw_repr_opts gw_repr_all = {UINT64_MAX, 0, 0, INT64_MAX};
const struct gw_repr_opts gw_repr_list = {GW_REPR_LIST_VALUES, 0, 0, INT64_MAX};

static void repr_type(gw_buf *b, char type) {
  char t[2] = {type, 0};

  gw_buf_str(b, ",\"type\":");
  gw_json_put_string(b, t, 1);
}

static void repr_u64(gw_buf *b, const char *member, uint64_t v) {
  gw_buf_str(b, ",\"");
  gw_buf_str(b, member);
  gw_buf_str(b, "\":");
  gw_buf_u64(b, v);
}

static void repr_version(gw_buf *b, uint64_t version) {
  repr_u64(b, "version", version);
}

static void repr_bool(gw_buf *b, const char *member, int v) {
  gw_buf_str(b, ",\"");
  gw_buf_str(b, member);
  gw_buf_str(b, v ? "\":true" : "\":false");
}

/* ------------------------------------------------------------------- value */

static int repr_value_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_value_open(s, name, 0, 0, NULL, h);
}

static void repr_value_members(gw_buf *b, char type, atr_scalar v,
                               uint64_t version) {
  repr_type(b, type);
  gw_buf_str(b, ",\"value\":");
  gw_json_put_scalar(b, type, v);
  repr_version(b, version);
}

static int repr_value_state(gw_buf *b, const atr_handle *h,
                            const struct gw_repr_opts *o, uint64_t *version) {
  atr_scalar v;
  int rv;

  (void)o;
  if ((rv = atr_value_get(h, &v, version)) != 0)
    return rv;
  repr_value_members(b, h->type, v, *version);
  return 0;
}

/* ------------------------------------------------------------------- array */

static int repr_array_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_array_open(s, name, 0, 0, 0, NULL, h);
}

#define REPR_STACK_VALUES 256 /* read without an allocation */

static int repr_array_state(gw_buf *b, const atr_handle *h,
                            const struct gw_repr_opts *o, uint64_t *version) {
  atr_scalar stack[REPR_STACK_VALUES], *vals = stack;
  uint64_t length, lo, hi, n = 0;
  atr_info info;
  int rv;

  if ((rv = atr_array_length(h, &length)) != 0)
    return rv;
  if (length > o->values_max) {
    /* The description only: its version by the handle. */
    if ((rv = atr_handle_stat(h, &info)) != 0)
      return rv;
    repr_type(b, h->type);
    gw_buf_str(b, ",\"length\":");
    gw_buf_u64(b, length);
    repr_version(b, info.version);
    *version = info.version;
    return 0;
  }
  atr_slice(o->start, o->stop, length, &lo, &hi);
  if (hi - lo > REPR_STACK_VALUES) {
    if (hi - lo > SIZE_MAX / sizeof(*vals))
      return ATR_ENOMEM;
    vals = malloc((size_t)(hi - lo) * sizeof(*vals));
    if (vals == NULL)
      return ATR_ENOMEM;
  }
  rv = atr_array_get(h, o->start, o->stop, vals, hi - lo, &n, version);
  if (rv == 0) {
    repr_type(b, h->type);
    gw_buf_str(b, ",\"length\":");
    gw_buf_u64(b, length);
    if (o->sliced) {
      gw_buf_str(b, ",\"start\":");
      gw_buf_u64(b, lo);
      gw_buf_str(b, ",\"stop\":");
      gw_buf_u64(b, lo + n);
    }
    gw_buf_str(b, ",\"values\":[");
    for (uint64_t i = 0; i < n; i++) {
      if (i)
        gw_buf_add(b, ",", 1);
      gw_json_put_scalar(b, h->type, vals[i]);
    }
    gw_buf_add(b, "]", 1);
    repr_version(b, *version);
  }
  if (vals != stack)
    free(vals);
  return rv;
}

/* ------------------------------------------------------------------- queue */

static int repr_queue_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_queue_open(s, name, 0, NULL, h);
}

static void repr_queue_members(gw_buf *b, const atr_info *i) {
  repr_u64(b, "size", i->size);
  repr_u64(b, "maxsize", i->maxsize);
  repr_u64(b, "bytes", i->bytes);
  repr_u64(b, "max_bytes", i->max_bytes);
  repr_u64(b, "max_item", i->max_item);
  repr_u64(b, "leased", i->leased);
  repr_u64(b, "unfinished", i->unfinished);
  repr_u64(b, "dead_lettered", i->dead_lettered);
  repr_u64(b, "dropped", i->dropped);
  repr_u64(b, "max_deliveries", i->max_deliveries);
  gw_buf_str(b, ",\"dead_letter\":");
  if (i->dead_letter[0] != '\0')
    gw_json_put_string(b, i->dead_letter, strlen(i->dead_letter));
  else
    gw_buf_str(b, "null");
}

/* ------------------------------------------- the synchronisation kinds */

static int repr_lock_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_lock_open(s, name, 0, 0, h);
}

static int repr_sem_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_sem_open(s, name, 0, 0, 0, h);
}

static int repr_flag_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_flag_open(s, name, 0, 0, h);
}

static int repr_barrier_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_barrier_open(s, name, 0, 0, h);
}

static int repr_cond_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_cond_open(s, name, 0, NULL, h);
}

static int repr_dict_open(atr_store *s, const char *name, atr_handle *h) {
  return atr_dict_open(s, name, 0, h);
}

/* A lock: who holds it, how deep (reentrant), its fence and waiters. */
static void repr_lock_members(gw_buf *b, const atr_info *i) {
  int held = i->count > 0;

  repr_bool(b, "reentrant", i->reentrant);
  repr_bool(b, "held", held);
  repr_u64(b, "fence", i->fence);
  repr_u64(b, "waiters", i->waiters);
  if (held && i->lease)
    /* A lease past its deadline that nobody has ended yet shows 0. */
    gw_buf_fmt(b, ",\"holder\":{\"type\":\"lease\",\"expires_in\":%.3f}",
               i->expires_in > 0 ? i->expires_in : 0.0);
  else if (held)
    gw_buf_str(b, ",\"holder\":{\"type\":\"process\"}");
  if (held && i->reentrant)
    repr_u64(b, "count", i->count);
}

static void repr_sem_members(gw_buf *b, const atr_info *i) {
  repr_u64(b, "value", i->count);
  if (i->bound)
    repr_u64(b, "bound", i->bound);
  else
    gw_buf_str(b, ",\"bound\":null");
  repr_u64(b, "waiters", i->waiters);
}

static void repr_flag_members(gw_buf *b, const atr_info *i) {
  repr_bool(b, "set", i->set);
  repr_u64(b, "waiters", i->waiters);
}

static void repr_barrier_members(gw_buf *b, const atr_info *i) {
  repr_u64(b, "parties", i->parties);
  repr_u64(b, "n_waiting", i->n_waiting);
  repr_bool(b, "broken", i->broken);
  repr_u64(b, "generation", i->generation);
}

static void repr_cond_members(gw_buf *b, const atr_info *i) {
  gw_buf_str(b, ",\"lock\":");
  gw_json_put_string(b, i->lock, strlen(i->lock));
  repr_u64(b, "waiters", i->waiters);
}

/* A dict's description: its number of keys (GET adds its items). */
static void repr_dict_members(gw_buf *b, const atr_info *i) {
  repr_u64(b, "len", i->size);
}

/* The members of the kinds whose state is their description, by kind. */
static void (*const repr_info_members[])(gw_buf *b, const atr_info *i) = {
    [ATR_QUEUE] = repr_queue_members,     [ATR_LOCK] = repr_lock_members,
    [ATR_SEMAPHORE] = repr_sem_members,   [ATR_FLAG] = repr_flag_members,
    [ATR_BARRIER] = repr_barrier_members, [ATR_CONDITION] = repr_cond_members,
    [ATR_DICT] = repr_dict_members,
};

static uint64_t (*repr_waiting)(uint64_t id);

void gw_repr_set_waiting(uint64_t (*waiting)(uint64_t id)) {
  repr_waiting = waiting;
}

/* A queue's or a synchronisation kind's state is its description: one
 * read by the handle (a queue's counts without its locks). */
static int repr_info_state(gw_buf *b, const atr_handle *h,
                           const struct gw_repr_opts *o, uint64_t *version) {
  atr_info info;
  int rv;

  (void)o;
  if ((rv = atr_handle_stat(h, &info)) != 0)
    return rv;
  /* Conditions and barriers keep the gateway's waiters in the store
   * (as places); the others count processes only. */
  if (repr_waiting != NULL &&
      (h->kind == ATR_LOCK || h->kind == ATR_SEMAPHORE || h->kind == ATR_FLAG))
    info.waiters += repr_waiting(h->id);
  repr_info_members[h->kind](b, &info);
  repr_version(b, info.version);
  *version = info.version;
  return 0;
}

/* -------------------------------------------------------------- the table */

static const struct repr_kind {
  int (*open)(atr_store *s, const char *name, atr_handle *h);
  int (*state)(gw_buf *b, const atr_handle *h, const struct gw_repr_opts *o,
               uint64_t *version);
} repr_kinds[] = {
    [ATR_VALUE] = {repr_value_open, repr_value_state},
    [ATR_ARRAY] = {repr_array_open, repr_array_state},
    [ATR_QUEUE] = {repr_queue_open, repr_info_state},
    [ATR_LOCK] = {repr_lock_open, repr_info_state},
    [ATR_SEMAPHORE] = {repr_sem_open, repr_info_state},
    [ATR_FLAG] = {repr_flag_open, repr_info_state},
    [ATR_BARRIER] = {repr_barrier_open, repr_info_state},
    [ATR_CONDITION] = {repr_cond_open, repr_info_state},
    [ATR_DICT] = {repr_dict_open, repr_info_state},
};

static const struct repr_kind *repr_kind(atr_kind kind) {
  if ((size_t)kind >= sizeof(repr_kinds) / sizeof(repr_kinds[0]) ||
      repr_kinds[kind].state == NULL)
    return NULL;
  return &repr_kinds[kind];
}

int gw_repr_open(atr_store *store, atr_kind kind, const char *name, uint64_t id,
                 atr_handle *h) {
  const struct repr_kind *k = repr_kind(kind);
  int rv;

  if (k == NULL)
    return ATR_EKIND;
  rv = k->open(store, name, h);
  if (rv < 0)
    return rv;
  return id != 0 && h->id != id ? ATR_ENOENT : 0;
}

void gw_repr_head(gw_buf *b, atr_kind kind, const char *name) {
  gw_buf_str(b, "\"name\":");
  gw_json_put_string(b, name, strlen(name));
  gw_buf_str(b, ",\"kind\":\"");
  gw_buf_str(b, atr_kind_name(kind));
  gw_buf_add(b, "\"", 1);
}

int gw_repr_state(gw_buf *b, const atr_handle *h, const struct gw_repr_opts *o,
                  uint64_t *version) {
  const struct repr_kind *k = repr_kind(h->kind);
  size_t mark = b->len;
  uint64_t ver = 0;
  int rv;

  if (k == NULL)
    return ATR_EKIND;
  rv = k->state(b, h, o, &ver);
  if (rv != 0) {
    b->len = mark;
    return rv;
  }
  if (version != NULL)
    *version = ver;
  return 0;
}

int gw_repr_object(gw_buf *b, const char *name, const atr_handle *h,
                   const struct gw_repr_opts *o, uint64_t *version) {
  size_t mark = b->len;
  int rv;

  gw_buf_add(b, "{", 1);
  gw_repr_head(b, h->kind, name);
  if ((rv = gw_repr_state(b, h, o, version)) != 0) {
    b->len = mark;
    return rv;
  }
  gw_buf_add(b, "}", 1);
  return 0;
}

void gw_repr_value(gw_buf *b, const char *name, char type, atr_scalar v,
                   uint64_t version) {
  gw_buf_add(b, "{", 1);
  gw_repr_head(b, ATR_VALUE, name);
  repr_value_members(b, type, v, version);
  gw_buf_add(b, "}", 1);
}
