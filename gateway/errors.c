/*
 * errors.c - the one table from core errors to HTTP status and JSON error
 * code, and the error answers built on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static const struct gw_errmap gw_errors[] = {
    {ATR_EINVAL, 400, "invalid_request"},
    {ATR_ENAME, 400, "bad_name"},
    {ATR_ENOENT, 404, "not_found"},
    {ATR_EEXIST, 412, "precondition_failed"},
    {ATR_EKIND, 409, "kind_mismatch"},
    {ATR_ETYPE, 409, "type_mismatch"},
    {ATR_ERANGE, 400, "out_of_range"},
    {ATR_EOVERFLOW, 409, "overflow"},
    {ATR_EVERSION, 412, "precondition_failed"},
    {ATR_EBOUNDS, 400, "out_of_range"},
    {ATR_ELENGTH, 409, "length_mismatch"},
    {ATR_EFULL, 409, "full"},
    {ATR_EEMPTY, 409, "empty"},
    {ATR_ETOOBIG, 413, "item_too_large"},
    {ATR_ETIMEDOUT, 503, "timed_out"},
    {ATR_ENOSPC, 507, "store_full"},
    {ATR_ETOOMANY, 507, "store_full"},
    {ATR_ENOTSTORE, 500, "store_error"},
    {ATR_ELAYOUT, 500, "store_error"},
    {ATR_ECORRUPT, 500, "store_error"},
    {ATR_EBUSY, 503, "unavailable"},
    {ATR_EGAP, 500, "internal_error"},
    {ATR_ENOMEM, 500, "out_of_memory"},
    {ATR_ESYS, 500, "internal_error"},
};

static const struct gw_errmap gw_error_default = {0, 500, "internal_error"};

const struct gw_errmap *gw_error_lookup(int code) {
  for (size_t i = 0; i < sizeof(gw_errors) / sizeof(gw_errors[0]); i++)
    if (gw_errors[i].code == code)
      return &gw_errors[i];
  return &gw_error_default;
}

int gw_reply_core(struct gw_req *req, int rv) {
  const struct gw_errmap *e = gw_error_lookup(rv);

  return gw_reply_error(req, e->status, e->name, "%s", atr_strerror(rv));
}

int gw_reply_json_error(struct gw_req *req, int rv, const char *what,
                        const char *why) {
  switch (rv) {
  case GW_JSON_ESYNTAX:
  case GW_JSON_EDEPTH:
    return gw_reply_error(req, 400, "invalid_json", "%s: %s", what,
                          why ? why : "not JSON");
  case GW_JSON_EVALUE:
    return gw_reply_error(req, 400, "invalid_value",
                          "%s: wrong kind of JSON value for the type", what);
  case GW_JSON_ERANGE:
    return gw_reply_error(req, 400, "out_of_range",
                          "%s: number outside the type's range", what);
  default:
    return gw_reply_error(req, 500, "out_of_memory", "out of memory");
  }
}

int gw_reply_error(struct gw_req *req, unsigned status, const char *code,
                   const char *fmt, ...) {
  char msg[512];
  gw_buf b;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gw_buf_init(&b);
  gw_buf_str(&b, "{\"error\":{\"code\":");
  gw_json_put_string(&b, code, strlen(code));
  gw_buf_str(&b, ",\"message\":");
  gw_json_put_string(&b, msg, strlen(msg));
  gw_buf_str(&b, "}}");
  return gw_reply_buf(req, status, &b, 0);
}
