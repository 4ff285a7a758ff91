/*
 * objects.c - what every kind shares: answering an object, deleting one,
 * the store and object listings, /healthz, /openapi.json.
 */
#include <stdlib.h>
#include <string.h>

#include "repr.h"
#include "routes.h"

int gw_reply_object(struct gw_req *req, unsigned status, const atr_handle *h,
                    const struct gw_repr_opts *o) {
  uint64_t version = 0;
  gw_buf b;
  int rv;

  gw_buf_init(&b);
  if ((rv = gw_repr_object(&b, req->name, h, o, &version)) != 0) {
    gw_buf_fini(&b);
    return gw_reply_core(req, rv);
  }
  return gw_reply_buf(req, status, &b, version);
}

int gw_reply_open(struct gw_req *req, int rv, const atr_handle *h) {
  if (rv < 0)
    return gw_reply_core(req, rv);
  return gw_reply_object(req, rv == ATR_CREATED ? 201 : 200, h, &gw_repr_all);
}

int gw_object_delete(struct gw_req *req, atr_kind kind) {
  int rv = atr_delete(gw_srv->store, req->name, kind);

  if (rv != 0)
    return gw_reply_core(req, rv);
  return gw_reply_empty(req);
}

/* --------------------------------------------------------------- listings */

struct obj_list {
  atr_info *items;
  size_t n, cap;
  atr_kind only;
};

static int obj_collect(const atr_info *info, void *arg) {
  struct obj_list *l = arg;

  if (l->only != ATR_ANY && info->kind != l->only)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    atr_info *p = realloc(l->items, cap * sizeof(*p));
    if (p == NULL)
      return ATR_ENOMEM;
    l->items = p;
    l->cap = cap;
  }
  l->items[l->n++] = *info;
  return 0;
}

static int obj_by_name(const void *a, const void *b) {
  return strcmp(((const atr_info *)a)->name, ((const atr_info *)b)->name);
}

/* Every object of kind (ATR_ANY: all), sorted by name. */
static int obj_list(atr_kind kind, struct obj_list *l) {
  int rv;

  memset(l, 0, sizeof(*l));
  l->only = kind;
  rv = atr_list(gw_srv->store, obj_collect, l);
  if (rv != 0) {
    free(l->items);
    l->items = NULL;
    return rv;
  }
  if (l->n > 1)
    qsort(l->items, l->n, sizeof(*l->items), obj_by_name);
  return 0;
}

/* {"<what>":[every object of kind (ATR_ANY: all) as listings show it]};
 * an object deleted meanwhile is left out. */
static int obj_list_answer(struct gw_req *req, atr_kind kind,
                           const char *what) {
  struct obj_list l;
  gw_buf b;
  int rv, first = 1;

  if ((rv = obj_list(kind, &l)) != 0)
    return gw_reply_core(req, rv);
  gw_buf_init(&b);
  gw_buf_fmt(&b, "{\"%s\":[", what);
  for (size_t i = 0; i < l.n; i++) {
    const atr_info *o = &l.items[i];
    atr_handle h;
    size_t mark = b.len;
    if (!first)
      gw_buf_add(&b, ",", 1);
    if (gw_repr_open(gw_srv->store, o->kind, o->name, o->id, &h) != 0 ||
        gw_repr_object(&b, o->name, &h, &gw_repr_list, NULL) != 0) {
      b.len = mark; /* deleted meanwhile */
      continue;
    }
    first = 0;
  }
  gw_buf_str(&b, "]}");
  free(l.items);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_objects_list(struct gw_req *req) {
  return obj_list_answer(req, ATR_ANY, "objects");
}

int gw_value_list(struct gw_req *req) {
  return obj_list_answer(req, ATR_VALUE, "values");
}

int gw_kind_list(struct gw_req *req, atr_kind kind, const char *what) {
  return obj_list_answer(req, kind, what);
}

int gw_kind_get(struct gw_req *req, atr_kind kind) {
  atr_handle h;
  int rv = gw_repr_open(gw_srv->store, kind, req->name, 0, &h);

  if (rv < 0)
    return gw_reply_core(req, rv);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

int gw_kind_act(struct gw_req *req, atr_kind kind,
                int (*act)(const atr_handle *h)) {
  atr_handle h;
  int rv = gw_repr_open(gw_srv->store, kind, req->name, 0, &h);

  if (rv < 0)
    return gw_reply_core(req, rv);
  if ((rv = act(&h)) < 0)
    return gw_reply_core(req, rv);
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

int gw_acquire_run(struct gw_req *req, atr_kind kind, gw_park_try try_op,
                   void *arg, int *rv) {
  if (req->runs == 1) {
    atr_handle h;
    double timeout;
    if (gw_query_timeout(req, 0, &timeout) != GW_NEXT)
      return GW_DONE;
    if ((*rv = gw_repr_open(gw_srv->store, kind, req->name, 0, &h)) < 0)
      return gw_reply_core(req, *rv);
    gw_park_begin(req, GW_WAIT_HOLD, &h, timeout);
  } else if (gw_client_gone(req)) {
    return gw_req_drop(req); /* resumed for a client that left: take nothing */
  }
  if (gw_park_run(req, try_op, arg, ATR_ETIMEDOUT, rv) == GW_DONE)
    return GW_DONE; /* parked */
  if (*rv == ATR_ETIMEDOUT)
    return gw_reply_timeout(req);
  if (*rv < 0)
    return gw_reply_core(req, *rv);
  return GW_NEXT;
}

int gw_reply_timeout(struct gw_req *req) {
  return gw_reply_error(req, 409, "timeout", "not acquired within the timeout");
}

int gw_store_info(struct gw_req *req) {
  atr_store_stats st;
  gw_buf b;
  int rv;

  if ((rv = atr_store_stats_get(gw_srv->store, &st)) != 0)
    return gw_reply_core(req, rv);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"path\":");
  gw_json_put_string(&b, gw_srv->cfg.store_path,
                     strlen(gw_srv->cfg.store_path));
  gw_buf_fmt(
      &b,
      ",\"capacity\":%llu,\"used\":%llu,\"free\":%llu,"
      "\"objects\":%llu,\"max_objects\":%llu}",
      (unsigned long long)st.capacity, (unsigned long long)st.used,
      (unsigned long long)(st.capacity > st.used ? st.capacity - st.used : 0),
      (unsigned long long)st.objects, (unsigned long long)st.max_objects);
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_healthz(struct gw_req *req) {
  gw_buf b;

  gw_buf_init(&b);
  gw_buf_str(&b, "{\"status\":\"ok\"}");
  return gw_reply_buf(req, 200, &b, 0);
}

int gw_openapi(struct gw_req *req) {
  char *body = malloc(gw_openapi_json_len ? gw_openapi_json_len : 1);

  if (body == NULL)
    return gw_reply_core(req, ATR_ENOMEM);
  memcpy(body, gw_openapi_json, gw_openapi_json_len);
  return gw_reply(req, 200, body, gw_openapi_json_len, NULL, 0);
}
