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

/* A page in the making: each object the core gives is answered as
 * listings show it, straight into the body. */
struct obj_page {
  gw_buf *b;
  int first;
  char last[ATR_NAME_MAX + 1]; /* the last name the core gave */
};

static int obj_page_one(const atr_info *info, void *arg) {
  struct obj_page *p = arg;
  size_t mark = p->b->len;
  atr_handle h;

  memcpy(p->last, info->name, sizeof(p->last));
  if (!p->first)
    gw_buf_add(p->b, ",", 1);
  if (gw_repr_open(gw_srv->store, info->kind, info->name, info->id, &h) != 0 ||
      gw_repr_object(p->b, info->name, &h, &gw_repr_list, NULL) != 0) {
    p->b->len = mark; /* deleted meanwhile */
    return 0;
  }
  p->first = 0;
  return p->b->failed ? ATR_ENOMEM : 0;
}

/* {"<what>":[a page of the objects of kind (ATR_ANY: all) in name order,
 * as ?prefix=, ?after= and ?limit= say], "next" when more follow}. The
 * answer holds at most ?limit= objects, whatever the store's size (the
 * core's atr_list_page walks its name order and describes only the
 * page's objects); an object deleted meanwhile is left out,
 * and "next" is still the last name the core gave, so a walk goes on
 * past it. */
static int obj_list_answer(struct gw_req *req, atr_kind kind,
                           const char *what) {
  struct gw_page page;
  struct obj_page p;
  const char *why = NULL;
  gw_buf b;
  int rv, more = 0;

  if (gw_query_page_parse(gw_req_query(req, "prefix"),
                          gw_req_query(req, "after"),
                          gw_req_query(req, "limit"), &page, &why) != 0)
    return gw_reply_error(req, 400, "invalid_query", "%s", why);
  gw_buf_init(&b);
  gw_buf_fmt(&b, "{\"%s\":[", what);
  memset(&p, 0, sizeof(p));
  p.b = &b;
  p.first = 1;
  rv = atr_list_page(gw_srv->store, page.prefix, kind,
                     page.has_after ? page.after : NULL, page.limit,
                     obj_page_one, &p, &more);
  if (rv != 0) {
    gw_buf_fini(&b);
    return gw_reply_core(req, rv);
  }
  gw_buf_add(&b, "]", 1);
  if (more && p.last[0] != '\0') {
    gw_buf_str(&b, ",\"next\":");
    gw_json_put_string(&b, p.last, strlen(p.last));
  }
  gw_buf_add(&b, "}", 1);
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
