/*
 * values.c - /v1/values: one typed scalar per name.
 */
#include "park.h"
#include "repr.h"
#include "routes.h"

static int value_answer(struct gw_req *req, unsigned status, char type,
                        atr_scalar v, uint64_t version) {
  gw_buf b;

  gw_buf_init(&b);
  gw_repr_value(&b, req->name, type, v, version);
  return gw_reply_buf(req, status, &b, version);
}

static int value_412(struct gw_req *req) {
  return gw_reply_error(req, 412, "precondition_failed",
                        "the value's version does not match");
}

int gw_value_put(struct gw_req *req) {
  static const char *const members[] = {"type", "value", NULL};
  const gw_jnode *given;
  struct gw_cond c;
  atr_handle h;
  atr_scalar v;
  uint64_t ver;
  char type;
  int rv, flags;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_type(req, &type) != GW_NEXT)
    return GW_DONE;
  given = gw_body_get(req, "value");
  if (given && gw_body_scalar(req, given, type, "value", &v) != GW_NEXT)
    return GW_DONE;
  if (gw_cond_parse(req, &c) != GW_NEXT)
    return GW_DONE;
  flags = c.if_match ? 0 : ATR_CREATE;
  if (c.if_none_match_any)
    flags = ATR_CREATE | ATR_EXCL;
  rv = atr_value_open(gw_srv->store, req->name, type, flags, given ? &v : NULL,
                      &h);
  if (rv == ATR_EEXIST || (rv == ATR_ENOENT && c.if_match))
    return gw_reply_error(req, 412, "precondition_failed",
                          rv == ATR_EEXIST ? "the value exists"
                                           : "there is no such value");
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (rv == ATR_CREATED) {
    if ((rv = atr_value_get(&h, &v, &ver)) != 0)
      return gw_reply_core(req, rv);
    return value_answer(req, 201, type, v, ver);
  }
  if (given) {
    rv = atr_value_set(&h, v, c.if_match == 2 ? c.version : 0, &ver);
    if (rv == ATR_EVERSION)
      return value_412(req);
    if (rv != 0)
      return gw_reply_core(req, rv);
    return value_answer(req, 200, type, v, ver);
  }
  if ((rv = atr_value_get(&h, &v, &ver)) != 0)
    return gw_reply_core(req, rv);
  if (c.if_match == 2 && ver != c.version)
    return value_412(req);
  return value_answer(req, 200, type, v, ver);
}

struct value_read {
  atr_scalar v;
  uint64_t version;
};

/* A watch's try: the value, or 1 (wait) while its version has not
 * passed the one asked for. */
static int value_try_get(struct gw_req *req, void *arg) {
  struct value_read *r = arg;
  int rv = atr_value_get(&req->wait.h, &r->v, &r->version);

  return rv == 0 && r->version <= req->wait.version ? 1 : rv;
}

int gw_value_get(struct gw_req *req) {
  struct value_read r = {{0}, 0};
  int rv;

  if (req->runs == 1) {
    const char *wait = gw_req_query(req, "wait");
    const char *why = NULL;
    atr_handle h;
    double t = 0;
    if (wait != NULL &&
        gw_query_version_parse(wait, &req->wait.version, &why) != 0)
      return gw_reply_error(req, 400, "invalid_query", "%s", why);
    if (gw_query_timeout(req, gw_srv->cfg.max_wait, &t) != GW_NEXT)
      return GW_DONE;
    rv = atr_value_open(gw_srv->store, req->name, 0, 0, NULL, &h);
    if (rv < 0)
      return gw_reply_core(req, rv);
    gw_park_begin(req, GW_WAIT_WATCH, &h, wait != NULL ? t : 0);
  }
  if (gw_park_run(req, value_try_get, &r, 1, &rv) == GW_DONE)
    return GW_DONE; /* parked */
  if (rv < 0)
    return gw_reply_core(req, rv);
  return value_answer(req, 200, req->wait.h.type, r.v, r.version);
}

int gw_value_add(struct gw_req *req) {
  static const char *const members[] = {"delta", NULL};
  atr_handle h;
  atr_scalar delta, v;
  uint64_t ver;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  rv = atr_value_open(gw_srv->store, req->name, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (gw_body_delta(req, h.type, "values", &delta) != GW_NEXT)
    return GW_DONE;
  rv = atr_value_add(&h, delta, &v, &ver);
  if (rv != 0)
    return gw_reply_core(req, rv);
  return value_answer(req, 200, h.type, v, ver);
}

int gw_value_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_VALUE);
}
