/*
 * errors.c - the one table from core errors to HTTP status and JSON error
 * code, indexed by the code, and the error answers built on it.
 *
 * The table has one row per ATR_E* code (designated by its position in
 * include/atrium.h's ATR_ERRNO_MAP): its size is checked against the
 * map's at compile time, and gw_error_check finds a row left empty when
 * the daemon starts.
 */
#include <stdio.h>

#include "req.h"

static const struct gw_errmap gw_errors[] = {
    [ATR__EINVAL] = {400, "invalid_request"},
    [ATR__ENAME] = {400, "bad_name"},
    [ATR__ENOENT] = {404, "not_found"},
    [ATR__EEXIST] = {412, "precondition_failed"},
    [ATR__EKIND] = {409, "kind_mismatch"},
    [ATR__ETYPE] = {409, "type_mismatch"},
    [ATR__ERANGE] = {400, "out_of_range"},
    [ATR__EOVERFLOW] = {409, "overflow"},
    [ATR__EVERSION] = {412, "precondition_failed"},
    [ATR__EBOUNDS] = {400, "out_of_range"},
    [ATR__ELENGTH] = {409, "length_mismatch"},
    [ATR__EFULL] = {409, "full"},
    [ATR__EEMPTY] = {409, "empty"},
    [ATR__ETOOBIG] = {413, "item_too_large"},
    [ATR__ETIMEDOUT] = {503, "timed_out"},
    [ATR__ENOSPC] = {507, "store_full"},
    [ATR__ETOOMANY] = {507, "store_full"},
    [ATR__ENOTSTORE] = {500, "store_error"},
    [ATR__ELAYOUT] = {500, "store_error"},
    [ATR__ECORRUPT] = {500, "store_damaged"},
    [ATR__EBUSY] = {503, "unavailable"},
    [ATR__EGAP] = {500, "internal_error"},
    [ATR__ENOMEM] = {500, "out_of_memory"},
    [ATR__ESYS] = {500, "internal_error"},
    [ATR__EINTR] = {503, "unavailable"},
    [ATR__ENOTHELD] = {409, "not_held"},
    [ATR__EBROKEN] = {409, "broken"},
    [ATR__EOVERRELEASE] = {409, "over_released"},
    [ATR__ESTALE] = {412, "stale_fence"},
    [ATR__ELOCKED] = {503, "busy"},
    [ATR__EDONE] = {409, "too_many_done"},
    [ATR__ENOKEY] = {404, "no_such_key"},
    [ATR__EKEY] = {400, "bad_key"},
};

/* A code added to the core's map needs its row here. */
_Static_assert(sizeof(gw_errors) / sizeof(gw_errors[0]) == ATR__LAST,
               "gw_errors needs one row per ATR_E* code");

static const struct gw_errmap gw_error_default = {500, "internal_error"};

const struct gw_errmap *gw_error_lookup(int code) {
  if (code < 0 && -code < ATR__LAST && gw_errors[-code].name != NULL)
    return &gw_errors[-code];
  return &gw_error_default;
}

int gw_error_check(void) {
  int rv = 0;

  for (int i = ATR__FIRST + 1; i < ATR__LAST; i++)
    if (gw_errors[i].name == NULL || gw_errors[i].status < 400) {
      fprintf(stderr, "atriumd: no HTTP answer for ATR_%s\n", atr_errname(-i));
      rv = -1;
    }
  return rv;
}

int gw_reply_core(struct gw_req *req, int rv) {
  const struct gw_errmap *e = gw_error_lookup(rv);

  /* A live process keeps the object's lock: not answered yet while the
   * request may wait (the daemon parks it and runs it again), then 503
   * busy, to be tried again a second later. */
  if (rv == ATR_ELOCKED) {
    if (gw_req_lock_patient(req)) {
      req->lock_wait = 1;
      return GW_DONE;
    }
    req->retry_after = 1;
  }

  /* Damage is one object's: say which, so an operator can delete it
   * while the rest of the store keeps working. */
  if (rv == ATR_ECORRUPT && req->name[0] != '\0')
    return gw_reply_error(req, e->status, e->name, "%s: %s", req->name,
                          atr_strerror(rv));
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
