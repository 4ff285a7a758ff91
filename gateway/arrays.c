/*
 * arrays.c - /v1/arrays: fixed-length typed arrays.
 */
#include <microhttpd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

/* Answers the array (or its slice [start:stop], Python semantics) as GET
 * gives it. */
static int array_answer(struct gw_req *req, unsigned status,
                        const atr_handle *h, int64_t start, int64_t stop,
                        int sliced) {
  atr_scalar *vals = NULL;
  uint64_t length, lo, hi, n = 0, ver = 0;
  char t[2] = {h->type, 0};
  gw_buf b;
  int rv;

  gw_buf_init(&b);
  if ((rv = atr_array_length(h, &length)) != 0)
    goto fail;
  atr_slice(start, stop, length, &lo, &hi);
  if (hi - lo > SIZE_MAX / sizeof(*vals)) {
    rv = ATR_ENOMEM;
    goto fail;
  }
  vals = malloc((size_t)(hi - lo ? hi - lo : 1) * sizeof(*vals));
  if (vals == NULL) {
    rv = ATR_ENOMEM;
    goto fail;
  }
  if ((rv = atr_array_get(h, start, stop, vals, hi - lo, &n, &ver)) != 0)
    goto fail;
  gw_buf_str(&b, "{\"name\":");
  gw_json_put_string(&b, req->name, strlen(req->name));
  gw_buf_str(&b, ",\"type\":");
  gw_json_put_string(&b, t, 1);
  gw_buf_fmt(&b, ",\"length\":%llu", (unsigned long long)length);
  if (sliced)
    gw_buf_fmt(&b, ",\"start\":%llu,\"stop\":%llu", (unsigned long long)lo,
               (unsigned long long)(lo + n));
  gw_buf_str(&b, ",\"values\":[");
  for (uint64_t i = 0; i < n; i++) {
    if (i)
      gw_buf_add(&b, ",", 1);
    gw_json_put_scalar(&b, h->type, vals[i]);
  }
  gw_buf_fmt(&b, "],\"version\":%llu}", (unsigned long long)ver);
  free(vals);
  return gw_reply_buf(req, status, &b, ver);
fail:
  free(vals);
  gw_buf_fini(&b);
  return gw_reply_core(req, rv);
}

/* Reads the JSON array node as n values of type into a new *out (the
 * caller frees it). 0, or -1 after answering 400. */
