/*
 * values.c - /v1/values: one typed scalar per name.
 */
#include <microhttpd.h>

#include <string.h>

#include "gw.h"

void gw_value_repr(gw_buf *b, const char *name, char type, atr_scalar v,
                   uint64_t version) {
  char t[2] = {type, 0};

  gw_buf_str(b, "{\"name\":");
  gw_json_put_string(b, name, strlen(name));
  gw_buf_str(b, ",\"type\":");
  gw_json_put_string(b, t, 1);
  gw_buf_str(b, ",\"value\":");
  gw_json_put_scalar(b, type, v);
  gw_buf_fmt(b, ",\"version\":%llu}", (unsigned long long)version);
}

static int value_answer(struct gw_req *req, unsigned status, char type,
                        atr_scalar v, uint64_t version) {
  gw_buf b;

  gw_buf_init(&b);
  gw_value_repr(&b, req->name, type, v, version);
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

  if (gw_body_members(req, members) != 0 || gw_body_type(req, &type) != 0)
    return MHD_YES;
  given = gw_body_get(req, "value");
  if (given && gw_body_scalar(req, given, type, "value", &v) != 0)
    return MHD_YES;
  if (gw_cond_parse(req, &c) != 0)
    return MHD_YES;
  if (c.if_match == 2 && c.version == 0)
    return value_412(req); /* versions start at 1 */
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

int gw_value_get(struct gw_req *req) {
  struct gw_waiter *w = &req->wait;
  atr_scalar v;
  uint64_t ver = 0;
  int rv, final;

  if (req->runs == 1) {
    const char *wait = gw_req_query(req, "wait");
    const char *why = NULL;
    uint64_t since = 0;
    double t = 0;
    if (wait != NULL && gw_query_version_parse(wait, &since, &why) != 0)
      return gw_reply_error(req, 400, "invalid_query", "%s", why);
    if (gw_query_timeout(req, gw_srv->cfg.max_wait, &t) != 0)
      return MHD_YES;
    rv = atr_value_open(gw_srv->store, req->name, 0, 0, NULL, &w->h);
    if (rv < 0)
      return gw_reply_core(req, rv);
    w->kind = GW_WAIT_WATCH;
    w->version = since;
    w->may_wait = wait != NULL && t > 0;
    w->deadline = gw_now() + t;
  }
  final =
      !w->may_wait || w->wake == GW_WAKE_TIMEOUT || w->wake == GW_WAKE_SHUTDOWN;
  for (;;) {
    if (!final && gw_wait_arm(req) != 0)
      final = 1;
    rv = atr_value_get(&w->h, &v, &ver);
    if (rv != 0 || final || ver > w->version) {
      gw_wait_disarm(req);
      break;
    }
    rv = gw_wait_park(req);
    if (rv == GW_PARKED)
      return MHD_YES;
    if (rv == GW_EXPIRED)
      final = 1;
  }
  if (rv != 0)
    return gw_reply_core(req, rv);
  return value_answer(req, 200, w->h.type, v, ver);
}

int gw_value_add(struct gw_req *req) {
  static const char *const members[] = {"delta", NULL};
  const gw_jnode *given;
  atr_handle h;
  atr_scalar delta, v;
  uint64_t ver;
  int rv;

  if (gw_body_members(req, members) != 0)
    return MHD_YES;
  rv = atr_value_open(gw_srv->store, req->name, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (h.type == '?' || h.type == 'c')
    return gw_reply_error(req, 409, "type_mismatch",
                          "values of type '%c' cannot be added to", h.type);
  given = gw_body_get(req, "delta");
  if (atr_type_class(h.type) == ATR_TFLOAT) {
    delta.f = 1.0;
    if (given && gw_body_scalar(req, given, 'd', "delta", &delta) != 0)
      return MHD_YES;
  } else {
    delta.i = 1;
    if (given && gw_body_scalar(req, given, 'q', "delta", &delta) != 0)
      return MHD_YES;
  }
  rv = atr_value_add(&h, delta, &v, &ver);
  if (rv != 0)
    return gw_reply_core(req, rv);
  return value_answer(req, 200, h.type, v, ver);
}

int gw_value_delete(struct gw_req *req) {
  int rv = atr_delete(gw_srv->store, req->name, ATR_VALUE);

  if (rv != 0)
    return gw_reply_core(req, rv);
  return gw_reply_empty(req);
}
