/*
 * arrays.c - /v1/arrays: fixed-length typed arrays.
 */
#include <stdio.h>
#include <stdlib.h>

#include "repr.h"
#include "routes.h"

/* Reads the JSON array node as n values of type into a new *out (the
 * caller frees it). GW_NEXT, or GW_DONE after answering 400. */
static int array_values(struct gw_req *req, const gw_jnode *node, char type,
                        atr_scalar **out, uint64_t *n) {
  atr_scalar *vals;
  size_t count, i = 0;

  *out = NULL;
  if (gw_json_type(node) != GW_JARRAY)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"values\" must be an array");
  count = gw_json_count(node);
  vals = malloc((count ? count : 1) * sizeof(*vals));
  if (vals == NULL)
    return gw_reply_core(req, ATR_ENOMEM);
  for (const gw_jnode *e = gw_json_child(node); e; e = gw_json_next(e), i++) {
    char what[40];
    snprintf(what, sizeof(what), "values[%zu]", i);
    if (gw_body_scalar(req, e, type, what, &vals[i]) != GW_NEXT) {
      free(vals);
      return GW_DONE;
    }
  }
  *out = vals;
  *n = count;
  return GW_NEXT;
}

int gw_array_put(struct gw_req *req) {
  static const char *const members[] = {"type", "length", "values", NULL};
  const gw_jnode *jlen, *jvals;
  atr_scalar *vals = NULL;
  uint64_t length = 0, n = 0, ver;
  struct gw_cond c;
  atr_handle h;
  char type;
  int rv, flags, answer;

  if (gw_body_members(req, members) != GW_NEXT ||
      gw_body_type(req, &type) != GW_NEXT)
    return GW_DONE;
  jlen = gw_body_get(req, "length");
  jvals = gw_body_get(req, "values");
  if (jlen != NULL) {
    rv = gw_json_uint64(req->doc, jlen, &length);
    if (rv != 0 || length == 0)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"length\" must be an integer >= 1");
  }
  if (jvals != NULL) {
    if (array_values(req, jvals, type, &vals, &n) != GW_NEXT)
      return GW_DONE;
    if (n == 0 || (jlen != NULL && n != length)) {
      answer = gw_reply_error(req, 400, "invalid_body",
                              n == 0 ? "\"values\" may not be empty"
                                     : "\"length\" and \"values\" disagree");
      goto done;
    }
    length = n;
  }
  if (length == 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "give \"length\" or \"values\"");
  if (gw_cond_parse(req, &c) != GW_NEXT) {
    answer = GW_DONE;
    goto done;
  }
  flags = c.if_match ? 0 : ATR_CREATE;
  if (c.if_none_match_any)
    flags = ATR_CREATE | ATR_EXCL;
  rv = atr_array_open(gw_srv->store, req->name, type, length, flags, vals, &h);
  if (rv == ATR_EEXIST || (rv == ATR_ENOENT && c.if_match)) {
    answer = gw_reply_error(req, 412, "precondition_failed",
                            "the precondition does not hold");
    goto done;
  }
  if (rv < 0) {
    answer = gw_reply_core(req, rv);
    goto done;
  }
  if (rv == ATR_CREATED) {
    req->changed = 1; /* the answer's read may meet a lock: never again */
    answer = gw_reply_object(req, 201, &h, &gw_repr_all);
    goto done;
  }
  if (vals != NULL) {
    rv = atr_array_set(&h, 0, vals, n, c.if_match == 2 ? c.version : 0, &ver);
    if (rv != 0) {
      answer = gw_reply_core(req, rv);
      goto done;
    }
    req->changed = 1;
  } else if (c.if_match == 2) {
    atr_info info;
    if (atr_handle_stat(&h, &info) != 0 || info.version != c.version) {
      answer = gw_reply_error(req, 412, "precondition_failed",
                              "the array's version does not match");
      goto done;
    }
  }
  answer = gw_reply_object(req, 200, &h, &gw_repr_all);
done:
  free(vals);
  return answer;
}

int gw_array_get(struct gw_req *req) {
  const char *qs = gw_req_query(req, "start");
  const char *qe = gw_req_query(req, "stop");
  struct gw_repr_opts o = gw_repr_all;
  const char *why = NULL;
  atr_handle h;
  int rv;

  if ((qs && gw_query_index_parse(qs, &o.start, &why) != 0) ||
      (qe && gw_query_index_parse(qe, &o.stop, &why) != 0))
    return gw_reply_error(req, 400, "invalid_query", "%s", why);
  rv = atr_array_open(gw_srv->store, req->name, 0, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  o.sliced = qs != NULL || qe != NULL;
  return gw_reply_object(req, 200, &h, &o);
}

int gw_array_patch(struct gw_req *req) {
  static const char *const members[] = {"start", "values", NULL};
  const gw_jnode *jstart, *jvals;
  atr_scalar *vals = NULL;
  int64_t start = 0;
  uint64_t n = 0, ver;
  struct gw_cond c;
  atr_handle h;
  int rv, answer;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  jstart = gw_body_get(req, "start");
  jvals = gw_body_get(req, "values");
  if (jstart != NULL && gw_json_int64(req->doc, jstart, &start) != 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"start\" must be an integer");
  if (jvals == NULL)
    return gw_reply_error(req, 400, "invalid_body", "\"values\" is required");
  if (gw_cond_parse(req, &c) != GW_NEXT)
    return GW_DONE;
  rv = atr_array_open(gw_srv->store, req->name, 0, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (array_values(req, jvals, h.type, &vals, &n) != GW_NEXT)
    return GW_DONE;
  if (n > 0) {
    rv = atr_array_set(&h, start, vals, n, c.if_match == 2 ? c.version : 0,
                       &ver);
    if (rv != 0) {
      answer = gw_reply_core(req, rv);
      goto done;
    }
    req->changed = 1;
  }
  answer = gw_reply_object(req, 200, &h, &gw_repr_all);
done:
  free(vals);
  return answer;
}

int gw_array_add(struct gw_req *req) {
  static const char *const members[] = {"index", "delta", NULL};
  const gw_jnode *jindex;
  atr_scalar delta, v;
  int64_t index;
  uint64_t ver;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != GW_NEXT)
    return GW_DONE;
  jindex = gw_body_get(req, "index");
  if (jindex == NULL || gw_json_int64(req->doc, jindex, &index) != 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"index\" must be an integer");
  rv = atr_array_open(gw_srv->store, req->name, 0, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (gw_body_delta(req, h.type, "elements", &delta) != GW_NEXT)
    return GW_DONE;
  rv = atr_array_add(&h, index, delta, &v, &ver);
  if (rv != 0)
    return gw_reply_core(req, rv);
  req->changed = 1;
  return gw_reply_object(req, 200, &h, &gw_repr_all);
}

int gw_array_delete(struct gw_req *req) {
  return gw_object_delete(req, ATR_ARRAY);
}