static int array_values(struct gw_req *req, const gw_jnode *node, char type,
                        atr_scalar **out, uint64_t *n) {
  atr_scalar *vals;
  size_t count, i = 0;

  *out = NULL;
  if (gw_json_type(node) != GW_JARRAY) {
    gw_reply_error(req, 400, "invalid_body", "\"values\" must be an array");
    return -1;
  }
  count = gw_json_count(node);
  vals = malloc((count ? count : 1) * sizeof(*vals));
  if (vals == NULL) {
    gw_reply_error(req, 500, "out_of_memory", "out of memory");
    return -1;
  }
  for (const gw_jnode *e = gw_json_child(node); e; e = gw_json_next(e), i++) {
    char what[40];
    snprintf(what, sizeof(what), "values[%zu]", i);
    if (gw_body_scalar(req, e, type, what, &vals[i]) != 0) {
      free(vals);
      return -1;
    }
  }
  *out = vals;
  *n = count;
  return 0;
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

  if (gw_body_members(req, members) != 0 || gw_body_type(req, &type) != 0)
    return MHD_YES;
  jlen = gw_body_get(req, "length");
  jvals = gw_body_get(req, "values");
  if (jlen != NULL) {
    rv = gw_json_uint64(req->doc, jlen, &length);
    if (rv != 0 || length == 0)
      return gw_reply_error(req, 400, "invalid_body",
                            "\"length\" must be an integer >= 1");
  }
  if (jvals != NULL) {
    if (array_values(req, jvals, type, &vals, &n) != 0)
      return MHD_YES;
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
  if (gw_cond_parse(req, &c) != 0) {
    answer = MHD_YES;
    goto done;
  }
  flags = c.if_match ? 0 : ATR_CREATE;
  if (c.if_none_match_any)
    flags = ATR_CREATE | ATR_EXCL;
  rv = atr_array_open(gw_srv->store, req->name, type, length, flags, vals, &h);
  if (rv == ATR_EEXIST || (rv == ATR_ENOENT && c.if_match) ||
      (c.if_match == 2 && c.version == 0)) {
    answer = gw_reply_error(req, 412, "precondition_failed",
                            "the precondition does not hold");
    goto done;
  }
  if (rv < 0) {
    answer = gw_reply_core(req, rv);
    goto done;
  }
  if (rv == ATR_CREATED) {
    answer = array_answer(req, 201, &h, 0, INT64_MAX, 0);
    goto done;
  }
  if (vals != NULL) {
    rv = atr_array_set(&h, 0, vals, n, c.if_match == 2 ? c.version : 0, &ver);
    if (rv != 0) {
      answer = gw_reply_core(req, rv);
      goto done;
    }
  } else if (c.if_match == 2) {
    atr_info info;
    if (atr_stat(gw_srv->store, req->name, &info) != 0 ||
        info.version != c.version) {
      answer = gw_reply_error(req, 412, "precondition_failed",
                              "the array's version does not match");
      goto done;
    }
  }
  answer = array_answer(req, 200, &h, 0, INT64_MAX, 0);
done:
  free(vals);
  return answer;
}

int gw_array_get(struct gw_req *req) {
  const char *qs = gw_req_query(req, "start");
  const char *qe = gw_req_query(req, "stop");
  int64_t start = 0, stop = INT64_MAX;
  const char *why = NULL;
  atr_handle h;
  int rv;

  if ((qs && gw_query_index_parse(qs, &start, &why) != 0) ||
      (qe && gw_query_index_parse(qe, &stop, &why) != 0))
    return gw_reply_error(req, 400, "invalid_query", "%s", why);
  rv = atr_array_open(gw_srv->store, req->name, 0, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  return array_answer(req, 200, &h, start, stop, qs != NULL || qe != NULL);
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

  if (gw_body_members(req, members) != 0)
    return MHD_YES;
  jstart = gw_body_get(req, "start");
  jvals = gw_body_get(req, "values");
  if (jstart != NULL && gw_json_int64(req->doc, jstart, &start) != 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"start\" must be an integer");
  if (jvals == NULL)
    return gw_reply_error(req, 400, "invalid_body", "\"values\" is required");
  if (gw_cond_parse(req, &c) != 0)
    return MHD_YES;
  rv = atr_array_open(gw_srv->store, req->name, 0, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (array_values(req, jvals, h.type, &vals, &n) != 0)
    return MHD_YES;
  if (c.if_match == 2 && c.version == 0) {
    answer = gw_reply_error(req, 412, "precondition_failed",
                            "the array's version does not match");
    goto done;
  }
  if (n > 0) {
    rv = atr_array_set(&h, start, vals, n, c.if_match == 2 ? c.version : 0,
                       &ver);
    if (rv != 0) {
      answer = gw_reply_core(req, rv);
      goto done;
    }
  }
  answer = array_answer(req, 200, &h, 0, INT64_MAX, 0);
done:
  free(vals);
  return answer;
}

int gw_array_add(struct gw_req *req) {
  static const char *const members[] = {"index", "delta", NULL};
  const gw_jnode *jindex, *jdelta;
  atr_scalar delta, v;
  int64_t index;
  uint64_t ver;
  atr_handle h;
  int rv;

  if (gw_body_members(req, members) != 0)
    return MHD_YES;
  jindex = gw_body_get(req, "index");
  if (jindex == NULL || gw_json_int64(req->doc, jindex, &index) != 0)
    return gw_reply_error(req, 400, "invalid_body",
                          "\"index\" must be an integer");
  rv = atr_array_open(gw_srv->store, req->name, 0, 0, 0, NULL, &h);
  if (rv < 0)
    return gw_reply_core(req, rv);
  if (h.type == '?' || h.type == 'c')
    return gw_reply_error(req, 409, "type_mismatch",
                          "elements of type '%c' cannot be added to", h.type);
  jdelta = gw_body_get(req, "delta");
  if (atr_type_class(h.type) == ATR_TFLOAT) {
    delta.f = 1.0;
    if (jdelta && gw_body_scalar(req, jdelta, 'd', "delta", &delta) != 0)
      return MHD_YES;
  } else {
    delta.i = 1;
    if (jdelta && gw_body_scalar(req, jdelta, 'q', "delta", &delta) != 0)
      return MHD_YES;
  }
  rv = atr_array_add(&h, index, delta, &v, &ver);
  if (rv != 0)
    return gw_reply_core(req, rv);
  return array_answer(req, 200, &h, 0, INT64_MAX, 0);
}

int gw_array_delete(struct gw_req *req) {
  int rv = atr_delete(gw_srv->store, req->name, ATR_ARRAY);

  if (rv != 0)
    return gw_reply_core(req, rv);
  return gw_reply_empty(req);
}
